package api

// Seed 003, the Blueberry IDP's environments API, under /api/environments.
// Requests are translated to atoll's (the REST gateway or the gRPC API does
// the work, so auth, validation and errors are atoll's), and answers are
// presented in Blueberry's shapes: its snake_case fields and status names,
// next to atoll's own fields. docs/api.md ("Blueberry") describes the
// mapping.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// blueberryMaxTTLHours is Blueberry's documented TTL maximum (a week), and
// blueberryDefaultTTL its default.
const (
	blueberryMaxTTLHours = 168
	blueberryDefaultTTL  = "24h"
)

// Blueberry's list paging: limit 1 to 100, default 50.
const (
	blueberryDefaultLimit = 50
	blueberryMaxLimit     = 100
)

// blueberryStringFields and blueberryBoolFields are the Blueberry create
// fields atoll has no field for: they are kept as labels "blueberry/<field>"
// on the environment, and come back as its repositories and configuration.
var (
	blueberryStringFields = []string{"backend_repo", "backend_branch", "backend_commit", "frontend_repo", "frontend_branch", "frontend_commit", "config_set"}
	blueberryBoolFields   = []string{"provision_database", "auto_generate_secrets", "use_shared_api_keys"}
)

func isBlueberryField(k string) bool {
	return slices.Contains(blueberryStringFields, k) || slices.Contains(blueberryBoolFields, k)
}

// blueberryStatusNames is Blueberry's name of each atoll status. Blueberry
// has no word for a stopped or sleeping environment: those show atoll's
// name in lowercase (sleeping, hibernating, stopped), and a soft-deleted
// environment shows "deleted".
var blueberryStatusNames = map[atollv1.EnvironmentStatus]string{
	atollv1.EnvironmentStatus_PENDING:      "creating",
	atollv1.EnvironmentStatus_PROVISIONING: "creating",
	atollv1.EnvironmentStatus_RUNNING:      "ready",
	atollv1.EnvironmentStatus_ERROR:        "failed",
	atollv1.EnvironmentStatus_STOPPING:     "terminating",
	atollv1.EnvironmentStatus_TERMINATING:  "terminating",
	atollv1.EnvironmentStatus_SLEEPING:     "sleeping",
	atollv1.EnvironmentStatus_HIBERNATING:  "hibernating",
	atollv1.EnvironmentStatus_STOPPED:      "stopped",
}

// blueberryStatusFilter lists the status names a Blueberry list filters by:
// Blueberry's own ("updating" is accepted and matches nothing: atoll
// updates in place), then atoll's lowercase extras.
var blueberryStatusFilter = []string{"creating", "ready", "failed", "terminating", "updating", "sleeping", "hibernating", "stopped", "deleted"}

// BlueberryStatus is an environment's status in Blueberry's vocabulary.
func BlueberryStatus(e *atollv1.Environment) string {
	if e.GetIsDeleted() {
		return "deleted"
	}
	if n, ok := blueberryStatusNames[e.GetStatus()]; ok {
		return n
	}
	return strings.ToLower(e.GetStatus().String())
}

// blueberry serves one request under /api/environments.
type blueberry struct {
	conn *grpc.ClientConn
	next http.Handler
	// rename maps a field violation's field (atoll's name) to the name the
	// caller sent (environment_name, ttl_hours, ...).
	rename func(string) string
}

