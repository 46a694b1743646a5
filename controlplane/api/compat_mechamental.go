package api

// Seed 004, MechaMental's API, under /v1/orgs/{org}/workspaces/{ws}/...:
// workspaces are projects, and the environments of a workspace are the
// project's. Requests go to atoll's routes (MechaMental's snake_case request
// fields are atoll's proto names, which atoll accepts); answers carry
// MechaMental's snake_case fields next to atoll's lowerCamelCase ones, and
// errors MechaMental's error, status_code, timestamp and detail list next
// to atoll's. docs/api.md ("MechaMental") describes the mapping.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// MechaMental's deployments list: limit 1 to 200, default 50.
const (
	mechaDefaultDeployments = 50
	mechaMaxDeployments     = 200
)

// serveMechaMental answers /v1/orgs/... (seed 004).
func serveMechaMental(w http.ResponseWriter, r *http.Request, next http.Handler, conn *grpc.ClientConn) {
	ew := &compatErrors{ResponseWriter: w, reshape: mechaErrorFields(r.Method)}
	defer ew.finish()
	shape := mechaShape(r.URL.Path, r.Method)
	if shape == "deployments" && !mechaDeploymentsLimit(ew, r) {
		return
	}
	if !rewriteOrgPath(ew, r, conn) {
		return
	}
	if q := r.URL.Query(); q.Has("cursor") && !q.Has("pageToken") {
		q.Set("pageToken", q.Get("cursor")) // MechaMental's name for the page token
		q.Del("cursor")
		r.URL.RawQuery = q.Encode()
	}
	r.URL.RawPath = ""
	if shape == "update" && emptyBody(r) {
		// The seed's PUT {} changes nothing: answer the environment as it is
		// (atoll's update wants at least one field).
		r.Method, r.Body, r.ContentLength = http.MethodGet, http.NoBody, 0
	}
	if shape != "" {
		serveMechaShape(ew, r, next, shape)
		return
	}
	next.ServeHTTP(ew, r)
}

// emptyBody reports whether r's body is empty, {} or null; it leaves the
// body readable.
func emptyBody(r *http.Request) bool {
	if r.Body == nil {
		return true
	}
	raw, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(raw))
	var m map[string]json.RawMessage
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || (json.Unmarshal(t, &m) == nil && len(m) == 0)
}

// mechaDeploymentsLimit applies MechaMental's limit of the deployments
// list: 1 to 200, 50 when absent. (atoll's own route reads an absent limit
// as every deployment.)
func mechaDeploymentsLimit(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	if !q.Has("limit") {
		q.Set("limit", strconv.Itoa(mechaDefaultDeployments))
		r.URL.RawQuery = q.Encode()
		return true
	}
	s := q.Get("limit")
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err != nil || n < 1 || n > mechaMaxDeployments || len(q["limit"]) > 1 {
		WriteError(w, apierr.InvalidField("limit", "must be an integer between 1 and %d (default %d), got %q", mechaMaxDeployments, mechaDefaultDeployments, truncate(s, 40)))
		return false
	}
	return true
}

// mechaErrorNames are MechaMental's names of atoll's error codes.
var mechaErrorNames = map[string]string{
	"UNAUTHENTICATED": "AUTHENTICATION_FAILED", "PERMISSION_DENIED": "FORBIDDEN", "NOT_FOUND": "RESOURCE_NOT_FOUND",
	"INVALID_ARGUMENT": "VALIDATION_ERROR", "ALREADY_EXISTS": "CONFLICT", "FAILED_PRECONDITION": "CONFLICT", "ABORTED": "CONFLICT",
	"UNAVAILABLE": "SERVICE_UNAVAILABLE", "INTERNAL": "INTERNAL_SERVER_ERROR", "UNKNOWN": "INTERNAL_SERVER_ERROR",
	"UNIMPLEMENTED": "METHOD_NOT_ALLOWED", "DEADLINE_EXCEEDED": "TIMEOUT",
}

// mechaPathFields are the fields that come from a MechaMental path.
var mechaPathFields = map[string]string{"environmentId": "environment_id", "appId": "app_id", "projectId": "workspace_id", "orgId": "org_id"}

