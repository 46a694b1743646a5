package controlplane_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

type watchStream interface {
	Recv() (*atollv1.EnvironmentEvent, error)
}

// recvEvent waits for the next event of a gRPC watch.
func recvEvent(t *testing.T, s watchStream) *atollv1.EnvironmentEvent {
	t.Helper()
	ev, err := s.Recv()
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	return ev
}

// watchErr starts a watch and returns the error that ends it first.
func watchErr(f *apiFixture, req *atollv1.WatchEnvironmentRequest) error {
	s, err := f.envs.WatchEnvironment(f.ctx, req)
	if err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}

func (f *apiFixture) describe(t *testing.T, id, desc string) *atollv1.Environment {
	t.Helper()
	e, err := f.envs.UpdateEnvironment(f.ctx, &atollv1.UpdateEnvironmentRequest{EnvironmentId: id,
		Environment: &atollv1.Environment{Description: desc}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestWatchGRPC(t *testing.T) {
	f := newAPIFixture(t)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "watched"})
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	w, err := f.envs.WatchEnvironment(ctx, &atollv1.WatchEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil {
		t.Fatal(err)
	}
	cur := recvEvent(t, w)
	if cur.EventType != "current" || cur.Environment.GetId() != e.Id || cur.Index < e.CreateIndex {
		t.Fatalf("first event %v", cur)
	}
	other := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "unwatched"})
	u := f.describe(t, e.Id, "one")
	ev := recvEvent(t, w)
	if ev.EventType != "updated" || ev.Index != u.ModifyIndex || ev.Environment.Description != "one" || ev.Timestamp == nil {
		t.Fatalf("update event %v (want index %d)", ev, u.ModifyIndex)
	}
	s, err := f.envs.StopEnvironment(f.ctx, &atollv1.StopEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil {
		t.Fatal(err)
	}
	if ev = recvEvent(t, w); ev.EventType != "status_changed" || ev.Environment.Status != atollv1.EnvironmentStatus_STOPPED || ev.Index != s.ModifyIndex {
		t.Fatalf("stop event %v", ev)
	}
	if _, err := f.envs.DeleteEnvironment(f.ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: e.Id}); err != nil {
		t.Fatal(err)
	}
	if ev = recvEvent(t, w); ev.EventType != "deleted" || !ev.Environment.IsDeleted {
		t.Fatalf("delete event %v", ev)
	}
	if _, err := f.envs.RestoreEnvironment(f.ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: e.Id}); err != nil {
		t.Fatal(err)
	}
	if ev = recvEvent(t, w); ev.EventType != "restored" || ev.Environment.IsDeleted {
		t.Fatalf("restore event %v", ev)
	}
	cancel()

	// Resume after the update: the events after it only, in order.
	w2, err := f.envs.WatchEnvironment(f.ctx, &atollv1.WatchEnvironmentRequest{EnvironmentId: e.Id, FromIndex: u.ModifyIndex})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"status_changed", "deleted", "restored"} {
		ev := recvEvent(t, w2)
		if ev.EventType != want || ev.Index <= u.ModifyIndex || ev.Environment.GetId() != e.Id {
			t.Fatalf("resumed watch: got %v, want %s after index %d", ev, want, u.ModifyIndex)
		}
	}

	// A project watch sees every environment of the project, and nothing else.
	prj, err := atollv1.NewProjectServiceClient(cptest.Conn(t, f.srv)).CreateProject(f.ctx, &atollv1.CreateProjectRequest{Name: "watched project"})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := f.envs.WatchEnvironment(f.ctx, &atollv1.WatchEnvironmentRequest{ProjectId: prj.Id, FromIndex: prj.CreateIndex})
	if err != nil {
		t.Fatal(err)
	}
	f.describe(t, other.Id, "not in the project")
	in := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "in project", ProjectId: prj.Id})
	if ev := recvEvent(t, pw); ev.EventType != "created" || ev.Environment.GetId() != in.Id || ev.Index != in.CreateIndex {
		t.Fatalf("project watch: %v", ev)
	}

	wantCode(t, watchErr(f, &atollv1.WatchEnvironmentRequest{EnvironmentId: "env_aaaaaaaaaaaaaaaaaaaaaaaaaa"}), codes.NotFound)
	wantCode(t, watchErr(f, &atollv1.WatchEnvironmentRequest{EnvironmentId: "bad"}), codes.InvalidArgument)
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event string
	data      map[string]any
}