// serveBlueberry answers the Blueberry routes of seed 003: create (JSON or
// form), list (limit/offset, Blueberry's status names), get, update
// (ttl_hours), delete, reconcile-status, check-all-urls, cleanup-failed and
// logs/{component}. Every other route under /api/environments is atoll's
// /v1/environments route. Errors carry Blueberry's detail, status_code and
// error_code next to atoll's code, message and details.
func serveBlueberry(w http.ResponseWriter, r *http.Request, next http.Handler, conn *grpc.ClientConn) {
	b := &blueberry{conn: conn, next: next, rename: func(f string) string { return f }}
	ew := &compatErrors{ResponseWriter: w, reshape: func(body map[string]any, code int) {
		renameViolations(body, b.rename)
		blueberryErrorFields(body, code)
	}}
	defer ew.finish()
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/environments"), "/")
	var parts []string
	if rest != "" {
		parts = strings.Split(rest, "/")
	}
	r.URL.Path = "/v1" + strings.TrimPrefix(r.URL.Path, "/api")
	r.URL.RawPath = ""
	switch m := r.Method; {
	case len(parts) == 0 && m == http.MethodGet:
		b.list(ew, r)
	case len(parts) == 0 && m == http.MethodPost:
		b.create(ew, r)
	case len(parts) == 1 && parts[0] == "cleanup-failed" && m == http.MethodPost:
		b.cleanupFailed(ew, r)
	case len(parts) == 1 && m == http.MethodGet:
		b.get(ew, r)
	case len(parts) == 1 && m == http.MethodPut:
		b.update(ew, r)
	case len(parts) == 1 && m == http.MethodDelete:
		b.delete(ew, r, parts[0])
	case len(parts) == 2 && parts[1] == "reconcile-status" && m == http.MethodPost:
		b.reconcile(ew, r)
	case len(parts) == 2 && parts[1] == "check-all-urls" && m == http.MethodGet:
		b.health(ew, r)
	case len(parts) == 3 && parts[1] == "logs" && m == http.MethodGet:
		b.logs(ew, r, parts[0], parts[2])
	default:
		next.ServeHTTP(ew, r)
	}
}

// blueberryErrorFields adds Blueberry's error fields to atoll's error body:
// "detail" (the message), "status_code" and "error_code" (ENV_NAME_EXISTS,
// ENV_NOT_FOUND, ENV_TTL_EXCEEDED, ENV_CONFIG_INVALID).
func blueberryErrorFields(body map[string]any, status int) {
	if msg, ok := body["message"].(string); ok {
		body["detail"] = msg
	}
	body["status_code"] = status
	code, _ := body["code"].(string)
	reason := ""
	if d, ok := body["details"].(map[string]any); ok {
		reason, _ = d["reason"].(string)
	}
	switch {
	case strings.HasPrefix(reason, "ENV_"):
		body["error_code"] = reason
	case code == "ALREADY_EXISTS":
		body["error_code"] = "ENV_NAME_EXISTS"
	case code == "NOT_FOUND":
		body["error_code"] = "ENV_NOT_FOUND"
	case code == "INVALID_ARGUMENT":
		body["error_code"] = "ENV_CONFIG_INVALID"
	}
}

// present is e in Blueberry's shape: atoll's fields, and over them
// Blueberry's id, name, status (its vocabulary; atoll's in atoll_status),
// urls (app name -> public URL), created_at, updated_at, expires_at,
// ttl_hours, creator, repositories and configuration.
func (b *blueberry) present(e *atollv1.Environment) map[string]any {
	out := messageMap(e)
	ts := func(camel string) any { return out[camel] } // atoll's spelling of the time (null when unset)
	urls := map[string]any{}
	for _, ep := range e.Endpoints {
		urls[ep.Name] = ep.Url
	}
	out["id"], out["name"] = e.Id, e.Name
	out["status"], out["atoll_status"] = BlueberryStatus(e), e.Status.String()
	out["urls"] = urls
	out["created_at"], out["updated_at"], out["expires_at"] = ts("createdAt"), ts("updatedAt"), ts("expiresAt")
	out["ttl_hours"] = ttlHours(e.Ttl)
	creator := map[string]any{"name": e.CreatedBy, "email": ""}
	if strings.Contains(e.CreatedBy, "@") {
		creator["email"] = e.CreatedBy
	}
	out["creator"] = creator
	label := func(k string) string { return e.Labels["blueberry/"+k] }
	repos := map[string]any{}
	for _, c := range []string{"backend", "frontend"} {
		if repo, branch, commit := label(c+"_repo"), label(c+"_branch"), label(c+"_commit"); repo+branch+commit != "" {
			repos[c] = map[string]any{"repo": repo, "branch": branch, "commit": commit}
		}
	}
	out["repositories"] = repos
	flag := func(k string) bool { v, _ := strconv.ParseBool(label(k)); return v }
	out["configuration"] = map[string]any{
		"config_set": label("config_set"), "database_provisioned": flag("provision_database"),
		"auto_generated_secrets": flag("auto_generate_secrets"), "use_shared_api_keys": flag("use_shared_api_keys"),
	}
	return out
}

