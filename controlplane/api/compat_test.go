package api

import (
	"encoding/json"
	"testing"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func TestLogLevel(t *testing.T) {
	for _, c := range []struct{ msg, stream, want string }{
		{"INFO: Application started successfully", "stdout", "INFO"},
		{"2024/01/01 10:00:00 [warn] 1#1: low disk", "stderr", "WARNING"},
		{`{"level":"error","msg":"boom"}`, "stdout", "ERROR"},
		{"level=debug msg=x", "stdout", "DEBUG"},
		{"listening on :8080", "stdout", "INFO"},
		{"panic: runtime error", "stderr", "PANIC"},
		{"something odd", "stderr", "ERROR"},
		{"informational only", "stdout", "INFO"}, // "informational" is no level word
	} {
		if got := logLevel(&atollv1.LogLine{Message: c.msg, Stream: c.stream}); got != c.want {
			t.Errorf("logLevel(%q, %s) = %s, want %s", c.msg, c.stream, got, c.want)
		}
	}
}

func TestBlueberryStatusNames(t *testing.T) {
	for s, want := range map[atollv1.EnvironmentStatus]string{
		atollv1.EnvironmentStatus_PENDING: "creating", atollv1.EnvironmentStatus_PROVISIONING: "creating",
		atollv1.EnvironmentStatus_RUNNING: "ready", atollv1.EnvironmentStatus_ERROR: "failed",
		atollv1.EnvironmentStatus_STOPPING: "terminating", atollv1.EnvironmentStatus_TERMINATING: "terminating",
		atollv1.EnvironmentStatus_SLEEPING: "sleeping", atollv1.EnvironmentStatus_HIBERNATING: "hibernating",
		atollv1.EnvironmentStatus_STOPPED: "stopped",
	} {
		if got := BlueberryStatus(&atollv1.Environment{Status: s}); got != want {
			t.Errorf("%s: %s, want %s", s, got, want)
		}
	}
	if got := BlueberryStatus(&atollv1.Environment{Status: atollv1.EnvironmentStatus_STOPPED, IsDeleted: true}); got != "deleted" {
		t.Errorf("deleted: %s", got)
	}
	// Every status has a name, and every name the filter takes is one of them or Blueberry's.
	for n := range atollv1.EnvironmentStatus_name {
		if s := atollv1.EnvironmentStatus(n); s != 0 && blueberryStatusNames[s] == "" {
			t.Errorf("%s has no Blueberry name", s)
		}
	}
}

// withSnakeNames carries both spellings at every level, and leaves map keys alone.
func TestWithSnakeNames(t *testing.T) {
	m := withSnakeNames(&atollv1.ListDeploymentsResponse{TotalCount: 1, Deployments: []*atollv1.Deployment{{Id: "dep_1", PreviousReleaseId: "rel_0"}}})
	b, _ := json.Marshal(m)
	var got struct {
		TotalCount  int32 `json:"totalCount"`
		TotalCount2 int32 `json:"total_count"`
		Deployments []map[string]any
	}
	if err := json.Unmarshal(b, &got); err != nil || got.TotalCount != 1 || got.TotalCount2 != 1 || len(got.Deployments) != 1 ||
		got.Deployments[0]["previous_release_id"] != "rel_0" || got.Deployments[0]["previousReleaseId"] != "rel_0" {
		t.Fatalf("%s", b)
	}
	e := withSnakeNames(&atollv1.Environment{Labels: map[string]string{"blueberry/backend_repo": "x", "someKey": "y"}})
	if l, _ := e["labels"].(map[string]any); len(l) != 2 || l["someKey"] != "y" {
		t.Fatalf("labels: %v", e["labels"])
	}
	if l, _ := e["active_deployments"].(map[string]any); l == nil {
		t.Fatalf("active_deployments: %v", e)
	}
}

func TestHoursTTL(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
		ok   bool
	}{{float64(24), "24h", true}, {"48", "48h", true}, {"2d", "48h", true}, {0.5, "0.5h", true}, {float64(168), "168h", true},
		{float64(169), "", false}, {float64(0), "", false}, {"-1", "", false}, {"soon", "", false}, {true, "", false}, {"200h", "", false}} {
		got, err := hoursTTL("ttl", c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("hoursTTL(%v) = %q, %v", c.in, got, err)
		}
	}
}
