package fsm

import (
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Rolling updates, the state side.
//
// An instance runs the container spec of the app version it was placed for
// (Instance.AppVersion). The app's SpecVersion is the version of its current
// spec: an update that changes the spec (SpecChanged) sets it to the new
// version, any other update keeps it, so scaling, renaming-free edits of
// labels and the like never replace running instances. While instances of
// an older spec version remain, their spec is kept in the app_specs table
// (one AppSpec per app and version) and dropped with the last of them; the
// dispatcher builds their assignments from it. The leader's scheduler loop
// decides the pace of the rollout (see scheduler.PlanRollout).

// Rollout states (AppRollout.State).
const (
	RolloutInProgress = "IN_PROGRESS"
	RolloutFailed     = "FAILED"
)

// Rollout strategies (AppRollout.Strategy).
const (
	StrategyStartFirst = "start-first"
	StrategyStopFirst  = "stop-first"
)

// SpecVersion is the version of the app's current container spec. Apps
// written before spec versions existed have none: their version is.
func SpecVersion(a *atollv1.App) int64 {
	if a.GetSpecVersion() > 0 {
		return a.SpecVersion
	}
	return a.GetVersion()
}

// StopFirst reports whether the app's rollouts stop an old instance before
// its replacement starts: apps with volume mounts. A volume is one Docker
// volume on one node; two containers writing the same data directory (a
// database, a lock file) can corrupt it, so a replacement never runs next to
// the instance it replaces.
func StopFirst(a *atollv1.App) bool { return len(a.GetVolumeMounts()) > 0 }

// containerSpec is the part of an app its containers are made from: what
// the dispatcher puts into an instance's assignment. Everything else (name
// aside: it is in the ports' hostnames) can change without touching a
// running instance.
func containerSpec(a *atollv1.App) *atollv1.App {
	s := &atollv1.App{
		Source:            a.Source,
		Requests:          a.Requests,
		Ports:             a.Ports,
		ResolvedCommand:   a.ResolvedCommand,
		ResolvedArgs:      a.ResolvedArgs,
		RestartGeneration: a.RestartGeneration,
		HealthCheck:       a.HealthCheck,
	}
	if pe := a.PublicEndpoint; pe != nil {
		s.PublicEndpoint = &atollv1.PublicEndpoint{AppPort: pe.AppPort}
	}
	for _, m := range a.VolumeMounts {
		s.VolumeMounts = append(s.VolumeMounts, &atollv1.VolumeMount{VolIdRef: m.VolIdRef, Path: m.Path})
	}
	for _, m := range a.VariableSetMounts {
		s.VariableSetMounts = append(s.VariableSetMounts, &atollv1.VariableSetMount{VarSetIdRef: m.VarSetIdRef, VarSetVersion: mountVersion(m.VarSetVersion)})
	}
	for _, m := range a.FileMounts {
		s.FileMounts = append(s.FileMounts, &atollv1.FileMount{FileIdRef: m.FileIdRef, MountPath: m.MountPath, FileOwner: m.FileOwner, FileVersion: mountVersion(m.FileVersion)})
	}
	return s
}

// SpecChanged reports whether next runs differently from cur: image,
// command, args, variable sets and files (or their content versions), volumes, ports (with their
// hostnames, so a rename), public port, resources, health check or restart generation.
func SpecChanged(cur, next *atollv1.App) bool {
	return !proto.Equal(containerSpec(cur), containerSpec(next))
}

// InstanceSpec is the app as the instance must run it: the app itself when
// the instance runs its current spec, else the kept spec of the instance's
// version (nil when there is none: state written before specs were kept).
func InstanceSpec(tx *state.Txn, app *atollv1.App, in *atollv1.Instance) *atollv1.App {
	if in.AppVersion == SpecVersion(app) {
		return app
	}
	if s := tx.AppSpec(app.Id, in.AppVersion); s != nil {
		return s.App
	}
	return nil
}

// HasHealthCheck reports whether the instance runs a spec with a health
// check.
func HasHealthCheck(tx *state.Txn, app *atollv1.App, in *atollv1.Instance) bool {
	spec := InstanceSpec(tx, app, in)
	if spec == nil {
		spec = app
	}
	return spec.GetHealthCheck() != nil
}

// Serving reports whether routers send the instance requests: it is
// RUNNING at an address, wanted running, and healthy when its spec has a
// health check.
func Serving(tx *state.Txn, app *atollv1.App, in *atollv1.Instance) bool {
	if in.State != atollv1.InstanceState_INSTANCE_RUNNING || in.Address == "" || !in.DesiredRunning {
		return false
	}
	return in.Healthy || !HasHealthCheck(tx, app, in)
}

// Unhealthy reports whether the instance runs and its health check failed
// (failure threshold reached; not while the first checks are pending).
func Unhealthy(tx *state.Txn, app *atollv1.App, in *atollv1.Instance) bool {
	return in.State == atollv1.InstanceState_INSTANCE_RUNNING && !in.Healthy && in.HealthMessage != "" && HasHealthCheck(tx, app, in)
}

// nextSpecVersion decides the spec version of an updated app: unchanged
// when the spec is; the version of a kept spec that is the same again (a
// rollback: its instances become current, nothing restarts); else the new
// version.
func (a *applier) nextSpecVersion(cur, next *atollv1.App) int64 {
	if !SpecChanged(cur, next) {
		return SpecVersion(cur)
	}
	for _, s := range a.tx.AppSpecs(cur.Id) {
		if !SpecChanged(s.App, next) {
			return s.Version
		}
	}
	return next.Version
}

// keepSpec stores the spec of an app version its instances still run.
func (a *applier) keepSpec(app *atollv1.App) error {
	v := SpecVersion(app)
	if a.tx.AppSpec(app.Id, v) != nil {
		return nil
	}
	return a.tx.Insert(state.TableAppSpecs, &atollv1.AppSpec{
		Id: state.AppSpecID(app.Id, v), AppId: app.Id, EnvId: app.EnvIdRef, Version: v,
		App: proto.Clone(app).(*atollv1.App), CreateIndex: a.index,
	})
}

// pruneSpecs drops the kept specs of an app that no instance runs any
// longer, and the current spec's (the app itself is that one). A deleted
// app keeps none.
func (a *applier) pruneSpecs(appID string) error {
	specs := a.tx.AppSpecs(appID)
	if len(specs) == 0 {
		return nil
	}
	app := a.tx.App(appID)
	used := map[int64]bool{}
	for _, in := range a.tx.AppInstances(appID) {
		used[in.AppVersion] = true
	}
	for _, s := range specs {
		if app == nil || app.IsDeleted || s.Version == SpecVersion(app) || !used[s.Version] {
			if err := a.tx.Delete(state.TableAppSpecs, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropInstance deletes an instance; the app's unused specs go at the end
// of the command.
func (a *applier) dropInstance(in *atollv1.Instance) error {
	if err := a.tx.Delete(state.TableInstances, in); err != nil {
		return err
	}
	a.touchApp(in.AppId)
	return nil
}

// pruneTouchedSpecs runs pruneSpecs for the apps the command changed, in
// id order (the FSM is deterministic).
func (a *applier) pruneTouchedSpecs() error {
	for _, id := range slices.Sorted(maps.Keys(a.prune)) {
		if err := a.pruneSpecs(id); err != nil {
			return err
		}
	}
	return nil
}

// Rollout describes an app's rollout from its instances (in creation
// order): nil when every instance runs the current spec or the app is not
// active. A new instance that fails (ERROR, or FAILED: it exited; or it
// runs and fails its health check) halts the
// rollout: FAILED, with that instance's error; it goes on by itself if the
// instance recovers, and a later update supersedes it.
func Rollout(app *atollv1.App, insts []*atollv1.Instance) *atollv1.AppRollout {
	if !AppActive(app) {
		return nil
	}
	target := SpecVersion(app)
	r := &atollv1.AppRollout{Version: target, State: RolloutInProgress, Strategy: StrategyStartFirst}
	if StopFirst(app) {
		r.Strategy = StrategyStopFirst
	}
	var failed *atollv1.Instance
	oldRunning := 0
	for _, in := range insts {
		if in.AppVersion != target {
			r.Outdated++
			if in.State == atollv1.InstanceState_INSTANCE_RUNNING {
				oldRunning++
			}
			continue
		}
		switch in.State {
		case atollv1.InstanceState_INSTANCE_RUNNING:
			switch {
			case app.HealthCheck == nil || in.Healthy:
				r.Updated++
			case in.HealthMessage != "" && failed == nil:
				failed = in // runs, but fails its health check: the rollout waits
			}
		case atollv1.InstanceState_INSTANCE_ERROR, atollv1.InstanceState_INSTANCE_FAILED:
			if failed == nil {
				failed = in
			}
		}
	}
	if r.Outdated == 0 {
		return nil
	}
	if failed != nil {
		why := failed.LastError
		if failed.State == atollv1.InstanceState_INSTANCE_RUNNING {
			why = "unhealthy: " + failed.HealthMessage
		}
		if why == "" {
			why = "instance failed"
		}
		r.State = RolloutFailed
		r.Message = fmt.Sprintf("rollout to version %d failed: instance %s: %s (%d instance(s) of the previous version still running)",
			target, failed.Id, why, oldRunning)
		return r
	}
	r.Message = fmt.Sprintf("rolling out version %d (%s): %d of %d updated", target, r.Strategy, r.Updated, max(app.Replicas, 1))
	return r
}