// ttlHours is a TTL ("48h") in hours: an integer when whole, nil without one.
func ttlHours(ttl string) any {
	d, err := ParseTTL(ttl)
	if err != nil || d <= 0 {
		return nil
	}
	if h := d.Hours(); h != math.Trunc(h) {
		return h
	}
	return int64(d.Hours())
}

// forwardEnv forwards r to atoll's route and answers with the environment
// it returns, through shape; an error is answered as it is.
func (b *blueberry) forwardEnv(w http.ResponseWriter, r *http.Request, shape func(*atollv1.Environment) any) {
	rec := serveBuffered(b.next, r)
	if !rec.ok() {
		rec.copyTo(w)
		return
	}
	e := &atollv1.Environment{}
	if err := rec.decode(e); err != nil {
		rec.copyTo(w)
		return
	}
	writeJSON(w, http.StatusOK, shape(e))
}

func (b *blueberry) get(w http.ResponseWriter, r *http.Request) {
	b.forwardEnv(w, r, func(e *atollv1.Environment) any { return b.present(e) })
}

// blueberryBody reads a Blueberry request body: a JSON object, or a form
// (curl -d sends JSON labelled as a form unless told otherwise: a body that
// starts like a JSON object is JSON). in is nil when the body is no JSON
// object (the gateway's strict decoder then says what is wrong).
func blueberryBody(w http.ResponseWriter, r *http.Request) (raw []byte, in map[string]any, ok bool) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		WriteError(w, apierr.InvalidField("body", "cannot be read: %v", err))
		return nil, nil, false
	}
	form := strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") && !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{"))
	if form {
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			WriteError(w, apierr.InvalidField("body", "is not a valid form: %v", err))
			return nil, nil, false
		}
		in = map[string]any{}
		for k, v := range vals {
			in[k] = v[len(v)-1]
		}
		return raw, in, true
	}
	if json.Unmarshal(raw, &in) != nil {
		in = nil
	}
	return raw, in, true
}

// setBody replaces r's body with v as JSON (raw as it was when v is nil).
func setBody(r *http.Request, raw []byte, v map[string]any) {
	if v != nil {
		raw, _ = json.Marshal(v)
		r.Header.Set("Content-Type", "application/json")
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
	r.Header.Del("Content-Length")
}

// hoursTTL checks a TTL in hours (a number, or a string of one) and returns
// it as atoll's duration ("48h"). Blueberry's maximum is a week
// (ENV_TTL_EXCEEDED). A string that is already a duration ("48h", "2d") is
// accepted too.
func hoursTTL(field string, v any) (string, error) {
	var h float64
	switch x := v.(type) {
	case float64:
		h = x
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			d, derr := ParseTTL(x)
			if derr != nil || d <= 0 {
				return "", apierr.InvalidField(field, "must be a number of hours (1 to %d), got %q", blueberryMaxTTLHours, truncate(x, 40))
			}
			f = d.Hours()
		}
		h = f
	default:
		return "", apierr.InvalidField(field, "must be a number of hours (1 to %d), got %s", blueberryMaxTTLHours, jsonType(v))
	}
	switch {
	case math.IsNaN(h) || h <= 0:
		return "", apierr.InvalidField(field, "must be a positive number of hours (at most %d), got %s", blueberryMaxTTLHours, strconv.FormatFloat(h, 'f', -1, 64))
	case h > blueberryMaxTTLHours:
		return "", apierr.InvalidReason("ENV_TTL_EXCEEDED", field, "must be at most %d hours (got %s)", blueberryMaxTTLHours, strconv.FormatFloat(h, 'f', -1, 64))
	}
	return strconv.FormatFloat(h, 'f', -1, 64) + "h", nil
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "an object"
}