// openSSE starts an SSE watch; events arrive on the returned channel.
func openSSE(t *testing.T, srv *controlplane.Server, token, path string, header map[string]string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+srv.HTTPAddr()+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	ch := make(chan sseEvent, 64)
	if resp.StatusCode != http.StatusOK {
		close(ch)
		return resp, ch
	}
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.event != "" {
					ch <- cur
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				cur.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				cur.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data)
			}
		}
	}()
	return resp, ch
}

func nextSSE(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("SSE stream ended")
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no SSE event within 20s")
	}
	return sseEvent{}
}

func TestWatchSSE(t *testing.T) {
	f := newAPIFixture(t)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "sse"})
	resp, ch := openSSE(t, f.srv, f.c.AdminToken, "/v1/environments/"+e.Id+"/watch", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("SSE response %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if ev := nextSSE(t, ch); ev.event != "current" || ev.data["environment"].(map[string]any)["id"] != e.Id {
		t.Fatalf("first SSE event %+v", ev)
	}
	u := f.describe(t, e.Id, "via sse")
	ev := nextSSE(t, ch)
	if ev.event != "updated" || ev.id != fmt.Sprint(u.ModifyIndex) || ev.data["environment"].(map[string]any)["description"] != "via sse" {
		t.Fatalf("update SSE event %+v", ev)
	}
	s, err := f.envs.StopEnvironment(f.ctx, &atollv1.StopEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil {
		t.Fatal(err)
	}
	if ev = nextSSE(t, ch); ev.event != "status_changed" || ev.id != fmt.Sprint(s.ModifyIndex) {
		t.Fatalf("stop SSE event %+v", ev)
	}

	// Resume with Last-Event-ID and with ?fromIndex=: only later events.
	for _, how := range []struct {
		path   string
		header map[string]string
	}{
		{"/v1/environments/" + e.Id + "/watch", map[string]string{"Last-Event-ID": fmt.Sprint(u.ModifyIndex)}},
		{"/v1/environments/" + e.Id + "/watch?fromIndex=" + fmt.Sprint(u.ModifyIndex), nil},
		{"/v1/environments/-/watch?projectId=" + e.ProjectId + "&fromIndex=" + fmt.Sprint(u.ModifyIndex), nil},
		// The seed aliases reach the SSE route too.
		{"/environments/" + e.Id + "/watch?fromIndex=" + fmt.Sprint(u.ModifyIndex), nil},
		{"/api/v1/environments/" + e.Id + "/watch", map[string]string{"Last-Event-ID": fmt.Sprint(u.ModifyIndex)}},
	} {
		resp, ch := openSSE(t, f.srv, f.c.AdminToken, how.path, how.header)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", how.path, resp.StatusCode)
		}
		if ev := nextSSE(t, ch); ev.event != "status_changed" || ev.id != fmt.Sprint(s.ModifyIndex) {
			t.Fatalf("%s %v: first event %+v, want the stop at %d", how.path, how.header, ev, s.ModifyIndex)
		}
	}

	// Errors before the stream starts are JSON errors.
	code, o := f.rest(t, "").do("GET", "/v1/environments/"+e.Id+"/watch", nil)
	wantError(t, code, o, 401, "UNAUTHENTICATED")
	code, o = f.rest(t, f.c.AdminToken).do("GET", "/v1/environments/env_aaaaaaaaaaaaaaaaaaaaaaaaaa/watch", nil)
	wantError(t, code, o, 404, "NOT_FOUND")
	code, o = f.rest(t, f.c.AdminToken).do("GET", "/v1/environments/"+e.Id+"/watch?fromIndex=abc", nil)
	wantError(t, code, o, 400, "INVALID_ARGUMENT")
	code, o = f.rest(t, f.newOrg(t, "other", nil)).do("GET", "/v1/environments/"+e.Id+"/watch", nil)
	wantError(t, code, o, 404, "NOT_FOUND")
}

