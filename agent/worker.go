package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime"
)

// Labels the agent adds besides runtime.Label*.
const (
	// LabelSpec is a hash of the assignment a container was created from; a
	// different hash means the container must be replaced.
	LabelSpec = "atoll.spec"
	// LabelVersion is the app version of the assignment.
	LabelVersion = "atoll.version"
	// LabelVolume is the volume id on volumes the agent creates.
	LabelVolume = "atoll.volume"
	// LabelAgent is the id of the agent (its data dir) that created a
	// container, volume or probe: an agent adopts and removes only its own
	// (and unlabelled ones of older versions), so two agents on one engine
	// (atoll dev next to a cluster's agent, tests) leave each other alone.
	LabelAgent = "atoll.agent"
)

// ContainerName is the name of an instance's container.
func ContainerName(instanceID string) string { return "atoll-" + instanceID }

// stableAfter is how long a container must run before its restart backoff
// starts again from the minimum.
const stableAfter = 10 * time.Second

// worker runs one instance's state machine (swarmkit exec controller style):
// prepare image -> create -> start -> running -> exited -> restart with
// backoff; stop when not wanted running; remove when retired. Every step is
// idempotent and starts from what the runtime reports, so the loop can be
// repeated at any time.
type worker struct {
	a     *Agent
	id    string
	name  string
	after <-chan struct{} // closed when a previous worker of this id is gone
	kick  chan struct{}
	done  chan struct{}

	mu         sync.Mutex
	spec       *atollv1.Assignment
	retired    bool
	storageErr string // set by the usage loop

	believedRunning atomic.Bool

	// The health check's result (set by the probe goroutine) and the last
	// status reported, under mu.
	healthy   bool
	healthMsg string
	last      *atollv1.InstanceStatus

	// Owned by the run goroutine.
	state        atollv1.InstanceState
	errMsg       string
	containerID  string
	startedAt    time.Time
	address      string
	restarts     int32
	handledExit  time.Time
	restartDelay time.Duration
	nextStart    time.Time
	imageRetryAt time.Time
	storageHold  bool
	holdUntil    time.Time
	drainUntil   time.Time // see drainDelay
	probe        *healthProbe
}

func newWorker(a *Agent, as *atollv1.Assignment, after <-chan struct{}) *worker {
	return &worker{
		a: a, id: as.InstanceId, name: ContainerName(as.InstanceId), after: after,
		kick: make(chan struct{}, 1), done: make(chan struct{}), spec: as,
	}
}

func (w *worker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *worker) update(as *atollv1.Assignment) {
	w.mu.Lock()
	changed := !proto.Equal(w.spec, as)
	w.spec = as
	w.mu.Unlock()
	if changed {
		w.poke()
	}
}

func (w *worker) retire() {
	w.mu.Lock()
	w.retired = true
	w.mu.Unlock()
	w.poke()
}

func (w *worker) storageExceeded(msg string) {
	w.mu.Lock()
	w.storageErr = msg
	w.mu.Unlock()
	w.poke()
}

// observe is called by the poll loop with whether the container runs.
func (w *worker) observe(running bool) {
	if w.believedRunning.Load() && !running {
		w.poke()
	}
}

func (w *worker) snapshot() (*atollv1.Assignment, bool, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	msg := w.storageErr
	w.storageErr = ""
	return w.spec, w.retired, msg
}