// mechaErrorFields adds MechaMental's error fields to atoll's error body:
// "error" (its code name), "status_code", "timestamp", the details in
// snake_case (resource_type, resource_id, required_permission) and, for a
// bad request, FastAPI's "detail" list ({loc, msg, type, input, ctx} per
// field). atoll's code, message, details and status stay.
func mechaErrorFields(method string) func(body map[string]any, status int) {
	return func(body map[string]any, status int) {
		code, _ := body["code"].(string)
		name := mechaErrorNames[code]
		switch {
		case code == "RESOURCE_EXHAUSTED" && status == http.StatusUnprocessableEntity:
			name = "QUOTA_EXCEEDED"
		case code == "RESOURCE_EXHAUSTED":
			name = "RATE_LIMITED"
		case name == "":
			name = code
		}
		body["error"], body["status_code"] = name, status
		body["timestamp"] = time.Now().UTC().Format("2006-01-02T15:04:05.000000")
		d, _ := body["details"].(map[string]any)
		if d == nil {
			d = map[string]any{}
			body["details"] = d
		}
		for from, to := range map[string]string{"resourceType": "resource_type", "resourceId": "resource_id",
			"requiredPermission": "required_permission", "fieldViolations": "field_violations"} {
			if v, ok := d[from]; ok {
				d[to] = v
			}
		}
		fvs, _ := d["fieldViolations"].([]any)
		if len(fvs) == 0 {
			return
		}
		where := "body"
		if method == http.MethodGet || method == http.MethodDelete {
			where = "query"
		}
		detail := make([]any, 0, len(fvs))
		for _, x := range fvs {
			fv, _ := x.(map[string]any)
			field, _ := fv["field"].(string)
			msg, _ := fv["description"].(string)
			loc := []any{where}
			if p, ok := mechaPathFields[field]; ok {
				loc = []any{"path", p}
			} else {
				for _, seg := range strings.Split(field, ".") {
					loc = append(loc, seg)
				}
			}
			detail = append(detail, map[string]any{"loc": loc, "msg": msg, "type": "value_error", "input": nil, "ctx": map[string]any{}})
		}
		body["detail"] = detail
	}
}

// mechaShape names the MechaMental response shape of an org-scoped route
// (seed 004): "list", "create", "env", "update", "delete", "deploy",
// "undeploy", "deployments"; "" for the others (watch, logs, actions,
// workspaces keep atoll's shape).
func mechaShape(path, method string) string {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(path, "/v1/orgs/"), "/"), "/")
	if len(parts) < 4 || parts[1] != "workspaces" || parts[3] != "environments" {
		return ""
	}
	env := len(parts) > 4 && parts[4] != "-" && parts[4] != "cleanup-failed"
	switch {
	case len(parts) == 4 && method == http.MethodGet:
		return "list"
	case len(parts) == 4 && method == http.MethodPost:
		return "create"
	case len(parts) == 5 && env && method == http.MethodDelete:
		return "delete"
	case len(parts) == 5 && env && method == http.MethodGet:
		return "env"
	case len(parts) == 5 && env && (method == http.MethodPut || method == http.MethodPatch):
		return "update"
	case len(parts) == 6 && env && parts[5] == "deploy" && method == http.MethodPost:
		return "deploy"
	case len(parts) == 7 && env && parts[5] == "deploy" && method == http.MethodDelete:
		return "undeploy"
	case len(parts) == 6 && env && parts[5] == "deployments" && method == http.MethodGet:
		return "deployments"
	}
	return ""
}

// mechaEnv adds MechaMental's environment fields to e's JSON (atoll's
// fields in both spellings): environment_id, workspace_id, and status
// "active" ("deleted" once soft-deleted), atoll's status in atoll_status.
func mechaEnv(e *atollv1.Environment) map[string]any {
	m := withSnakeNames(e)
	m["environment_id"], m["workspace_id"] = e.Id, e.ProjectId
	m["status"], m["atoll_status"] = "active", e.Status.String()
	if e.IsDeleted {
		m["status"] = "deleted"
	}
	return m
}

// mechaDeployment is a deployment record with MechaMental's deployment_id.
func mechaDeployment(m map[string]any) {
	if m != nil {
		m["deployment_id"] = m["id"]
	}
}