// mergeViolations merges errs (INVALID_ARGUMENT errors) into one error
// listing every violation; a single error stays as it is (it keeps its
// reason, e.g. ENV_TTL_EXCEEDED).
func mergeViolations(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	var v apierr.Violations
	for _, err := range errs {
		for _, d := range status.Convert(err).Details() {
			if br, ok := d.(*errdetails.BadRequest); ok {
				for _, fv := range br.FieldViolations {
					v.Add(fv.Field, "%s", fv.Description)
				}
			}
		}
	}
	return v.Err()
}

// create translates Blueberry's create (environment_name, ttl in hours,
// repository and option fields, JSON or form) into atoll's and answers 200
// {"status":"success","environment":{...}} as Blueberry documents.
func (b *blueberry) create(w http.ResponseWriter, r *http.Request) {
	raw, in, ok := blueberryBody(w, r)
	if !ok {
		return
	}
	var out map[string]any
	if in != nil {
		var errs []error
		bad := func(err error) { errs = append(errs, err) }
		out = map[string]any{}
		labels := map[string]any{}
		keys := make([]string, 0, len(in))
		for k := range in {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := in[k]
			switch {
			case k == "environment_name":
				s, isStr := v.(string)
				switch {
				case !isStr:
					bad(apierr.InvalidField(k, "must be a string, got %s", jsonType(v)))
				case s == "":
					bad(apierr.InvalidField(k, "is required"))
				case in["name"] != nil:
					bad(apierr.InvalidField(k, "give environment_name or name, not both"))
				default:
					out["name"] = s
				}
			case k == "ttl":
				if v == nil {
					continue
				}
				ttl, err := hoursTTL(k, v)
				if err != nil {
					bad(err)
				}
				out["ttl"] = ttl
			case slices.Contains(blueberryStringFields, k):
				s, isStr := v.(string)
				if !isStr && v != nil {
					bad(apierr.InvalidField(k, "must be a string, got %s", jsonType(v)))
				}
				if s != "" {
					labels["blueberry/"+k] = s
				}
			case slices.Contains(blueberryBoolFields, k):
				switch x := v.(type) {
				case bool:
					labels["blueberry/"+k] = strconv.FormatBool(x)
				case string:
					f, err := strconv.ParseBool(x)
					if err != nil {
						bad(apierr.InvalidField(k, "must be true or false, got %q", truncate(x, 40)))
					}
					labels["blueberry/"+k] = strconv.FormatBool(f)
				case nil:
				default:
					bad(apierr.InvalidField(k, "must be true or false, got %s", jsonType(v)))
				}
			default:
				out[k] = v // atoll's own fields (description, labels, blueprintId, ...)
			}
		}
		if out["name"] == nil && in["name"] == nil && len(errs) == 0 && in["environment_name"] == nil {
			bad(apierr.InvalidField("environment_name", "is required"))
		}
		if len(errs) > 0 {
			WriteError(w, mergeViolations(errs))
			return
		}
		if _, ok := out["ttl"]; !ok {
			out["ttl"] = blueberryDefaultTTL
		}
		if len(labels) > 0 {
			if own, ok := out["labels"].(map[string]any); ok {
				for k, v := range own {
					labels[k] = v
				}
			}
			if _, isObj := out["labels"].(map[string]any); out["labels"] == nil || isObj {
				out["labels"] = labels
			}
		}
		if in["environment_name"] != nil {
			b.rename = func(f string) string {
				if f == "name" {
					return "environment_name"
				}
				if k, ok := strings.CutPrefix(f, "labels.blueberry/"); ok && isBlueberryField(k) {
					return k
				}
				return f
			}
		}
	}
	setBody(r, raw, out)
	b.forwardEnv(w, r, func(e *atollv1.Environment) any {
		return map[string]any{"status": "success", "environment": b.present(e)}
	})
}