func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	defer w.stopHealth()
	if w.after != nil {
		select {
		case <-w.after:
		case <-ctx.Done():
			return
		}
	}
	log := w.a.log.With("instance", w.id)
	for {
		spec, retired, storageMsg := w.snapshot()
		var wait time.Duration
		start := time.Now()
		if retired {
			if d := w.drainDelay(start); d > 0 {
				wait = d
			} else if err := w.teardown(ctx); err == nil {
				w.a.forget(w.id)
				log.Info("instance removed")
				return
			} else if ctx.Err() == nil {
				log.Warn("removing container failed; retrying", "err", err)
				wait = w.nextDelay()
			}
		} else {
			wait = w.reconcile(ctx, spec, storageMsg)
		}
		w.a.m.reconcile.Observe(time.Since(start).Seconds())
		if ctx.Err() != nil {
			return
		}
		if wait < 0 {
			continue
		}
		var timer *time.Timer
		var tc <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
		case <-w.kick:
		case <-tc:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// drainDelay is how long to wait before stopping the container of an
// instance that is to stop: one that routers send requests to (running,
// with a routed address) first leaves their tables, which the control
// plane changes in the same message as this stop, and serves what is in
// flight for cfg.ShutdownDelay; then SIGTERM. 0: stop now.
func (w *worker) drainDelay(now time.Time) time.Duration {
	if w.a.cfg.ShutdownDelay <= 0 || w.state != atollv1.InstanceState_INSTANCE_RUNNING || w.address == "" {
		return 0
	}
	if w.drainUntil.IsZero() {
		w.drainUntil = now.Add(w.a.cfg.ShutdownDelay)
		w.a.log.Debug("instance leaves the routers; stopping after the shutdown delay", "instance", w.id, "delay", w.a.cfg.ShutdownDelay)
	}
	return max(w.drainUntil.Sub(now), 0)
}

// again asks the loop to run reconcile once more at once.
const again = time.Duration(-1)

// reconcile moves the instance one or more steps towards spec and returns
// when to look again (0: on the next change or observed exit only).
func (w *worker) reconcile(ctx context.Context, spec *atollv1.Assignment, storageMsg string) time.Duration {
	a := w.a
	now := time.Now()
	if !spec.Running {
		if d := w.drainDelay(now); d > 0 {
			return d
		}
		return w.ensureStopped(ctx)
	}
	w.drainUntil = time.Time{} // wanted running again: no drain pending
	if storageMsg != "" {
		if err := w.stopContainer(ctx); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			return w.fail(fmt.Sprintf("stop after %s: %v", storageMsg, err))
		}
		a.m.failures.Inc()
		w.storageHold = true
		w.holdUntil = now.Add(a.cfg.RestartBackoffMax)
		w.setState(atollv1.InstanceState_INSTANCE_FAILED, storageMsg)
		a.log.Warn("instance stopped", "instance", w.id, "reason", storageMsg)
		return a.cfg.RestartBackoffMax
	}
	if now.Before(w.holdUntil) {
		return w.holdUntil.Sub(now)
	}
	if now.Before(w.imageRetryAt) {
		return w.imageRetryAt.Sub(now)
	}

	// Prepare: the image.
	ictx, cancel := context.WithTimeout(ctx, 10*time.Minute) // the runtime bounds pulls itself
	err := a.rt.EnsureImage(ictx, spec.Image)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		if errors.Is(err, runtime.ErrImageNotFound) || errors.Is(err, runtime.ErrInvalidSpec) {
			if !strings.Contains(err.Error(), strconv.Quote(spec.Image)) {
				err = fmt.Errorf("image %q: %w", spec.Image, err) // the runtime's error names it already otherwise
			}
			return w.permanent(err)
		}
		return w.fail(fmt.Sprintf("prepare image %q: %v", spec.Image, err))
	}
	w.imageRetryAt = time.Time{}

	// Create, or adopt what exists when it was made from the same assignment.
	hash := specHash(spec)
	info, err := w.inspect(ctx)
	if err == nil && info.Labels[LabelSpec] != hash {
		a.log.Info("assignment changed; replacing container", "instance", w.id, "container", info.ID)
		if err := w.removeContainer(ctx); err != nil {
			return w.fail(fmt.Sprintf("replace container: %v", err))
		}
		w.handledExit = time.Time{}
		err = runtime.ErrNotFound
	}
	if errors.Is(err, runtime.ErrNotFound) {
		if peer := w.replacedPeer(ctx, spec); peer != "" {
			// Stop-first: wait for the container this one replaces.
			w.setState(atollv1.InstanceState_INSTANCE_STARTING, "waiting for "+peer+" to stop (it uses the same volumes)")
			return a.cfg.PollInterval
		}
		if err := w.create(ctx, spec, hash); err != nil {
			switch {
			case ctx.Err() != nil:
				return 0
			case errors.Is(err, runtime.ErrAlreadyExists):
				return again
			case errors.Is(err, runtime.ErrInvalidSpec), errors.Is(err, runtime.ErrUnknownOwner), errors.Is(err, runtime.ErrImageNotFound):
				return w.permanent(err)
			}
			return w.fail(fmt.Sprintf("create: %v", err))
		}
		info, err = w.inspect(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		return w.fail(fmt.Sprintf("inspect: %v", err))
	}
	w.containerID = info.ID

	if info.Running() {
		if w.state != atollv1.InstanceState_INSTANCE_RUNNING || !w.believedRunning.Load() {
			w.markRunning(spec, info)
		}
		return w.untilStable(info, now)
	}
	w.believedRunning.Store(false)

	// Exited: count it once, then restart after the backoff.
	if !info.StartedAt.IsZero() && !info.FinishedAt.IsZero() && !info.FinishedAt.Equal(w.handledExit) {
		w.handledExit = info.FinishedAt
		w.restarts++
		reason := exitReason(info, spec)
		w.nextStart = now.Add(w.nextDelay())
		a.m.failures.Inc()
		w.setState(atollv1.InstanceState_INSTANCE_FAILED, reason)
		a.log.Warn("container exited", "instance", w.id, "reason", reason, "restarts", w.restarts, "restart_in", w.nextStart.Sub(now).Round(time.Millisecond))
	}
	if now.Before(w.nextStart) {
		return w.nextStart.Sub(now)
	}
	if w.storageHold {
		if msg := w.storageOver(ctx, spec); msg != "" {
			w.holdUntil = now.Add(a.cfg.RestartBackoffMax)
			w.setState(atollv1.InstanceState_INSTANCE_FAILED, msg)
			return a.cfg.RestartBackoffMax
		}
		w.storageHold = false
	}

	// Start.
	w.setState(atollv1.InstanceState_INSTANCE_STARTING, w.errMsg)
	sctx, cancel := context.WithTimeout(ctx, a.cfg.RuntimeTimeout)
	err = a.rt.Start(sctx, info.ID)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		a.m.failures.Inc()
		w.restarts++
		d := w.nextDelay()
		w.nextStart = now.Add(d)
		w.setState(atollv1.InstanceState_INSTANCE_FAILED, fmt.Sprintf("start: %v", err))
		return d
	}
	a.m.starts.Inc()
	info, err = w.inspect(ctx)
	if err != nil {
		return w.fail(fmt.Sprintf("inspect: %v", err))
	}
	if !info.Running() {
		return again // exited at once: counted on the next pass
	}
	w.markRunning(spec, info)
	return w.untilStable(info, now)
}

