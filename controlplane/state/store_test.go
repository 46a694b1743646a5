package state

import (
	"testing"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func ids(envs []*atollv1.Environment) map[string]bool {
	out := map[string]bool{}
	for _, e := range envs {
		out[e.Id] = true
	}
	return out
}

// The environments' one secondary index answers every lookup the code makes:
// by organization, by project, by name (case-insensitive), by slug.
func TestEnvironmentHandles(t *testing.T) {
	s := New(0)
	tx := s.WriteTxn()
	for _, p := range []*atollv1.Project{{Id: "prj_1", OrgId: "org_1"}, {Id: "prj_10", OrgId: "org_1"}, {Id: "prj_2", OrgId: "org_2"}} {
		if err := tx.Insert(TableProjects, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []*atollv1.Environment{
		{Id: "env_a", OrgId: "org_1", ProjectId: "prj_1", Name: "Web", Slug: "web"},
		{Id: "env_b", OrgId: "org_1", ProjectId: "prj_1", Name: "web", Slug: "web-2", IsDeleted: true},
		{Id: "env_c", OrgId: "org_1", ProjectId: "prj_10", Name: "Web", Slug: "web"},
		{Id: "env_d", OrgId: "org_2", ProjectId: "prj_2", Name: "api", Slug: "api"},
	} {
		if err := tx.Insert(TableEnvironments, e); err != nil {
			t.Fatal(err)
		}
	}
	tx.Commit()
	r := s.Snapshot()
	if got := ids(r.ProjectEnvironments("prj_1")); len(got) != 2 || !got["env_a"] || !got["env_b"] {
		t.Errorf("ProjectEnvironments(prj_1) = %v, want env_a and env_b (not prj_10's)", got)
	}
	if got := ids(r.Environments("org_1")); len(got) != 3 || got["env_d"] {
		t.Errorf("Environments(org_1) = %v, want env_a, env_b, env_c", got)
	}
	if e := r.LiveEnvironmentByName("prj_1", "WEB"); e == nil || e.Id != "env_a" {
		t.Errorf("LiveEnvironmentByName(prj_1, WEB) = %v, want env_a (env_b is deleted)", e)
	}
	if e := r.LiveEnvironmentByName("prj_1", "We"); e != nil {
		t.Errorf("a name prefix matched %s", e.Id)
	}
	if e := r.LiveEnvironmentBySlug("prj_10", "web"); e == nil || e.Id != "env_c" {
		t.Errorf("LiveEnvironmentBySlug(prj_10, web) = %v, want env_c", e)
	}
	if e := r.LiveEnvironmentBySlug("prj_1", "web-2"); e != nil {
		t.Errorf("deleted environment found by slug: %s", e.Id)
	}
	// An update moves the entries: the old name no longer finds it.
	tx = s.WriteTxn()
	if err := tx.Insert(TableEnvironments, &atollv1.Environment{Id: "env_a", OrgId: "org_1", ProjectId: "prj_1", Name: "Site", Slug: "web"}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	r = s.Snapshot()
	if e := r.LiveEnvironmentByName("prj_1", "web"); e != nil {
		t.Errorf("old name still finds %s", e.Id)
	}
	if e := r.LiveEnvironmentByName("prj_1", "site"); e == nil || e.Id != "env_a" {
		t.Errorf("new name: got %v", e)
	}
}

// The event log keeps at least limit events, drops the oldest in chunks, and
// reports the newest dropped index so a watcher knows what it missed.
func TestEventLogBound(t *testing.T) {
	const limit = 16
	s := New(limit)
	for i := uint64(1); i <= 100; i++ {
		tx := s.WriteTxn()
		if err := tx.AppendEvent(&atollv1.Event{Index: i * 10}); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
		evs, dropped, _ := s.Snapshot().EventsAfter(0)
		if len(evs) < min(int(i), limit) || len(evs) > limit+limit/8 {
			t.Fatalf("after %d events the log holds %d (limit %d)", i, len(evs), limit)
		}
		if want := (i - uint64(len(evs))) * 10; dropped != want {
			t.Fatalf("after %d events: dropped index %d, want %d", i, dropped, want)
		}
		for k, ev := range evs {
			if want := (i - uint64(len(evs)) + uint64(k) + 1) * 10; ev.Index != want {
				t.Fatalf("event %d has index %d, want %d (oldest first, none missing)", k, ev.Index, want)
			}
		}
	}
	evs, _, _ := s.Snapshot().EventsAfter(975)
	if len(evs) != 3 || evs[0].Index != 980 || evs[2].Index != 1000 {
		t.Fatalf("EventsAfter(975) = %v, want 980, 990, 1000", evs)
	}
}
