package agent_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/agent/agenttest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime"
	"github.com/atollhq/atoll/runtime/fake"
)

// portMap is the fake runtime with every published port of a running
// container mapped to one real listener (the fake publishes nothing).
type portMap struct {
	*fake.Fake
	hostPort int
}

func (p *portMap) Inspect(ctx context.Context, name string) (runtime.ContainerInfo, error) {
	info, err := p.Fake.Inspect(ctx, name)
	for i := range info.Ports {
		info.Ports[i].HostPort = p.hostPort
	}
	return info, err
}

func TestHealthCheck(t *testing.T) {
	var code atomic.Int32
	code.Store(http.StatusOK)
	var hits atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		w.WriteHeader(int(code.Load()))
	}))
	defer app.Close()
	_, port, _ := net.SplitHostPort(app.Listener.Addr().String())
	hp, _ := strconv.Atoi(port)

	srv := agenttest.New(t)
	as := assignment("i1")
	as.HealthCheck = &atollv1.HealthCheck{HttpPath: "/healthz", Port: 8080, IntervalSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 2}
	srv.SetAssignments(as, assignment("plain"))
	rt := &portMap{Fake: newFake(), hostPort: hp}
	start(t, testConfig(t, t.TempDir(), srv.Addr), rt)

	st := srv.AwaitStatus(t, wait, "i1", "running and healthy", func(s *atollv1.InstanceStatus) bool {
		return s.State == atollv1.InstanceState_INSTANCE_RUNNING && s.Healthy
	})
	if st.HealthMessage != "" {
		t.Errorf("healthy status %v", st)
	}
	// Without a check nothing is probed and no health is reported.
	if p := srv.AwaitStatus(t, wait, "plain", "running", running); p.Healthy || p.HealthMessage != "" {
		t.Errorf("instance without a check: %v", p)
	}

	code.Store(http.StatusServiceUnavailable)
	st = srv.AwaitStatus(t, wait, "i1", "unhealthy", func(s *atollv1.InstanceStatus) bool { return !s.Healthy })
	if st.State != atollv1.InstanceState_INSTANCE_RUNNING || st.HealthMessage != "GET /healthz: 503" || st.Restarts != 0 {
		t.Errorf("unhealthy status %v; want RUNNING, not restarted, GET /healthz: 503", st)
	}
	if n := hits.Load(); n < 3 {
		t.Errorf("%d checks; want >= 3 (one passing, two failing)", n)
	}

	code.Store(http.StatusFound) // 3xx is healthy
	srv.AwaitStatus(t, wait, "i1", "healthy again", func(s *atollv1.InstanceStatus) bool { return s.Healthy && s.HealthMessage == "" })

	app.Close()
	st = srv.AwaitStatus(t, wait, "i1", "unhealthy (refused)", func(s *atollv1.InstanceStatus) bool { return !s.Healthy })
	if st.HealthMessage != "GET /healthz: connection refused" || st.State != atollv1.InstanceState_INSTANCE_RUNNING {
		t.Errorf("status %v; want RUNNING, GET /healthz: connection refused", st)
	}

	// Stopped: the probe goes, the health with it.
	off := proto.Clone(as).(*atollv1.Assignment)
	off.Running = false
	srv.Upsert(off)
	if st := srv.AwaitStatus(t, wait, "i1", "stopped", stopped); st.Healthy || st.HealthMessage != "" {
		t.Errorf("stopped status %v", st)
	}
}