// replacedPeer names a running container of another instance of the same
// app that is no longer assigned to this agent (an instance being
// replaced), when this instance mounts volumes: the control plane rolls
// such apps stop-first, and the replacement's container is created only
// once the old one has stopped, so the two never use the volume data at the
// same time. "" when there is none (or the runtime cannot list: the
// control plane's order is then all there is).
func (w *worker) replacedPeer(ctx context.Context, spec *atollv1.Assignment) string {
	if len(spec.Volumes) == 0 {
		return ""
	}
	lctx, cancel := context.WithTimeout(ctx, w.a.cfg.RuntimeTimeout)
	defer cancel()
	cs, err := w.a.rt.List(lctx, map[string]string{runtime.LabelApp: spec.AppId})
	if err != nil {
		w.a.log.Warn("list the app's containers before starting a volume user", "instance", w.id, "err", err)
		return ""
	}
	w.a.mu.Lock()
	defer w.a.mu.Unlock()
	for _, c := range cs {
		id := c.Labels[runtime.LabelAlloc]
		if id == "" || id == w.id || !c.Running() || !w.a.owns(c.Labels) {
			continue
		}
		if _, assigned := w.a.desired[id]; !assigned {
			return c.Name
		}
	}
	return ""
}

// ensureStopped stops (and keeps) the container of an instance that should
// not run.
func (w *worker) ensureStopped(ctx context.Context) time.Duration {
	info, err := w.inspect(ctx)
	if errors.Is(err, runtime.ErrNotFound) {
		w.containerID, w.address, w.startedAt = "", "", time.Time{}
		w.setState(atollv1.InstanceState_INSTANCE_STOPPED, "")
		return 0
	}
	if err != nil {
		return w.fail(fmt.Sprintf("inspect: %v", err))
	}
	w.containerID = info.ID
	if info.Running() {
		if err := w.stopContainer(ctx); err != nil {
			return w.fail(fmt.Sprintf("stop: %v", err))
		}
	} else {
		w.handledExit = info.FinishedAt
	}
	w.believedRunning.Store(false)
	w.address = ""
	w.restartDelay, w.nextStart = 0, time.Time{}
	w.setState(atollv1.InstanceState_INSTANCE_STOPPED, "")
	return 0
}