// update translates Blueberry's PUT {"ttl_hours":N,"description":...}:
// ttl_hours is atoll's ttl (from now), and the answer is
// {"status":"success","environment":{...}}.
func (b *blueberry) update(w http.ResponseWriter, r *http.Request) {
	raw, in, ok := blueberryBody(w, r)
	if !ok {
		return
	}
	var out map[string]any
	if v, has := in["ttl_hours"]; has {
		if _, both := in["ttl"]; both {
			WriteError(w, apierr.InvalidField("ttl_hours", "give ttl_hours or ttl, not both"))
			return
		}
		ttl, err := hoursTTL("ttl_hours", v)
		if err != nil {
			WriteError(w, err)
			return
		}
		out = map[string]any{}
		for k, x := range in {
			out[k] = x
		}
		delete(out, "ttl_hours")
		out["ttl"] = ttl
		b.rename = func(f string) string {
			if f == "ttl" {
				return "ttl_hours"
			}
			return f
		}
	} else if in != nil && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		out = in // a form
	}
	setBody(r, raw, out)
	b.forwardEnv(w, r, func(e *atollv1.Environment) any {
		return map[string]any{"status": "success", "environment": b.present(e)}
	})
}

func (b *blueberry) delete(w http.ResponseWriter, r *http.Request, id string) {
	rec := serveBuffered(b.next, r)
	if !rec.ok() {
		rec.copyTo(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "message": "Environment deletion initiated", "environment_id": id})
}

func (b *blueberry) reconcile(w http.ResponseWriter, r *http.Request) {
	b.forwardEnv(w, r, func(e *atollv1.Environment) any {
		return map[string]any{"status": "success", "message": "Status reconciliation initiated", "environment": b.present(e)}
	})
}

func (b *blueberry) cleanupFailed(w http.ResponseWriter, r *http.Request) {
	rec := serveBuffered(b.next, r)
	resp := &atollv1.CleanupFailedEnvironmentsResponse{}
	if !rec.ok() || rec.decode(resp) != nil {
		rec.copyTo(w)
		return
	}
	deleted := resp.Deleted
	if deleted == nil {
		deleted = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "message": fmt.Sprintf("%d failed environment(s) deleted", resp.Count),
		"deleted": deleted, "count": resp.Count})
}

// health is check-all-urls in Blueberry's shape (snake_case, times in ms as numbers).
func (b *blueberry) health(w http.ResponseWriter, r *http.Request) {
	rec := serveBuffered(b.next, r)
	h := &atollv1.EnvironmentHealth{}
	if !rec.ok() || rec.decode(h) != nil {
		rec.copyTo(w)
		return
	}
	details := map[string]any{}
	for name, d := range h.Details {
		details[name] = map[string]any{"url": d.Url, "status": d.Status, "response_time_ms": d.ResponseTimeMs,
			"http_status": d.HttpStatus, "error": d.Error}
	}
	var checked any
	if h.CheckedAt != nil {
		checked = h.CheckedAt.AsTime().UTC().Format(time.RFC3339Nano)
	}
	writeJSON(w, http.StatusOK, map[string]any{"environment_id": h.EnvironmentId, "status": h.Status, "details": details, "checked_at": checked})
}

// oneQuery checks that every query parameter of q is known and given once.
func oneQuery(q url.Values, known ...string) error {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var v apierr.Violations
	for _, k := range keys {
		switch {
		case !slices.Contains(known, k):
			v.Add(truncate(k, 60), "unknown query parameter")
		case len(q[k]) > 1:
			v.Add(k, "must be given once")
		}
	}
	return v.Err()
}

