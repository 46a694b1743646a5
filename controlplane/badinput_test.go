package controlplane_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

type route struct{ method, path string }

// restRoutes lists every REST binding of the atoll.v1 services.
func restRoutes(t *testing.T) []route {
	var out []route
	add := func(r *annotations.HttpRule) {
		switch p := r.Pattern.(type) {
		case *annotations.HttpRule_Get:
			out = append(out, route{"GET", p.Get})
		case *annotations.HttpRule_Post:
			out = append(out, route{"POST", p.Post})
		case *annotations.HttpRule_Put:
			out = append(out, route{"PUT", p.Put})
		case *annotations.HttpRule_Patch:
			out = append(out, route{"PATCH", p.Patch})
		case *annotations.HttpRule_Delete:
			out = append(out, route{"DELETE", p.Delete})
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage("atoll.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			for j := 0; j < s.Methods().Len(); j++ {
				rule, _ := proto.GetExtension(s.Methods().Get(j).Options(), annotations.E_Http).(*annotations.HttpRule)
				if rule == nil {
					continue
				}
				add(rule)
				for _, b := range rule.AdditionalBindings {
					add(b)
				}
			}
		}
		return true
	})
	if len(out) < 40 {
		t.Fatalf("found only %d REST routes", len(out))
	}
	return out
}

var pathVar = regexp.MustCompile(`\{[^}]+\}`)

// TestBadInputNeverBreaksTheServer throws malformed ids and bodies at every
// REST route and every Connect-style method: no 5xx, the error body names a
// code, and the server keeps serving with its state intact.
func TestBadInputNeverBreaksTheServer(t *testing.T) {
	c := cptest.NewCluster(t, 1)
	s := c.Servers[0]
	base := "http://" + s.HTTPAddr()
	ctx := cptest.Ctx(t, c.AdminToken)
	env, err := atollv1.NewEnvironmentServiceClient(cptest.Conn(t, s)).CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "keep"})
	if err != nil {
		t.Fatal(err)
	}

	ids := []string{"x", "env_aaaaaaaaaaaaaaaaaaaaaaaaaa", env.Id, "%00", "..%2F..%2Fetc", strings.Repeat("a", 5000), "%E2%9C%93", "-", "%ff"}
	bodies := []string{"", "{", "[]", "null", `{"name": 5}`, `{"name":"` + strings.Repeat("x", 100000) + `"}`,
		`{"resourceQuota":{"cpu":1e40}}`, strings.Repeat("[", 10000), `{"unknownField":1}`, "\x00\x01\x02", `{"app":{"replicas":-1}}`,
		`{"environment":{"resourceQuota":{"cpu":-5}},"updateMask":"nope"}`, `{"by":"-1h"}`, `{"variableSet":{"name":"v","variables":{"1BAD":{"value":"x"}}}}`}
	client := &http.Client{}
	do := func(method, url, body string) (int, string) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			return 0, ""
		}
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b)
	}
	n := 0
	for _, r := range restRoutes(t) {
		for _, id := range ids {
			path := pathVar.ReplaceAllString(r.path, id)
			for _, body := range bodies {
				if r.method == "GET" || r.method == "DELETE" {
					if body != "" {
						continue
					}
					if strings.Contains(r.path, "/logs") || strings.HasSuffix(r.path, "/watch") {
						continue // streams: covered by their own tests
					}
				}
				code, out := do(r.method, base+path, body)
				n++
				if code >= 500 && code != http.StatusNotImplemented && code != http.StatusServiceUnavailable {
					t.Errorf("%s %s body %.40q: %d %s", r.method, r.path, body, code, out)
				}
				if code >= 400 && !strings.Contains(out, `"code"`) {
					t.Errorf("%s %s: %d without an error code: %s", r.method, path, code, out)
				}
			}
		}
	}
	// Connect-style routes: every unary method with each body.
	protoregistry.GlobalFiles.RangeFilesByPackage("atoll.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			svc := fd.Services().Get(i)
			if svc.Name() == "OperatorService" {
				continue // restore/remove-peer would change the cluster on purpose
			}
			for j := 0; j < svc.Methods().Len(); j++ {
				m := svc.Methods().Get(j)
				if m.IsStreamingServer() {
					continue // a valid body opens a long-lived stream: TestConnectWatchEnvironmentStream
				}
				for _, body := range bodies {
					code, out := do("POST", fmt.Sprintf("%s/%s/%s", base, svc.FullName(), m.Name()), body)
					n++
					if code >= 500 && code != http.StatusNotImplemented && code != http.StatusServiceUnavailable {
						t.Errorf("POST /%s/%s body %.40q: %d %s", svc.FullName(), m.Name(), body, code, out)
					}
				}
			}
		}
		return true
	})
	t.Logf("%d malformed requests", n)
	// Still serving, and the environment created before is intact (only
	// well-formed requests may have changed state; none here targets it
	// with a valid change except deletes of its id, checked below).
	got, err := atollv1.NewEnvironmentServiceClient(cptest.Conn(t, s)).GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: env.Id})
	if err != nil {
		t.Fatalf("server no longer serves: %v", err)
	}
	if got.Name != "keep" {
		t.Fatalf("environment renamed by malformed input: %v", got)
	}
}