func TestWatchCompacted(t *testing.T) {
	f := newAPIFixture(t, func(_ int, c *controlplane.Config) { c.EventLimit = 5 })
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "churn"})
	var last *atollv1.Environment
	for i := 0; i < 8; i++ {
		last = f.describe(t, e.Id, fmt.Sprint("v", i))
	}

	wantCode(t, watchErr(f, &atollv1.WatchEnvironmentRequest{EnvironmentId: e.Id, FromIndex: 1}), codes.OutOfRange, "compacted", "list")
	wantCode(t, watchErr(f, &atollv1.WatchEnvironmentRequest{EnvironmentId: e.Id, FromIndex: e.CreateIndex}), codes.OutOfRange, "compacted")
	wantCode(t, watchErr(f, &atollv1.WatchEnvironmentRequest{ProjectId: e.ProjectId, FromIndex: 1}), codes.OutOfRange, "compacted")

	code, o := f.rest(t, f.c.AdminToken).do("GET", "/v1/environments/"+e.Id+"/watch?fromIndex=1", nil)
	wantError(t, code, o, http.StatusGone, "OUT_OF_RANGE", "compacted", "list")
	if o.str("details.reason") != "COMPACTED" {
		t.Fatalf("410 details: %s", o.raw)
	}

	// Within the retained log, resuming works: the last 4 updates are retained.
	keep := last.ModifyIndex - 3
	w, err := f.envs.WatchEnvironment(f.ctx, &atollv1.WatchEnvironmentRequest{EnvironmentId: e.Id, FromIndex: keep})
	if err != nil {
		t.Fatal(err)
	}
	for idx := keep + 1; idx <= last.ModifyIndex; idx++ {
		if ev := recvEvent(t, w); ev.Index != idx || ev.EventType != "updated" {
			t.Fatalf("resume in retained log: got %v, want index %d", ev, idx)
		}
	}
	// The re-list path: watch from 0 starts with the current state.
	w, err = f.envs.WatchEnvironment(f.ctx, &atollv1.WatchEnvironmentRequest{EnvironmentId: e.Id})
	if err != nil {
		t.Fatal(err)
	}
	if ev := recvEvent(t, w); ev.EventType != "current" || ev.Environment.Description != "v7" {
		t.Fatalf("watch from 0 after compaction: %v", ev)
	}
}

// A fromIndex beyond the current index is refused (after a short grace for a
// server that is behind), over gRPC and SSE, instead of a silent stream.
func TestWatchFromFutureIndex(t *testing.T) {
	f := newAPIFixture(t)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "w"})
	wantCode(t, watchErr(f, &atollv1.WatchEnvironmentRequest{EnvironmentId: e.Id, FromIndex: 99999999999}), codes.InvalidArgument, "fromIndex")
	code, o := f.rest(t, f.c.AdminToken).do("GET", "/v1/environments/"+e.Id+"/watch?fromIndex=99999999999", nil)
	wantViolation(t, code, o, "fromIndex", "is beyond the current index")
}

// A malformed fromIndex on the SSE route names the field.
func TestWatchSSEBadFromIndex(t *testing.T) {
	f := newAPIFixture(t)
	e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: "w"})
	for _, bad := range []string{"abc", "-1", "99999999999999999999999"} {
		code, o := f.rest(t, f.c.AdminToken).do("GET", "/v1/environments/"+e.Id+"/watch?fromIndex="+bad, nil)
		wantViolation(t, code, o, "fromIndex", "must be a raft index")
	}
}