// queryInt reads an integer query parameter in [lo, hi]; def when absent.
func queryInt(v *apierr.Violations, q url.Values, key string, def, lo, hi int) int {
	if !q.Has(key) {
		return def
	}
	s := q.Get(key)
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < lo || n > hi {
		if hi == math.MaxInt32 {
			v.Add(key, "must be an integer of at least %d, got %q", lo, truncate(s, 40))
		} else {
			v.Add(key, "must be an integer between %d and %d, got %q", lo, hi, truncate(s, 40))
		}
		return def
	}
	return n
}

// queryTime reads an ISO 8601 time (2024-01-01T10:00:00Z, without a zone
// it is UTC, or a date).
func queryTime(v *apierr.Violations, q url.Values, key string) *timestamppb.Timestamp {
	s := strings.TrimSpace(q.Get(key))
	if s == "" {
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return timestamppb.New(t)
		}
	}
	v.Add(key, "must be an ISO 8601 time such as 2024-01-01T10:00:00Z or 2024-01-01, got %q", truncate(s, 40))
	return nil
}

// blueberryStatusMatcher reads a status filter: Blueberry's names (and
// atoll's lowercase extras, see blueberryStatusFilter), or one of atoll's
// status names (RUNNING, any case).
func blueberryStatusMatcher(v *apierr.Violations, s string) (match func(*atollv1.Environment) bool, deleted bool) {
	low := strings.ToLower(strings.TrimSpace(s))
	switch {
	case low == "":
		return func(e *atollv1.Environment) bool { return !e.IsDeleted }, false
	case slices.Contains(blueberryStatusFilter, low):
		return func(e *atollv1.Environment) bool { return BlueberryStatus(e) == low }, low == "deleted"
	}
	if n := atollv1.EnvironmentStatus_value[strings.ToUpper(low)]; n != 0 {
		return func(e *atollv1.Environment) bool { return !e.IsDeleted && int32(e.Status) == n }, false
	}
	v.Add("status", "must be one of %s (or one of atoll's status names, such as RUNNING), got %q",
		strings.Join(blueberryStatusFilter, ", "), truncate(s, 40))
	return nil, false
}

// list is Blueberry's GET /api/environments: limit (1-100, default 50),
// offset, status (Blueberry's names), search, created_after,
// created_before; atoll's projectId and pageToken too. It answers
// {"environments","total","limit","offset"} (and atoll's totalCount and
// nextPageToken).
func (b *blueberry) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	canon := map[string]string{"createdAfter": "created_after", "createdBefore": "created_before", "projectId": "project_id", "pageToken": "page_token"}
	for from, to := range canon {
		if q.Has(from) && !q.Has(to) {
			q[to] = q[from]
			delete(q, from)
		}
	}
	if err := oneQuery(q, "limit", "offset", "status", "search", "created_after", "created_before", "project_id", "page_token"); err != nil {
		WriteError(w, err)
		return
	}
	var v apierr.Violations
	limit := queryInt(&v, q, "limit", blueberryDefaultLimit, 1, blueberryMaxLimit)
	offset := queryInt(&v, q, "offset", 0, 0, math.MaxInt32)
	match, deleted := blueberryStatusMatcher(&v, q.Get("status"))
	after, before := queryTime(&v, q, "created_after"), queryTime(&v, q, "created_before")
	if after != nil && before != nil && !after.AsTime().Before(before.AsTime()) {
		v.Add("created_after", "must be before created_before")
	}
	token := q.Get("page_token")
	if offset > 0 && token != "" {
		v.Add("offset", "give either offset or page_token, not both")
	}
	if err := v.Err(); err != nil {
		WriteError(w, err)
		return
	}
	b.rename = func(f string) string {
		if to, ok := canon[f]; ok {
			return to
		}
		return f
	}
	ctx := outgoingAuth(r)
	envs := atollv1.NewEnvironmentServiceClient(b.conn)
	req := &atollv1.ListEnvironmentsRequest{ProjectId: q.Get("project_id"), Search: q.Get("search"),
		CreatedAfter: after, CreatedBefore: before, IncludeDeleted: deleted, PageSize: MaxPageSize}
	var matched []*atollv1.Environment
	for {
		resp, err := envs.ListEnvironments(ctx, req)
		if err != nil {
			WriteError(w, err)
			return
		}
		for _, e := range resp.Environments {
			if match(e) {
				matched = append(matched, e)
			}
		}
		if req.PageToken = resp.NextPageToken; req.PageToken == "" {
			break
		}
	}
	items, next, err := pageFrom(matched, token, offset, limit)
	if err != nil {
		b.rename = func(f string) string { return strings.ReplaceAll(f, "pageToken", "page_token") }
		WriteError(w, err)
		return
	}
	list := make([]any, 0, len(items))
	for _, e := range items {
		list = append(list, b.present(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"environments": list, "total": len(matched), "limit": limit, "offset": offset,
		"totalCount": len(matched), "nextPageToken": next})
}

