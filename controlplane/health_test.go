package controlplane_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// The health check is validated with its defaults filled in; an instance
// with a check is routed only while healthy, an unhealthy one makes the app
// DEGRADED saying why, and a rollout stops an old instance only once the
// new one is healthy.
func TestHealthCheckRoutingStatusAndRollout(t *testing.T) {
	f := newSchedFixture(t, 1, nil)
	agent := f.c.NewFakeAgent(cptest.FakeAgentConfig{Name: "host"})

	newApp := func(hc *atollv1.HealthCheck) (*atollv1.App, error) {
		return f.apps.CreateApp(f.ctx, &atollv1.CreateAppRequest{EnvId: f.env.Id, App: &atollv1.App{
			Name: "web", Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "1"}},
			ResourceRequests: &atollv1.ResourceRequests{Cpu: "100m", Memory: "64Mi"},
			Ports:            []*atollv1.Port{{Number: 8080}, {Number: 9090}},
			PublicEndpoint:   &atollv1.PublicEndpoint{AppPort: 8080}, HealthCheck: hc,
		}})
	}
	for _, tc := range []struct {
		hc    *atollv1.HealthCheck
		field string
	}{
		{&atollv1.HealthCheck{}, "healthCheck.httpPath"},
		{&atollv1.HealthCheck{HttpPath: "healthz"}, "healthCheck.httpPath"},
		{&atollv1.HealthCheck{HttpPath: "/h", Port: 7000}, "healthCheck.port"},
		{&atollv1.HealthCheck{HttpPath: "/h", IntervalSeconds: 301}, "healthCheck.intervalSeconds"},
		{&atollv1.HealthCheck{HttpPath: "/h", IntervalSeconds: 5, TimeoutSeconds: 5}, "healthCheck.timeoutSeconds"},
		{&atollv1.HealthCheck{HttpPath: "/h", FailureThreshold: 11}, "healthCheck.failureThreshold"},
		{&atollv1.HealthCheck{HttpPath: "/h", InitialDelaySeconds: 601}, "healthCheck.initialDelaySeconds"},
	} {
		if _, err := newApp(tc.hc); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("health check %v: error %v, want one naming %s", tc.hc, err, tc.field)
		}
	}

	app, err := newApp(&atollv1.HealthCheck{HttpPath: "/healthz"})
	if err != nil {
		t.Fatal(err)
	}
	if hc := app.HealthCheck; hc.Port != 8080 || hc.IntervalSeconds != 10 || hc.TimeoutSeconds != 2 || hc.FailureThreshold != 3 || hc.InitialDelaySeconds != 0 {
		t.Fatalf("defaults: %v", hc)
	}
	host := app.PublicEndpoint.Hostname
	f.waitSettled(t, app.Id, 1)
	v1 := ids(f.snap(), app.Id, 1)[0]
	if as := agent.Upserts(v1); len(as) == 0 || as[len(as)-1].GetHealthCheck().GetHttpPath() != "/healthz" {
		t.Fatalf("assignment without the health check: %v", as)
	}
	addr := f.snap().Instance(v1).Address

	routed := func(want []string) {
		t.Helper()
		agent.WaitUntil(schedWait, "routes "+host+" = "+strings.Join(want, ","), func() bool {
			return slices.Equal(agent.Routes()[host], want)
		})
	}
	getApp := func() *atollv1.App {
		t.Helper()
		a, err := f.apps.GetApp(f.ctx, &atollv1.GetAppRequest{EnvId: f.env.Id, AppId: "web"})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	routed(nil) // RUNNING, not yet checked: not routed
	agent.SetHealth(v1, true, "")
	routed([]string{addr})
	if st := getApp().Status; st.State != "RUNNING" || !st.Instances[0].Healthy {
		t.Fatalf("healthy app status %v", st)
	}

	agent.SetHealth(v1, false, "GET /healthz: 503")
	routed(nil)
	st := getApp().Status
	if st.State != "DEGRADED" || st.Message != "instance "+v1+" unhealthy: GET /healthz: 503" ||
		st.Instances[0].State != atollv1.InstanceState_INSTANCE_RUNNING || st.Instances[0].HealthMessage != "GET /healthz: 503" {
		t.Fatalf("unhealthy app status %v", st)
	}
	// The environment stays RUNNING and names the unhealthy instance.
	f.c.WaitState(schedWait, "environment message naming the unhealthy instance", func(tx *state.Txn) bool {
		e := tx.Environment(f.env.Id)
		return e.Status == atollv1.EnvironmentStatus_RUNNING && strings.Contains(e.StatusMessage, "app web: instance "+v1+" unhealthy: GET /healthz: 503")
	})
	agent.SetHealth(v1, true, "")
	routed([]string{addr})
	f.c.WaitState(schedWait, "environment message cleared", func(tx *state.Txn) bool {
		return tx.Environment(f.env.Id).StatusMessage == ""
	})

	// A rollout waits for the new instance to be healthy.
	upd := f.setImage(t, app.Id, "2")
	f.c.WaitState(schedWait, "the new instance RUNNING", func(tx *state.Txn) bool {
		for _, in := range tx.AppInstances(app.Id) {
			if in.AppVersion == upd.SpecVersion && in.State == atollv1.InstanceState_INSTANCE_RUNNING {
				return true
			}
		}
		return false
	})
	f.barrier(t, "probe1")
	time.Sleep(200 * time.Millisecond) // min healthy is 0 here: only the check holds it
	if got := ids(f.snap(), app.Id, 1); len(got) != 1 {
		t.Fatalf("old instance stopped before the new one was healthy: %v", got)
	}
	v2 := ids(f.snap(), app.Id, upd.SpecVersion)[0]
	routed([]string{addr}) // the new one is not routed yet
	agent.SetHealth(v2, false, "GET /healthz: connection refused")
	f.c.WaitState(schedWait, "the new instance unhealthy", func(tx *state.Txn) bool {
		return tx.Instance(v2).HealthMessage != ""
	})
	if ro := getApp().Status.GetRollout(); ro.GetState() != "FAILED" || !strings.Contains(ro.GetMessage(), "unhealthy: GET /healthz: connection refused") {
		t.Fatalf("rollout with an unhealthy new instance: %v", ro)
	}
	agent.SetHealth(v2, true, "")
	f.c.WaitState(schedWait, "the old instance stopped", func(tx *state.Txn) bool {
		return len(ids(tx, app.Id, 1)) == 0 && settled(tx, app.Id, 1)
	})
	routed([]string{f.snap().Instance(v2).Address})
	if st := getApp().Status; st.State != "RUNNING" || st.GetRollout() != nil {
		t.Fatalf("status after the rollout: %v", st)
	}
}