// untilStable resets the restart backoff once the container has run for
// stableAfter, and says when to look again for that.
func (w *worker) untilStable(info runtime.ContainerInfo, now time.Time) time.Duration {
	if w.restartDelay == 0 {
		return 0
	}
	stable := info.StartedAt.Add(stableAfter)
	if !now.Before(stable) || info.StartedAt.IsZero() {
		w.restartDelay = 0
		return 0
	}
	return stable.Sub(now)
}

// fail reports FAILED with msg and returns the retry delay.
func (w *worker) fail(msg string) time.Duration {
	w.a.m.failures.Inc()
	d := w.nextDelay()
	w.setState(atollv1.InstanceState_INSTANCE_FAILED, msg)
	return d
}

// permanent reports ERROR (cannot run as specified) and retries rarely.
func (w *worker) permanent(err error) time.Duration {
	w.a.m.failures.Inc()
	w.imageRetryAt = time.Now().Add(w.a.cfg.ImageRetry)
	if w.state != atollv1.InstanceState_INSTANCE_ERROR || w.errMsg != err.Error() {
		w.a.log.Warn("instance cannot run", "instance", w.id, "err", err)
	}
	w.setState(atollv1.InstanceState_INSTANCE_ERROR, err.Error())
	return w.a.cfg.ImageRetry
}

func (w *worker) nextDelay() time.Duration {
	if w.restartDelay == 0 {
		w.restartDelay = w.a.cfg.RestartBackoffMin
	} else {
		w.restartDelay = min(2*w.restartDelay, w.a.cfg.RestartBackoffMax)
	}
	return w.restartDelay
}

func (w *worker) markRunning(spec *atollv1.Assignment, info runtime.ContainerInfo) {
	w.believedRunning.Store(true)
	w.containerID = info.ID
	w.startedAt = info.StartedAt
	w.address = ""
	target := int(spec.PublicPort)
	if target == 0 && len(spec.Ports) > 0 {
		target = int(spec.Ports[0].Number)
	}
	for _, p := range info.Ports {
		if p.ContainerPort == target && p.HostPort != 0 {
			w.address = w.a.cfg.Address + ":" + strconv.Itoa(p.HostPort)
			break
		}
	}
	w.startHealth(spec, info)
	w.setState(atollv1.InstanceState_INSTANCE_RUNNING, "")
}

func (w *worker) setState(s atollv1.InstanceState, errMsg string) {
	if s != atollv1.InstanceState_INSTANCE_RUNNING {
		w.stopHealth() // checked again from scratch when it runs again
	}
	w.state, w.errMsg = s, errMsg
	st := &atollv1.InstanceStatus{
		InstanceId:  w.id,
		State:       s,
		ContainerId: w.containerID,
		Restarts:    w.restarts,
		Error:       errMsg,
	}
	if s == atollv1.InstanceState_INSTANCE_RUNNING {
		st.Address = w.address
		if !w.startedAt.IsZero() {
			st.StartedAt = timestamppb.New(w.startedAt)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if s == atollv1.InstanceState_INSTANCE_RUNNING && w.probe != nil {
		st.Healthy, st.HealthMessage = w.healthy, w.healthMsg
	}
	w.last = st
	w.a.report(st)
}

func (w *worker) inspect(ctx context.Context) (runtime.ContainerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, w.a.cfg.RuntimeTimeout)
	defer cancel()
	return w.a.rt.Inspect(ctx, w.name)
}

// stopContainer stops the container and remembers its exit as handled.
func (w *worker) stopContainer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.a.cfg.StopTimeout+w.a.cfg.RuntimeTimeout)
	defer cancel()
	if err := w.a.rt.Stop(ctx, w.name, w.a.cfg.StopTimeout); err != nil {
		return err
	}
	w.believedRunning.Store(false)
	if info, err := w.a.rt.Inspect(ctx, w.name); err == nil {
		w.handledExit = info.FinishedAt
	}
	return nil
}

func (w *worker) removeContainer(ctx context.Context) error {
	if err := w.stopContainer(ctx); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, w.a.cfg.RuntimeTimeout)
	defer cancel()
	return w.a.rt.Remove(ctx, w.name)
}

// teardown stops and removes the container of a retired instance; named
// volumes stay.
func (w *worker) teardown(ctx context.Context) error {
	if err := w.removeContainer(ctx); err != nil {
		return err
	}
	w.believedRunning.Store(false)
	return nil
}

