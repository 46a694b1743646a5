package controlplane_test

import (
	"fmt"
	"net/http"
	"testing"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Blueberry's list: limit/offset paging and its lowercase status names.
func TestRESTListOffsetAndStatusAliases(t *testing.T) {
	f := newAPIFixture(t)
	var names []string
	for i := range 5 {
		e := f.create(t, &atollv1.CreateEnvironmentRequest{Name: fmt.Sprintf("bb-%d", i)})
		names = append(names, e.Name)
	}
	r := f.rest(t, f.c.AdminToken)
	o := r.must(http.StatusOK, "GET", "/api/environments?limit=2&offset=2", nil)
	list, _ := o.get("environments").([]any)
	if len(list) != 2 || list[0].(map[string]any)["name"] != names[2] || list[1].(map[string]any)["name"] != names[3] {
		t.Fatalf("limit=2&offset=2: %s", o.raw)
	}
	o = r.must(http.StatusOK, "GET", "/api/environments?limit=2&offset=99", nil)
	if list, _ := o.get("environments").([]any); len(list) != 0 {
		t.Fatalf("offset past the end: %s", o.raw)
	}
	o = r.must(http.StatusOK, "GET", "/api/environments?status=ready", nil)
	if list, _ := o.get("environments").([]any); len(list) != 5 {
		t.Fatalf("status=ready: %s", o.raw)
	}
	code, bad := r.do("GET", "/api/environments?offset=-1", nil)
	wantViolation(t, code, bad, "offset", "must not be negative")
	first := r.must(http.StatusOK, "GET", "/v1/environments?pageSize=2", nil)
	code, bad = r.do("GET", "/v1/environments?offset=1&pageToken="+first.str("nextPageToken"), nil)
	wantViolation(t, code, bad, "offset", "not both")
}
