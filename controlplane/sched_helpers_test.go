package controlplane_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// schedFixture is a 3-server cluster with short heartbeats, an environment
// with room, and clients on the leader.
type schedFixture struct {
	c     *cptest.Cluster
	ctx   context.Context
	env   *atollv1.Environment
	apps  atollv1.AppServiceClient
	nodes atollv1.NodeServiceClient
	envs  atollv1.EnvironmentServiceClient
}

const schedWait = 20 * time.Second

func fastHeartbeats(_ int, c *controlplane.Config) {
	c.HeartbeatPeriod, c.NodeTTL = 100*time.Millisecond, 500*time.Millisecond
}

func newSchedFixture(t *testing.T, servers int, envQuota *atollv1.Resources, opts ...cptest.Option) *schedFixture {
	t.Helper()
	c := cptest.NewCluster(t, servers, append([]cptest.Option{fastHeartbeats}, opts...)...)
	l := c.WaitLeader()
	conn := cptest.Conn(t, l)
	f := &schedFixture{c: c, ctx: cptest.Ctx(t, c.AdminToken), apps: atollv1.NewAppServiceClient(conn),
		nodes: atollv1.NewNodeServiceClient(conn), envs: atollv1.NewEnvironmentServiceClient(conn)}
	if _, err := atollv1.NewOrganizationServiceClient(conn).UpdateOrganization(f.ctx, &atollv1.UpdateOrganizationRequest{
		Organization: &atollv1.Organization{Quota: &atollv1.Resources{Cpu: math.MaxInt32, Memory: math.MaxInt32, Storage: math.MaxInt32}},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"quota"}},
	}); err != nil {
		t.Fatalf("raise org quota: %v", err)
	}
	if envQuota == nil {
		envQuota = &atollv1.Resources{Cpu: 64000, Memory: 131072, Storage: 102400}
	}
	env, err := f.envs.CreateEnvironment(f.ctx, &atollv1.CreateEnvironmentRequest{Name: "sched", ResourceQuota: envQuota})
	if err != nil {
		t.Fatalf("create environment: %v", err)
	}
	f.env = env
	return f
}

func (f *schedFixture) agent(name string, cpu, mem int32) *cptest.FakeAgent {
	return f.c.NewFakeAgent(cptest.FakeAgentConfig{Name: name, Capacity: &atollv1.Resources{Cpu: cpu, Memory: mem, Storage: 100000}})
}

func (f *schedFixture) createApp(t *testing.T, name string, replicas int32, cpu, mem string) *atollv1.App {
	t.Helper()
	a, err := f.apps.CreateApp(f.ctx, &atollv1.CreateAppRequest{EnvId: f.env.Id, App: &atollv1.App{
		Name: name, Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: "nginx", Tag: "1"}},
		ResourceRequests: &atollv1.ResourceRequests{Cpu: cpu, Memory: mem}, Replicas: replicas,
	}})
	if err != nil {
		t.Fatalf("create app %s: %v", name, err)
	}
	return a
}

// counts of an app's instances in a snapshot.
type appCounts struct {
	total, running, current int
	byNode                  map[string]int
}

func countApp(tx *state.Txn, appID string) appCounts {
	app := tx.App(appID)
	c := appCounts{byNode: map[string]int{}}
	for _, in := range tx.AppInstances(appID) {
		c.total++
		c.byNode[in.NodeId]++
		if app != nil && in.AppVersion == fsm.SpecVersion(app) {
			c.current++
			if in.State == atollv1.InstanceState_INSTANCE_RUNNING {
				c.running++
			}
		}
	}
	return c
}

// settled: exactly replicas instances, all of the current spec version and RUNNING.
func settled(tx *state.Txn, appID string, replicas int) bool {
	c := countApp(tx, appID)
	return c.total == replicas && c.running == replicas
}

func (f *schedFixture) waitSettled(t *testing.T, appID string, replicas int) {
	t.Helper()
	f.c.WaitState(schedWait, "app "+appID+" settled", func(tx *state.Txn) bool { return settled(tx, appID, replicas) })
}

// agentOn returns the agent whose node runs the most instances.
func busiest(tx *state.Txn, agents ...*cptest.FakeAgent) *cptest.FakeAgent {
	var best *cptest.FakeAgent
	n := -1
	for _, a := range agents {
		if k := len(tx.NodeInstances(a.NodeID())); k > n {
			best, n = a, k
		}
	}
	return best
}

func (f *schedFixture) snap() *state.Txn {
	st, _ := f.c.WaitLeader().State()
	return st.Snapshot()
}

// registry is the leader's own metrics registry.
func (f *schedFixture) registry(t *testing.T) *prometheus.Registry {
	t.Helper()
	l := f.c.WaitLeader()
	r, ok := f.c.Configs[f.c.Index(l)].Registry.(*prometheus.Registry)
	if !ok {
		t.Fatal("the leader has no *prometheus.Registry")
	}
	return r
}

// metricValue sums a metric family's samples whose labels include want.
func schedMetric(t testing.TB, r *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			for k, val := range want {
				found := false
				for _, lp := range m.Label {
					found = found || lp.GetName() == k && lp.GetValue() == val
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				v += m.Counter.GetValue()
			case m.Gauge != nil:
				v += m.Gauge.GetValue()
			case m.Histogram != nil:
				v += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return v
}
