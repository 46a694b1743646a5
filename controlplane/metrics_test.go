package controlplane_test

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// scrape GETs /metrics from a server's HTTP port and returns each sample
// line ("name{labels} value") keyed by its series.
func scrape(t testing.TB, s *controlplane.Server) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %s: %s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// metricValue returns one series' value (0 if absent).
func metricValue(t testing.TB, s *controlplane.Server, series string) float64 {
	return scrape(t, s)[series]
}

func TestMetricsEndpoint(t *testing.T) {
	c := cptest.NewCluster(t, 3)
	ctx := cptest.Ctx(t, c.AdminToken)
	l := c.WaitLeader()
	envs := cptest.Envs(t, l)
	e, err := envs.CreateEnvironment(ctx, smallEnv("metered"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = envs.GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: "env_doesnotexist0000"})
	if err == nil {
		t.Fatal("get of a missing env succeeded")
	}
	failCode := status.Code(err).String()
	if _, err := envs.GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: e.Id}); err != nil {
		t.Fatal(err)
	}

	m := scrape(t, l)
	has := func(prefix string) float64 {
		t.Helper()
		for k, v := range m {
			if k == prefix || strings.HasPrefix(k, prefix+"{") {
				return v
			}
		}
		t.Errorf("/metrics lacks %s", prefix)
		return 0
	}
	if v := has("atoll_raft_state"); v != 2 {
		t.Errorf("leader's atoll_raft_state = %v, want 2", v)
	}
	if v := has("atoll_raft_term"); v < 1 {
		t.Errorf("atoll_raft_term = %v", v)
	}
	if v := has("atoll_raft_commit_index"); v < float64(e.CreateIndex) {
		t.Errorf("atoll_raft_commit_index = %v, want >= %d", v, e.CreateIndex)
	}
	if v := has("atoll_raft_apply_duration_seconds_count"); v < 1 {
		t.Errorf("atoll_raft_apply_duration_seconds_count = %v", v)
	}
	has("atoll_raft_apply_duration_seconds_bucket")
	has("atoll_fsm_apply_duration_seconds_bucket")
	if v := has("atoll_fsm_apply_duration_seconds_count"); v < 1 {
		t.Errorf("atoll_fsm_apply_duration_seconds_count = %v", v)
	}
	has("atoll_api_request_duration_seconds_bucket")
	for series, want := range map[string]float64{
		`atoll_api_requests_total{code="OK",method="/atoll.v1.EnvironmentService/CreateEnvironment"}`:            1,
		`atoll_api_requests_total{code="OK",method="/atoll.v1.EnvironmentService/GetEnvironment"}`:               1,
		`atoll_api_requests_total{code="` + failCode + `",method="/atoll.v1.EnvironmentService/GetEnvironment"}`: 1,
		`atoll_api_request_duration_seconds_count{method="/atoll.v1.EnvironmentService/CreateEnvironment"}`:      1,
		`atoll_state_objects{type="environment"}`:                                                                1,
		`atoll_state_objects{type="organization"}`:                                                               1,
		`atoll_state_objects{type="server"}`:                                                                     3,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}

	// A follower reports its own raft state and, once applied, the same objects.
	f := c.Followers()[0]
	followerApplied(t, f, e.CreateIndex)
	fm := scrape(t, f)
	if fm["atoll_raft_state"] != 0 || fm[`atoll_state_objects{type="environment"}`] != 1 {
		t.Errorf("follower: atoll_raft_state=%v environments=%v", fm["atoll_raft_state"], fm[`atoll_state_objects{type="environment"}`])
	}
}