// serveMechaShape answers with MechaMental's shapes on top of atoll's:
// every environment also carries MechaMental's snake_case fields
// (environment_id, workspace_id, org_id, is_default, active_deployments,
// status, created_by, created_at, updated_at); a list adds total, has_more
// and next_cursor; a create or update adds message and environment; a
// delete answers with a message; deploy, undeploy and the deployments list
// carry their snake_case fields (deployment_id, environment_id, app_id,
// release_id, previous_release_id, deployed_by, deployed_at, total).
// atoll's own fields stay, so either client reads the response. Errors
// pass through (mechaErrorFields adds MechaMental's error fields).
func serveMechaShape(w http.ResponseWriter, r *http.Request, next http.Handler, shape string) {
	rec := serveBuffered(next, r)
	if !rec.ok() {
		rec.copyTo(w)
		return
	}
	var msg proto.Message
	switch shape {
	case "list":
		msg = &atollv1.ListEnvironmentsResponse{}
	case "create", "env", "update":
		msg = &atollv1.Environment{}
	case "deploy":
		msg = &atollv1.DeployReleaseResponse{}
	case "undeploy":
		msg = &atollv1.UndeployAppResponse{}
	case "deployments":
		msg = &atollv1.ListDeploymentsResponse{}
	}
	if msg != nil && (rec.body.Len() == 0 || rec.decode(msg) != nil) {
		rec.copyTo(w)
		return
	}
	var out map[string]any
	switch m := msg.(type) {
	case *atollv1.ListEnvironmentsResponse:
		out = messageMap(m)
		list := make([]any, 0, len(m.Environments))
		for _, e := range m.Environments {
			list = append(list, mechaEnv(e))
		}
		out["environments"] = list
		out["total"], out["has_more"], out["next_cursor"] = m.TotalCount, m.NextPageToken != "", m.NextPageToken
	case *atollv1.Environment:
		out = mechaEnv(m)
		switch shape {
		case "create":
			out["environment"], out["message"] = maps.Clone(out), "Environment created successfully"
		case "update":
			out["environment"], out["message"] = maps.Clone(out), "Environment updated successfully"
		}
	case *atollv1.DeployReleaseResponse:
		out = withSnakeNames(m)
		dep, _ := out["deployment"].(map[string]any)
		mechaDeployment(dep)
		out["message"], out["description"] = "Release deployed successfully", m.Message
	case *atollv1.UndeployAppResponse:
		out = withSnakeNames(m)
		out["message"], out["description"] = "App undeployed from environment", m.Message
	case *atollv1.ListDeploymentsResponse:
		out = withSnakeNames(m)
		deps, _ := out["deployments"].([]any)
		for _, d := range deps {
			dm, _ := d.(map[string]any)
			mechaDeployment(dm)
		}
		out["total"] = m.TotalCount
	default: // delete
		out = map[string]any{}
		_ = json.Unmarshal(rec.body.Bytes(), &out)
		out["message"] = "Environment deleted successfully"
	}
	writeJSON(w, rec.code, out)
}

// rewriteOrgPath maps the org/workspace-scoped paths of seed 004 onto the
// API: /v1/orgs/{org}/workspaces[/{ws}] are projects, and
// /v1/orgs/{org}/workspaces/{ws}/environments[/...] are the environments of
// project ws (its id, slug or name). Through a workspace, an environment of
// another project does not exist (NOT_FOUND), a list shows only the
// project's environments, and a create or cleanup acts in the project (a
// body naming another projectId is INVALID_ARGUMENT). It reports false when
// it answered the request itself.
func rewriteOrgPath(w http.ResponseWriter, r *http.Request, conn *grpc.ClientConn) bool {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/orgs/"), "/")
	if len(parts) < 2 || parts[0] == "" || parts[1] != "workspaces" {
		return true // not a mapped path: the gateway answers 404
	}
	r.Header.Set(OrgHeader, parts[0])
	rest := parts[2:]
	if len(rest) == 0 || rest[0] == "" {
		r.URL.Path = "/v1/projects" + strings.TrimSuffix("/"+strings.Join(rest, "/"), "/")
		return true
	}
	ws := rest[0]
	if len(rest) == 1 {
		if !isID("prj", ws) { // a slug or name: the project's id
			p, err := workspaceProject(outgoingAuth(r), conn, ws)
			if err != nil {
				WriteError(w, err)
				return false
			}
			ws = p.Id
		}
		r.URL.Path = "/v1/projects/" + ws
		return true
	}
	if rest[1] != "environments" {
		return true
	}
	ctx := outgoingAuth(r)
	prj, err := workspaceProject(ctx, conn, ws)
	if err != nil {
		WriteError(w, err)
		return false
	}
	envPath := rest[2:]
	r.URL.Path = "/v1/environments" + strings.TrimSuffix("/"+strings.Join(envPath, "/"), "/")
	collection := len(envPath) == 0 || envPath[0] == ""
	switch {
	case collection && r.Method == http.MethodGet, len(envPath) > 0 && envPath[0] == "-":
		// A list, or the watch of the project (/-/watch).
		q := r.URL.Query()
		for _, k := range []string{"projectId", "project_id"} {
			if v := q.Get(k); v != "" && v != prj.Id && v != ws {
				WriteError(w, projectMismatch(v, ws))
				return false
			}
			q.Del(k)
		}
		q.Set("projectId", prj.Id)
		r.URL.RawQuery = q.Encode()
		return true
	case collection && r.Method == http.MethodPost,
		len(envPath) == 1 && envPath[0] == "cleanup-failed" && r.Method == http.MethodPost:
		// Create, or clean up: in the workspace's project.
		return setBodyProject(w, r, prj.Id, ws)
	case collection:
		return true // the gateway answers (method not allowed)
	}
	// An environment (and what is under it): only one of this project.
	env, err := atollv1.NewEnvironmentServiceClient(conn).GetEnvironment(ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: envPath[0]})
	if err != nil {
		WriteError(w, err)
		return false
	}
	if env.ProjectId != prj.Id {
		WriteError(w, apierr.NotFound("environment", envPath[0]))
		return false
	}
	return true
}

