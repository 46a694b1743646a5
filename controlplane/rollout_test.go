package controlplane_test

import (
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// watchInstances records, over every committed state until stop, the
// fewest RUNNING instances of an app and the most instances it had.
type instanceWatch struct {
	mu               sync.Mutex
	minRun, maxTotal int
	stop, done       chan struct{}
}

func (f *schedFixture) watchInstances(appID string) *instanceWatch {
	w := &instanceWatch{minRun: 1 << 30, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			st, _ := f.c.WaitLeader().State()
			tx := st.Snapshot()
			run, total := 0, 0
			for _, in := range tx.AppInstances(appID) {
				total++
				if in.State == atollv1.InstanceState_INSTANCE_RUNNING {
					run++
				}
			}
			w.mu.Lock()
			w.minRun, w.maxTotal = min(w.minRun, run), max(w.maxTotal, total)
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tx.TableWatch(state.TableMeta):
			}
		}
	}()
	return w
}

func (w *instanceWatch) end() (minRun, maxTotal int) {
	close(w.stop)
	<-w.done
	return w.minRun, w.maxTotal
}

func (f *schedFixture) setImage(t *testing.T, appID, tag string) *atollv1.App {
	t.Helper()
	upd, err := f.apps.UpdateApp(f.ctx, &atollv1.UpdateAppRequest{EnvId: f.env.Id, AppId: appID,
		App:        &atollv1.App{Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: tag}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"source"}}})
	if err != nil {
		t.Fatalf("update image to %s: %v", tag, err)
	}
	return upd
}

// barrier makes the scheduler evaluate a state at least as new as now: it
// creates an app and waits for it to be placed. Whatever the scheduler
// decided about the other apps on the way is committed by then.
func (f *schedFixture) barrier(t *testing.T, name string) {
	t.Helper()
	a := f.createApp(t, name, 1, "10m", "16Mi")
	f.waitSettled(t, a.Id, 1)
}

func ids(tx *state.Txn, appID string, version int64) []string {
	var out []string
	for _, in := range tx.AppInstances(appID) {
		if in.AppVersion == version {
			out = append(out, in.Id)
		}
	}
	return out
}

// An update to an image that cannot run halts the rollout: the old
// instances keep running with their assignments untouched, the status says
// which version failed and why; a later good update supersedes it and rolls
// through without ever going below the replica count.
func TestRolloutHaltsOnErrorAndIsSuperseded(t *testing.T) {
	f := newSchedFixture(t, 1, nil)
	agent := f.c.NewFakeAgent(cptest.FakeAgentConfig{Name: "host", Capacity: &atollv1.Resources{Cpu: 4000, Memory: 8192, Storage: 100000},
		Fail: func(as *atollv1.Assignment) string {
			if strings.HasSuffix(as.Image, ":missing") {
				return `image "` + as.Image + `": image not found`
			}
			return ""
		}})
	app := f.createApp(t, "web", 2, "100m", "64Mi")
	f.waitSettled(t, app.Id, 2)
	old := ids(f.snap(), app.Id, 1)

	w := f.watchInstances(app.Id)
	bad := f.setImage(t, app.Id, "missing")
	if bad.SpecVersion != bad.Version || bad.Status.GetRollout() == nil {
		t.Fatalf("update response: spec version %d (version %d), rollout %v", bad.SpecVersion, bad.Version, bad.Status.GetRollout())
	}
	f.c.WaitState(schedWait, "the new instance in ERROR", func(tx *state.Txn) bool {
		for _, in := range tx.AppInstances(app.Id) {
			if in.AppVersion == bad.Version && in.State == atollv1.InstanceState_INSTANCE_ERROR {
				return true
			}
		}
		return false
	})
	f.barrier(t, "probe1")
	tx := f.snap()
	if got := ids(tx, app.Id, 1); strings.Join(got, ",") != strings.Join(old, ",") {
		t.Fatalf("old instances %v, want %v kept", got, old)
	}
	for _, id := range old {
		if in := tx.Instance(id); in.State != atollv1.InstanceState_INSTANCE_RUNNING {
			t.Fatalf("old instance %s is %s", id, in.State)
		}
		for _, as := range agent.Upserts(id) {
			if as.Image != "nginx:1" || as.AppVersion != 1 {
				t.Fatalf("old instance %s was sent image %s version %d", id, as.Image, as.AppVersion)
			}
		}
	}
	if n := len(ids(tx, app.Id, bad.Version)); n != 1 {
		t.Fatalf("%d new instances placed, want 1 (the rollout halts)", n)
	}
	got, err := f.apps.GetApp(f.ctx, &atollv1.GetAppRequest{EnvId: f.env.Id, AppId: "web"})
	if err != nil {
		t.Fatal(err)
	}
	ro := got.Status.GetRollout()
	if ro.GetState() != fsm.RolloutFailed || ro.GetVersion() != bad.Version || got.Status.State != "RUNNING" || got.Status.Running != 2 ||
		!strings.Contains(got.Status.Message, "rollout to version") || !strings.Contains(got.Status.Message, "image not found") {
		t.Fatalf("status of the halted rollout: state %s running %d message %q rollout %v", got.Status.State, got.Status.Running, got.Status.Message, ro)
	}
	list, err := f.apps.ListApps(f.ctx, &atollv1.ListAppsRequest{EnvId: f.env.Id})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list.Apps {
		if a.Id == app.Id && a.Status.GetRollout().GetState() != fsm.RolloutFailed {
			t.Fatalf("app list does not show the failed rollout: %v", a.Status)
		}
	}

	// A good update supersedes it.
	good := f.setImage(t, app.Id, "2")
	f.c.WaitState(schedWait, "all instances on the good version", func(tx *state.Txn) bool {
		return len(ids(tx, app.Id, good.Version)) == 2 && settled(tx, app.Id, 2)
	})
	minRun, maxTotal := w.end()
	if minRun < 2 || maxTotal > 3 {
		t.Fatalf("rollout went down to %d RUNNING (want >= 2) and up to %d instances (want <= 3)", minRun, maxTotal)
	}
	tx = f.snap()
	if n := len(tx.AppSpecs(app.Id)); n != 0 {
		t.Fatalf("%d specs still kept after the rollout", n)
	}
	got, _ = f.apps.GetApp(f.ctx, &atollv1.GetAppRequest{EnvId: f.env.Id, AppId: "web"})
	if got.Status.GetRollout() != nil || got.Status.State != "RUNNING" {
		t.Fatalf("status after the rollout: %s %v", got.Status.State, got.Status.GetRollout())
	}
}