// storageOver measures the instance's storage and returns a message when it
// is above the request.
func (w *worker) storageOver(ctx context.Context, spec *atollv1.Assignment) string {
	limit := spec.GetResources().GetStorage()
	if limit <= 0 {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, w.a.cfg.RuntimeTimeout)
	defer cancel()
	st, err := w.a.rt.Stats(ctx, w.name)
	if err != nil {
		return ""
	}
	return storageMessage(st.StorageMB, limit)
}

func storageMessage(usedMB float64, limitMB int32) string {
	if limitMB <= 0 || usedMB <= float64(limitMB) {
		return ""
	}
	return fmt.Sprintf("%s (%d MB > %d MB)", ErrStorageExceeded, int64(usedMB+0.5), limitMB)
}

func exitReason(info runtime.ContainerInfo, spec *atollv1.Assignment) string {
	var s string
	switch {
	case info.OOMKilled && spec.GetResources().GetMemory() > 0:
		s = fmt.Sprintf("OOM killed at %dMB limit", spec.GetResources().GetMemory())
	case info.OOMKilled:
		s = "OOM killed"
	default:
		s = fmt.Sprintf("exited with code %d", info.ExitCode)
	}
	if info.Error != "" {
		s += ": " + info.Error
	}
	return s
}

// create makes the instance's volumes and container.
func (w *worker) create(ctx context.Context, as *atollv1.Assignment, hash string) error {
	a := w.a
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RuntimeTimeout)
	defer cancel()
	for _, v := range as.Volumes {
		labels := a.ownLabels()
		labels[runtime.LabelOrg], labels[runtime.LabelEnv], labels[LabelVolume] = as.OrgId, as.EnvId, v.VolumeId
		if err := a.rt.EnsureVolume(ctx, v.Name, labels); err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
	}
	_, err := a.rt.Create(ctx, w.containerSpec(as, hash))
	return err
}

// containerSpec turns an assignment into the runtime's spec.
func (w *worker) containerSpec(as *atollv1.Assignment, hash string) runtime.ContainerSpec {
	a := w.a
	labels := a.ownLabels()
	labels[runtime.LabelAlloc] = as.InstanceId
	labels[runtime.LabelApp] = as.AppId
	labels[runtime.LabelEnv] = as.EnvId
	labels[runtime.LabelOrg] = as.OrgId
	labels[LabelSpec] = hash
	labels[LabelVersion] = strconv.FormatInt(as.AppVersion, 10)
	spec := runtime.ContainerSpec{
		Name:    w.name,
		Image:   as.Image,
		Command: as.Command,
		Args:    as.Args,
		Env:     as.Env,
		Labels:  labels,
		Limits: runtime.Limits{
			MilliCPU:    int64(as.GetResources().GetCpu()),
			MemoryBytes: int64(as.GetResources().GetMemory()) << 20,
			StorageMB:   int64(as.GetResources().GetStorage()),
		},
	}
	for _, f := range as.Files {
		spec.Files = append(spec.Files, runtime.FileMount{Content: f.Content, MountPath: f.MountPath, Owner: f.Owner})
	}
	for _, v := range as.Volumes {
		spec.Volumes = append(spec.Volumes, runtime.VolumeMount{VolumeName: v.Name, Path: v.Path})
	}
	for _, p := range as.Ports {
		proto := runtime.TCP
		if strings.EqualFold(p.Protocol, "udp") {
			proto = runtime.UDP
		}
		spec.Ports = append(spec.Ports, runtime.Port{Name: p.Name, Number: int(p.Number), Protocol: proto, Publish: true, HostIP: a.cfg.BindIP})
	}
	// An app may publish its public port without listing it in ports: the
	// router needs it published all the same.
	if pp := int(as.PublicPort); pp != 0 && !slices.ContainsFunc(spec.Ports, func(p runtime.Port) bool { return p.Number == pp && p.Protocol == runtime.TCP }) {
		spec.Ports = append(spec.Ports, runtime.Port{Number: pp, Protocol: runtime.TCP, Publish: true, HostIP: a.cfg.BindIP})
	}
	return spec
}

// specHash identifies what a container is made from: everything of the
// assignment except whether it should run and what only the router uses.
func specHash(as *atollv1.Assignment) string {
	c := proto.Clone(as).(*atollv1.Assignment)
	c.Running, c.Hostname, c.AppName, c.EnvSlug = false, "", "", ""
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
