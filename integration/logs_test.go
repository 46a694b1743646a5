package integration_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// lineStream reads a log stream (gRPC or REST) in the background, a line
// at a time ("<stream> <message>" for gRPC, the raw JSON line for REST).
type lineStream = cptest.Stream[string]

func showLines(ls []string) string { return fmt.Sprintf("%q", ls) }

func grpcLogs(h *host, ctx context.Context, req *atollv1.GetAppLogsRequest) *lineStream {
	h.t.Helper()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+h.token)
	stream, err := atollv1.NewAppServiceClient(cptest.Conn(h.t, h.server)).GetAppLogs(ctx, req)
	if err != nil {
		h.t.Fatalf("GetAppLogs: %v", err)
	}
	return cptest.ReadStream(func() (string, error) {
		l, err := stream.Recv()
		if err != nil {
			return "", err
		}
		return l.Stream + " " + l.Message, nil
	}, showLines)
}

func restLogs(h *host, ctx context.Context, path string) *lineStream {
	h.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+h.server.HTTPAddr()+path, nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	return cptest.ReadStream(func() (string, error) {
		if sc.Scan() {
			return sc.Text(), nil
		}
		if err := sc.Err(); err != nil {
			return "", err
		}
		return "", io.EOF
	}, showLines)
}

// until reads until a line contains substr; the stream must not end first.
func until(t *testing.T, s *lineStream, timeout time.Duration, substr string) {
	t.Helper()
	s.Until(t, timeout, fmt.Sprintf("a line with %q", substr), func(l string) bool { return strings.Contains(l, substr) })
}

// requests are the app's request log lines for paths starting with prefix.
func requests(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if i := strings.Index(l, "request GET "+prefix); i >= 0 {
			out = append(out, strings.TrimSuffix(strings.TrimSuffix(l[i+len("request GET "):], `"}}`), `"`))
		}
	}
	return out
}

// writer requests /?<key>=0,1,... through the router until stopped; each
// request is one log line, in order.
func writer(h *host, host, key string) (stop func() []string) {
	quit, done := make(chan struct{}), make(chan []string)
	go func() {
		var paths []string
		for n := 0; ; n++ {
			select {
			case <-quit:
				done <- paths
				return
			case <-time.After(5 * time.Millisecond): // pacing, not synchronisation
			}
			p := fmt.Sprintf("/?%s=%d", key, n)
			if code, _ := h.viaRouter(host, p); code != 200 {
				continue
			}
			paths = append(paths, p)
		}
	}()
	return func() []string { close(quit); return <-done }
}

func wantTail(t *testing.T, what string, got, want []string, min int) {
	t.Helper()
	if len(got) < min || len(got) > len(want) {
		t.Fatalf("%s: %d lines, want %d to %d: %q", what, len(got), min, len(want), got)
	}
	tail := want[len(want)-len(got):]
	for i := range got {
		if got[i] != tail[i] {
			t.Fatalf("%s: line %d is %q, want %q (each line once, in order)\ngot  %q\nwant %q", what, i, got[i], tail[i], got, tail)
		}
	}
}

// Logs on real Docker: follow sends each line once across the history /
// follow boundary; lines 0 with follow sends only new lines (gRPC and
// REST); stopping the agent ends followed streams with a clear error in
// bounded time.
func TestLogsFollowDocker(t *testing.T) {
	h := newHost(t)
	envID := setupEnv(h, "logs")
	if code := h.rest("POST", "/v1/environments/"+envID+"/apps", h.token, seedApp(h.image, "web"), nil); code != 201 {
		t.Fatalf("create app: %d", code)
	}
	h.waitRunning(envID, "web", 1)
	host := "web-logs.localhost"
	for n := range 20 {
		p := fmt.Sprintf("/?n=%d", n)
		if code, b := h.viaRouter(host, p); code != 200 {
			t.Fatalf("GET %s: %d %s", p, code, b)
		}
	}

	// Each line once across the boundary, while lines are being written.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := writer(h, host, "w")
	f := grpcLogs(h, ctx, &atollv1.GetAppLogsRequest{EnvId: envID, AppId: "web", Lines: 5, Follow: true})
	until(t, f, 30*time.Second, "request GET /?w=")
	until(t, f, 30*time.Second, "request GET /?w=")
	more := stop()
	if code, _ := h.viaRouter(host, "/?w=end"); code != 200 {
		t.Fatal("last request failed")
	}
	until(t, f, 30*time.Second, "request GET /?w=end")
	cancel()
	wantTail(t, "follow across the boundary", requests(f.All(), "/?w="), append(more, "/?w=end"), 2)
	if len(requests(f.All(), "/?n=")) > 5 {
		t.Fatalf("history of more than 5 lines: %q", f.All())
	}
	for _, l := range f.All() {
		if strings.HasPrefix(l, "atoll ") {
			t.Fatalf("notice in a healthy stream: %q", l)
		}
	}

	// Lines 0 with follow: only new lines, over gRPC and REST. (The REST
	// answer's headers come with its first line: the writer runs first.)
	stop = writer(h, host, "m")
	g := grpcLogs(h, context.Background(), &atollv1.GetAppLogsRequest{EnvId: envID, AppId: "web", Follow: true})
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	r := restLogs(h, rctx, "/v1/environments/"+envID+"/apps/web/logs?follow=true&lines=0")
	until(t, g, 30*time.Second, "request GET /?m=")
	until(t, r, 30*time.Second, "request GET /?m=")
	more = stop()
	if code, _ := h.viaRouter(host, "/?m=end"); code != 200 {
		t.Fatal("last request failed")
	}
	until(t, g, 30*time.Second, "request GET /?m=end")
	until(t, r, 30*time.Second, "request GET /?m=end")
	for name, s := range map[string]*lineStream{"gRPC": g, "REST": r} {
		if old := append(requests(s.All(), "/?n="), requests(s.All(), "/?w=")...); len(old) > 0 {
			t.Fatalf("%s: lines 0 with follow sent old lines %q", name, old)
		}
		wantTail(t, name+" lines 0 with follow", requests(s.All(), "/?m="), append(more, "/?m=end"), 2)
	}

	// The agent goes away: both streams end with an error naming the
	// instance and its node, within a bound.
	h.stopAgent()
	_, err := g.End(t, 20*time.Second)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "logs of instance") ||
		!strings.Contains(err.Error(), "on node it-host") || !strings.Contains(err.Error(), "retry") {
		t.Fatalf("gRPC follow ended with %v, want UNAVAILABLE naming the instance and node", err)
	}
	_, _ = r.End(t, 20*time.Second)
	if last := r.All()[len(r.All())-1]; !strings.Contains(last, `"error"`) || !strings.Contains(last, "logs of instance") {
		t.Fatalf("REST follow ended without the error: %q", r.All()[max(0, len(r.All())-3):])
	}
	t.Logf("follow ended with: %v", err)
}