// Scaling up and down keeps the instances that run: no replacement.
func TestRolloutScaleDoesNotReplace(t *testing.T) {
	f := newSchedFixture(t, 1, nil)
	agent := f.agent("host", 4000, 8192)
	app := f.createApp(t, "web", 2, "100m", "64Mi")
	f.waitSettled(t, app.Id, 2)
	old := ids(f.snap(), app.Id, 1)
	for _, n := range []int32{3, 1} {
		upd, err := f.apps.UpdateApp(f.ctx, &atollv1.UpdateAppRequest{EnvId: f.env.Id, AppId: app.Id, App: &atollv1.App{Replicas: n},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"replicas"}}})
		if err != nil {
			t.Fatal(err)
		}
		if upd.SpecVersion != 1 {
			t.Fatalf("scaling to %d moved the spec version to %d", n, upd.SpecVersion)
		}
		f.waitSettled(t, app.Id, int(n))
	}
	tx := f.snap()
	left := ids(tx, app.Id, 1)
	if len(left) != 1 || (left[0] != old[0] && left[0] != old[1]) {
		t.Fatalf("after scaling 2 -> 3 -> 1: instances %v, want one of %v", left, old)
	}
	for _, as := range agent.Upserts(left[0]) {
		if as.AppVersion != 1 || as.Image != "nginx:1" {
			t.Fatalf("scaling changed the assignment of %s: %v", left[0], as)
		}
	}
}

// RestartApp rolls: every instance is replaced, one at a time, a new one
// running before an old one stops (start-first); an app with a volume
// replaces stop-first, never running two instances on its data.
func TestRolloutRestart(t *testing.T) {
	f := newSchedFixture(t, 1, nil)
	f.agent("host", 4000, 8192)
	web := f.createApp(t, "web", 3, "100m", "64Mi")
	f.waitSettled(t, web.Id, 3)
	before := ids(f.snap(), web.Id, 1)

	w := f.watchInstances(web.Id)
	res, err := f.apps.RestartApp(f.ctx, &atollv1.RestartAppRequest{EnvId: f.env.Id, AppId: web.Id})
	if err != nil {
		t.Fatal(err)
	}
	f.c.WaitState(schedWait, "web restarted", func(tx *state.Txn) bool {
		return len(ids(tx, web.Id, res.SpecVersion)) == 3 && settled(tx, web.Id, 3)
	})
	if minRun, maxTotal := w.end(); minRun < 3 || maxTotal > 4 {
		t.Fatalf("restart went down to %d RUNNING (want >= 3) and up to %d instances (want <= 4)", minRun, maxTotal)
	}
	for _, id := range before {
		if f.snap().Instance(id) != nil {
			t.Fatalf("instance %s survived the restart", id)
		}
	}

	if _, err := atollv1.NewVolumeServiceClient(cptestConn(t, f)).CreateVolume(f.ctx, &atollv1.CreateVolumeRequest{EnvId: f.env.Id, Volume: &atollv1.Volume{Name: "data", SizeMb: 100}}); err != nil {
		t.Fatal(err)
	}
	db, err := f.apps.CreateApp(f.ctx, &atollv1.CreateAppRequest{EnvId: f.env.Id, App: &atollv1.App{
		Name: "db", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "postgres", Tag: "16"}}, Replicas: 2,
		ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "64Mi"},
		VolumeMounts:     []*atollv1.VolumeMount{{VolNameRef: "data", Path: "/data"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.waitSettled(t, db.Id, 2)
	w = f.watchInstances(db.Id)
	res, err = f.apps.RestartApp(f.ctx, &atollv1.RestartAppRequest{EnvId: f.env.Id, AppId: db.Id})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Status.GetRollout().GetStrategy(); s != fsm.StrategyStopFirst {
		t.Fatalf("volume app rollout strategy %q, want %s", s, fsm.StrategyStopFirst)
	}
	f.c.WaitState(schedWait, "db restarted", func(tx *state.Txn) bool {
		return len(ids(tx, db.Id, res.SpecVersion)) == 2 && settled(tx, db.Id, 2)
	})
	if minRun, maxTotal := w.end(); minRun < 1 || maxTotal > 2 {
		t.Fatalf("stop-first restart went down to %d RUNNING (want >= 1) and up to %d instances (want <= 2)", minRun, maxTotal)
	}
}