// isID reports whether s has the shape of an id with that type prefix.
func isID(prefix, s string) bool {
	return CheckID("id", prefix, s) == nil
}

// workspaceProject finds the project a workspace segment names: its id, slug
// or name, in the caller's organization; NOT_FOUND naming ws otherwise.
func workspaceProject(ctx context.Context, conn *grpc.ClientConn, ws string) (*atollv1.Project, error) {
	pc := atollv1.NewProjectServiceClient(conn)
	if isID("prj", ws) {
		p, err := pc.GetProject(ctx, &atollv1.GetProjectRequest{ProjectId: ws})
		switch status.Code(err) {
		case codes.OK:
			return p, nil
		case codes.PermissionDenied:
			// A token without project:read still reaches its environments
			// by project id; the environment calls check the project.
			return &atollv1.Project{Id: ws}, nil
		case codes.NotFound:
			return nil, apierr.NotFound("project", ws)
		default:
			return nil, err
		}
	}
	var byName *atollv1.Project
	for token := ""; ; {
		resp, err := pc.ListProjects(ctx, &atollv1.ListProjectsRequest{PageSize: 100, PageToken: token})
		if err != nil {
			return nil, err
		}
		for _, p := range resp.Projects {
			if p.Slug == ws {
				return p, nil
			}
			if byName == nil && p.Name == ws {
				byName = p
			}
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if byName != nil {
		return byName, nil
	}
	return nil, apierr.NotFound("project", ws)
}

func projectMismatch(got, ws string) error {
	return apierr.InvalidField("projectId", "is %q, but the path names workspace %q: leave it out or name the same project", got, ws)
}

// setBodyProject sets projectId in the JSON object body of r to the
// workspace's project; a body naming another project is INVALID_ARGUMENT.
func setBodyProject(w http.ResponseWriter, r *http.Request, prjID, ws string) bool {
	body, _ := io.ReadAll(r.Body)
	m := map[string]json.RawMessage{}
	if raw, err := oneJSONValue(body); err == nil {
		if err := json.Unmarshal(raw, &m); err != nil {
			WriteError(w, status.Error(codes.InvalidArgument, "request body: must be a JSON object"))
			return false
		}
	} else if err != io.EOF {
		WriteError(w, status.Error(codes.InvalidArgument, err.Error()))
		return false
	}
	if m == nil { // null
		m = map[string]json.RawMessage{}
	}
	for _, k := range []string{"projectId", "project_id"} {
		v, ok := m[k]
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			WriteError(w, apierr.InvalidField("projectId", "must be a string, got %s", v))
			return false
		}
		if s != "" && s != prjID && s != ws {
			WriteError(w, projectMismatch(s, ws))
			return false
		}
		delete(m, k)
	}
	m["projectId"], _ = json.Marshal(prjID)
	nb, _ := json.Marshal(m)
	r.Body = io.NopCloser(bytes.NewReader(nb))
	r.ContentLength = int64(len(nb))
	r.Header.Del("Content-Length")
	return true
}
