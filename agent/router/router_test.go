package router

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func backend(t *testing.T, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+" "+r.Host)
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func get(t *testing.T, h http.Handler, host string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("GET", "http://"+host+"/x", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestRoundRobin(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	r := New()
	r.SetRoutes(map[string][]string{"Web-Demo.localhost": {a, b}})
	seen := map[string]int{}
	for range 6 {
		code, body := get(t, r, "web-demo.LOCALHOST:7080")
		if code != 200 {
			t.Fatalf("code %d body %q", code, body)
		}
		if !strings.HasSuffix(body, " web-demo.LOCALHOST:7080") {
			t.Errorf("backend saw host %q; want the original Host", body)
		}
		seen[strings.Fields(body)[0]]++
	}
	if seen["a"] != 3 || seen["b"] != 3 {
		t.Errorf("round robin: %v, want 3 each", seen)
	}
}

func TestSkipsFailedAddress(t *testing.T) {
	a := backend(t, "a")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there any more
	r := New()
	r.SetRoutes(map[string][]string{"web.localhost": {dead, a}})
	for i := range 6 {
		// The first request's dial fails and is retried on a; the dead
		// address is skipped after that.
		if code, body := get(t, r, "web.localhost"); code != 200 || !strings.HasPrefix(body, "a ") {
			t.Fatalf("request %d: %d %q, want 200 from a", i, code, body)
		}
	}
	r.mu.RLock()
	_, marked := r.failed[dead]
	r.mu.RUnlock()
	if !marked {
		t.Error("the dead address is not marked failed")
	}
}

// With every address dead, the request fails with 502 (one retry only).
func TestAllAddressesDead(t *testing.T) {
	var dead []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, l.Addr().String())
		l.Close()
	}
	r := New()
	r.SetRoutes(map[string][]string{"web.localhost": dead})
	if code, _ := get(t, r, "web.localhost"); code != http.StatusBadGateway {
		t.Fatalf("code %d, want 502", code)
	}
}

func TestNotFoundAndUnavailable(t *testing.T) {
	r := New()
	r.SetRoutes(map[string][]string{"web.localhost": {}, "api.localhost": {"127.0.0.1:1"}})
	code, body := get(t, r, "nope.localhost")
	if code != http.StatusNotFound || !strings.Contains(body, `"nope.localhost"`) || !strings.Contains(body, "api.localhost") {
		t.Errorf("unknown host: %d %q", code, body)
	}
	code, body = get(t, r, "web.localhost:80")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no running instance") {
		t.Errorf("no targets: %d %q", code, body)
	}
	r.SetRoutes(nil)
	if code, _ := get(t, r, "api.localhost"); code != http.StatusNotFound {
		t.Errorf("after replacing the table: %d, want 404", code)
	}
}

// resetter accepts connections, reads the request and resets the
// connection without answering: an instance being stopped mid-request.
func resetter(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 4096))
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST, not FIN
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

// An idempotent request whose connection is reset before any answer is
// retried once on another instance; a POST is not (it may have been acted
// on), and gets 502.
func TestRetriesResetIdempotentOnly(t *testing.T) {
	a, bad := backend(t, "a"), resetter(t)
	r := New()
	r.SetRoutes(map[string][]string{"web.localhost": {bad, a}})
	// Round robin starts at bad for one of the first two requests.
	for i := range 2 {
		if code, body := get(t, r, "web.localhost"); code != 200 || !strings.HasPrefix(body, "a ") {
			t.Fatalf("GET %d: %d %q, want 200 from a", i, code, body)
		}
	}
	r2 := New()
	r2.SetRoutes(map[string][]string{"web.localhost": {bad}})
	req := httptest.NewRequest("POST", "http://web.localhost/x", strings.NewReader("k=v"))
	rec := httptest.NewRecorder()
	r2.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("POST to a resetting upstream: %d, want 502", rec.Code)
	}
	r3 := New()
	r3.SetRoutes(map[string][]string{"web.localhost": {bad, a}})
	var posts502 int
	for range 2 {
		req := httptest.NewRequest("POST", "http://web.localhost/x", strings.NewReader("k=v"))
		rec := httptest.NewRecorder()
		r3.ServeHTTP(rec, req)
		if rec.Code == http.StatusBadGateway {
			posts502++
		}
	}
	if posts502 != 1 {
		t.Fatalf("POSTs answered 502: %d of 2, want exactly the one sent to the resetting upstream (no retry)", posts502)
	}
}