// logLevelRe finds a log line's level: a level word near its start
// ("INFO", "[warn]", "level=error", "\"level\":\"debug\"").
var logLevelRe = regexp.MustCompile(`(?i)\b(trace|debug|info|notice|warn|warning|error|err|fatal|critical|crit|panic)\b`)

// logLevel is a log line's level: the level word it starts with (within its
// first 64 bytes), else INFO for stdout and ERROR for stderr.
func logLevel(l *atollv1.LogLine) string {
	head := l.Message
	if len(head) > 64 {
		head = head[:64]
	}
	if m := logLevelRe.FindStringSubmatch(head); m != nil {
		switch w := strings.ToUpper(m[1]); w {
		case "WARN":
			return "WARNING"
		case "ERR":
			return "ERROR"
		case "CRIT":
			return "CRITICAL"
		default:
			return w
		}
	}
	if l.Stream == "stderr" {
		return "ERROR"
	}
	return "INFO"
}

// logs is GET /api/environments/{id}/logs/{component}?lines=&since=: the
// logs of the environment's app named component (id or name), as
// {"component","logs":[{"timestamp","level","message"}],"total_lines"}.
// lines: 1 to 1000, default 100; since: a duration ("1h", "30m").
func (b *blueberry) logs(w http.ResponseWriter, r *http.Request, envID, component string) {
	q := r.URL.Query()
	if q.Has("instanceId") && !q.Has("instance_id") {
		q["instance_id"] = q["instanceId"]
		delete(q, "instanceId")
	}
	if err := oneQuery(q, "lines", "since", "instance_id"); err != nil {
		WriteError(w, err)
		return
	}
	var v apierr.Violations
	lines := queryInt(&v, q, "lines", DefaultLogLines, 1, MaxLogLines)
	if err := v.Err(); err != nil {
		WriteError(w, err)
		return
	}
	b.rename = func(f string) string {
		if f == "instanceId" {
			return "instance_id"
		}
		return f
	}
	stream, err := atollv1.NewAppServiceClient(b.conn).GetAppLogs(outgoingAuth(r), &atollv1.GetAppLogsRequest{
		EnvId: envID, AppId: component, Lines: int32(lines), Since: q.Get("since"), InstanceId: q.Get("instance_id")})
	if err != nil {
		WriteError(w, err)
		return
	}
	out := []any{}
	for {
		l, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			WriteError(w, err)
			return
		}
		out = append(out, map[string]any{"timestamp": l.Timestamp.AsTime().UTC().Format(time.RFC3339Nano), "level": logLevel(l),
			"message": l.Message, "stream": l.Stream, "instance_id": l.InstanceId})
	}
	writeJSON(w, http.StatusOK, map[string]any{"component": component, "logs": out, "total_lines": len(out)})
}
