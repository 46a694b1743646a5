package controlplane_test

import (
	"net/http"
	"testing"
)

// PATCH /v1/organization with a body and no updateMask: the mask comes from
// the body's fields, nested ones included, and only those change.
func TestRESTPatchOrganizationDefaultQuota(t *testing.T) {
	f := newAPIFixture(t)
	r := f.rest(t, f.token(t, "*"))
	o := r.must(http.StatusOK, "PATCH", "/v1/organization", map[string]any{
		"defaultEnvironmentQuota": map[string]any{"cpu": 500, "memory": 1024, "storage": 1024}})
	if o.num("defaultEnvironmentQuota.cpu") != 500 || o.num("defaultEnvironmentQuota.memory") != 1024 || o.num("defaultEnvironmentQuota.storage") != 1024 {
		t.Fatalf("after PATCH: %s", o.raw)
	}
	// One dimension: the others stay.
	o = r.must(http.StatusOK, "PATCH", "/v1/organization", map[string]any{"defaultEnvironmentQuota": map[string]any{"cpu": 250}})
	if o.num("defaultEnvironmentQuota.cpu") != 250 || o.num("defaultEnvironmentQuota.memory") != 1024 || o.num("defaultEnvironmentQuota.storage") != 1024 {
		t.Fatalf("after PATCH of cpu only: %s", o.raw)
	}
	// New environments get it.
	e := r.must(http.StatusCreated, "POST", "/v1/environments", map[string]any{"name": "uses-default"})
	if e.num("resourceQuota.cpu") != 250 || e.num("resourceQuota.memory") != 1024 {
		t.Fatalf("environment created with %s", e.raw)
	}
	code, bad := r.do("PATCH", "/v1/organization", map[string]any{"defaultEnvironmentQuota": map[string]any{"cpu": -1}})
	if code != http.StatusBadRequest || bad.str("code") != "INVALID_ARGUMENT" {
		t.Fatalf("negative cpu: %d %s", code, bad.raw)
	}
	// A default above the organization's whole quota would make every
	// create without a quota fail: refused.
	org := r.must(http.StatusOK, "GET", "/v1/organization", nil)
	code, bad = r.do("PATCH", "/v1/organization", map[string]any{"defaultEnvironmentQuota": map[string]any{"cpu": org.num("quota.cpu") + 1}})
	wantViolation(t, code, bad, "defaultEnvironmentQuota.cpu", "more than the organization's whole quota")
}
