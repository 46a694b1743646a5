package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/quota"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

type envService struct {
	*Services
	atollv1.UnimplementedEnvironmentServiceServer
}

// DefaultEnvironmentQuota is used when the organization sets none.
var DefaultEnvironmentQuota = &atollv1.Resources{Cpu: 1000, Memory: 2048, Storage: 10240}

func (s *envService) CreateEnvironment(ctx context.Context, req *atollv1.CreateEnvironmentRequest) (*atollv1.Environment, error) {
	var v apierr.Violations
	orgID := orgOf(ctx)
	checkName(&v, "name", req.Name)
	checkSlug(&v, "slug", req.Slug)
	checkDescription(&v, "description", req.Description)
	checkLabels(&v, "labels", req.Labels)
	checkVariables(&v, "variables", req.Variables)
	tx := s.snap()
	org := tx.Organization(orgID)
	if org == nil {
		return nil, apierr.NotFound("organization", orgID)
	}
	def := org.DefaultEnvironmentQuota
	if def == nil {
		def = DefaultEnvironmentQuota
	}
	// From a blueprint (by id or name): its quota and ttl are the defaults.
	var bp *atollv1.Blueprint
	ttlStr := req.Ttl
	if req.BlueprintId != "" {
		b, err := s.findBlueprint(ctx, tx, "blueprintId", req.BlueprintId)
		if err != nil {
			return nil, err
		}
		bp = b
		def = fillQuota(&v, "blueprint.resourceQuota", bp.ResourceQuota, def)
		if ttlStr == "" {
			ttlStr = bp.DefaultTtl
		}
	}
	ttl := checkTTL(&v, "ttl", ttlStr, s.opts.MaxTTL)
	q := fillQuota(&v, "resourceQuota", req.ResourceQuota, def)
	if req.ProjectId != "" {
		if err := CheckID("projectId", "prj", req.ProjectId); err != nil {
			return nil, err
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	projectID := req.ProjectId
	if projectID == "" {
		projectID = defaultProject(tx, orgID)
	}
	if p := tx.Project(projectID); p == nil || p.OrgId != orgID {
		return nil, apierr.NotFound("project", projectID)
	}
	now := s.opts.Now().UTC()
	env := &atollv1.Environment{
		Id: NewID("env"), Name: req.Name, Slug: req.Slug, Description: req.Description,
		OrgId: orgID, ProjectId: projectID, ResourceQuota: q, IsDefault: req.IsDefault,
		Labels: req.Labels, Variables: req.Variables,
	}
	derived := env.Slug == ""
	if derived {
		env.Slug = Slugify(req.Name, "env")
	}
	if ttl > 0 {
		env.Ttl = ttlStr
		env.ExpiresAt = timestamppb.New(now.Add(ttl))
	}
	create := &atollv1.CreateEnvironmentCmd{Environment: env, SlugDerived: derived}
	if bp != nil {
		// Substitute the variables into the blueprint's templates and
		// validate every object like its own create API; the objects are
		// created with the environment in the same apply.
		vars, err := blueprintVars(bp, req.Variables)
		if err != nil {
			return nil, err
		}
		env.BlueprintId, env.Variables = bp.Id, maskSecretVars(bp, vars)
		var bv apierr.Violations
		objs := s.buildObjects(&bv, bp, vars, env, true, nil)
		if err := prefixed("blueprint", bv).Err(); err != nil {
			return nil, err
		}
		create.Volumes, create.VariableSets, create.Files, create.Apps = objs.volumes, objs.varSets, objs.files, objs.apps
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_CreateEnvironment{CreateEnvironment: create}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.view(s.snap(), out.(*atollv1.Environment)), nil
}

func defaultProject(tx *state.Txn, orgID string) string {
	for _, p := range tx.Projects(orgID) {
		if p.IsDefault {
			return p.Id
		}
	}
	return ""
}

// present returns a copy for the API with the computed fields filled.
func present(e *atollv1.Environment) *atollv1.Environment {
	out := proto.Clone(e).(*atollv1.Environment)
	if out.Resources == nil {
		out.Resources = &atollv1.EnvironmentResources{}
	}
	if out.Metrics == nil {
		out.Metrics = &atollv1.EnvironmentMetrics{}
	}
	if out.ResourceUsage == nil {
		out.ResourceUsage = &atollv1.Resources{}
	}
	out.CompanyIdRef = out.OrgId
	return out
}

// getEnv finds an environment of the caller's organization; another
// organization's environment is NOT_FOUND, exactly like a missing one. A
// soft-deleted one is FAILED_PRECONDITION unless includeDeleted (it is
// still visible to Get and can be restored).
func (s *envService) getEnv(ctx context.Context, tx *state.Txn, id string, includeDeleted bool) (*atollv1.Environment, error) {
	if err := CheckID("environmentId", "env", id); err != nil {
		return nil, err
	}
	e := tx.Environment(id)
	if e == nil || e.OrgId != orgOf(ctx) {
		return nil, apierr.NotFound("environment", id)
	}
	if e.IsDeleted && !includeDeleted {
		return nil, apierr.EnvDeleted(id)
	}
	return e, nil
}

func (s *envService) GetEnvironment(ctx context.Context, req *atollv1.GetEnvironmentRequest) (*atollv1.Environment, error) {
	tx := s.snap()
	e, err := s.getEnv(ctx, tx, req.EnvironmentId, true)
	if err != nil {
		return nil, err
	}
	return s.view(tx, e), nil
}

// view is an environment as the API shows it: present's copy with the live
// parts (decorate). Every answer that carries an environment (get, list,
// create, update, restore, start/stop, watch) uses it.
func (s *envService) view(tx *state.Txn, e *atollv1.Environment) *atollv1.Environment {
	return s.decorate(tx, present(e))
}

// decorate adds the live parts of an environment: measured usage and the
// public endpoints of its apps.
func (s *envService) decorate(tx *state.Txn, e *atollv1.Environment) *atollv1.Environment {
	if s.opts.Usage != nil {
		u := s.opts.Usage.EnvUsage(e.Id)
		e.Metrics = &atollv1.EnvironmentMetrics{
			CpuUsage:       float64(u.GetCpu()) / 1000,
			MemoryUsageGb:  float64(u.GetMemory()) / 1024,
			StorageUsageGb: float64(u.GetStorage()) / 1024,
		}
	}
	for _, app := range tx.Apps(e.Id) {
		if pe := app.GetPublicEndpoint(); pe != nil && !app.IsDeleted {
			e.Endpoints = append(e.Endpoints, &atollv1.Endpoint{Name: app.Name, Url: pe.Url})
		}
	}
	return e
}

type pageCursor struct {
	index uint64
	id    string
}

func encodeCursor(c pageCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("v1:%d:%s", c.index, c.id)))
}

func decodeCursor(field, tok string) (pageCursor, error) {
	bad := apierr.InvalidField(field, "is not a page token of this API: pass the nextPageToken of the previous response")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return pageCursor{}, bad
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[0] != "v1" {
		return pageCursor{}, bad
	}
	idx, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil {
		return pageCursor{}, bad
	}
	return pageCursor{idx, parts[2]}, nil
}

// listed is an object listed in creation order.
type listed interface {
	GetCreateIndex() uint64
	GetId() string
}

// page sorts items in creation order and returns the page after the
// cursor token, with the token of the next page ("" at the end).
func page[T listed](items []T, token string, size int) ([]T, string, error) {
	return pageFrom(items, token, 0, size)
}

// pageFrom is page, starting offset items in when there is no token.
func pageFrom[T listed](items []T, token string, offset, size int) ([]T, string, error) {
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i], items[j]
		return a.GetCreateIndex() < b.GetCreateIndex() || a.GetCreateIndex() == b.GetCreateIndex() && a.GetId() < b.GetId()
	})
	start := min(offset, len(items))
	if token != "" {
		cur, err := decodeCursor("pageToken", token)
		if err != nil {
			return nil, "", err
		}
		start = sort.Search(len(items), func(i int) bool {
			m := items[i]
			return m.GetCreateIndex() > cur.index || m.GetCreateIndex() == cur.index && m.GetId() > cur.id
		})
	}
	end := min(start+size, len(items))
	next := ""
	if end < len(items) {
		next = encodeCursor(pageCursor{items[end-1].GetCreateIndex(), items[end-1].GetId()})
	}
	return items[start:end], next, nil
}

func pageSize(v *apierr.Violations, n int32) int {
	switch {
	case n < 0:
		v.Add("pageSize", "must be between 0 and %d (0 means the default, %d)", MaxPageSize, DefaultPageSize)
	case n == 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return int(n)
}

func (s *envService) ListEnvironments(ctx context.Context, req *atollv1.ListEnvironmentsRequest) (*atollv1.ListEnvironmentsResponse, error) {
	var v apierr.Violations
	status := parseStatus(&v, "status", req.Status)
	size := pageSize(&v, req.PageSize)
	if req.ProjectId != "" {
		if err := CheckID("projectId", "prj", req.ProjectId); err != nil {
			return nil, err
		}
	}
	if req.CreatedAfter != nil && req.CreatedBefore != nil && !req.CreatedAfter.AsTime().Before(req.CreatedBefore.AsTime()) {
		v.Add("createdAfter", "must be before createdBefore")
	}
	switch {
	case req.Offset < 0:
		v.Add("offset", "must not be negative")
	case req.Offset > 0 && req.PageToken != "":
		v.Add("offset", "give either offset or pageToken, not both")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	tx := s.snap()
	var envs []*atollv1.Environment
	if req.ProjectId != "" {
		p := tx.Project(req.ProjectId)
		if p == nil || p.OrgId != orgOf(ctx) {
			return nil, apierr.NotFound("project", req.ProjectId)
		}
		envs = tx.ProjectEnvironments(req.ProjectId)
	} else {
		envs = tx.Environments(orgOf(ctx))
	}
	search := strings.ToLower(req.Search)
	matched := envs[:0:0]
	for _, e := range envs {
		switch {
		case e.IsDeleted && !req.IncludeDeleted:
		case status != 0 && e.Status != status:
		case search != "" && !strings.Contains(strings.ToLower(e.Name), search):
		case req.CreatedAfter != nil && !e.CreatedAt.AsTime().After(req.CreatedAfter.AsTime()):
		case req.CreatedBefore != nil && !e.CreatedAt.AsTime().Before(req.CreatedBefore.AsTime()):
		default:
			matched = append(matched, e)
		}
	}
	items, next, err := pageFrom(matched, req.PageToken, int(req.Offset), size)
	if err != nil {
		return nil, err
	}
	resp := &atollv1.ListEnvironmentsResponse{TotalCount: int32(len(matched)), NextPageToken: next}
	for _, e := range items {
		resp.Environments = append(resp.Environments, s.view(tx, e))
	}
	return resp, nil
}

// updatable maps accepted update-mask paths (JSON or proto names) to the FSM's path.
var updatable = map[string]string{
	"name": "name", "description": "description", "labels": "labels", "variables": "variables",
	"isDefault": "isDefault", "is_default": "isDefault",
	"resourceQuota": "resourceQuota", "resource_quota": "resourceQuota",
	"resourceQuota.cpu": "resourceQuota.cpu", "resource_quota.cpu": "resourceQuota.cpu",
	"resourceQuota.memory": "resourceQuota.memory", "resource_quota.memory": "resourceQuota.memory",
	"resourceQuota.storage": "resourceQuota.storage", "resource_quota.storage": "resourceQuota.storage",
	"ttl": "ttl",
}

func (s *envService) UpdateEnvironment(ctx context.Context, req *atollv1.UpdateEnvironmentRequest) (*atollv1.Environment, error) {
	if err := CheckID("environmentId", "env", req.EnvironmentId); err != nil {
		return nil, err
	}
	patch := req.GetEnvironment()
	if patch == nil {
		return nil, apierr.InvalidField("environment", "is required: the fields to change")
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		// No mask (PUT, or a gRPC client without one): the fields that are set.
		patch.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			paths = append(paths, fd.JSONName())
			return true
		})
	}
	if len(paths) == 0 {
		return nil, apierr.InvalidField("updateMask", "is required: name the fields to change (REST: the fields present in the body)")
	}
	var v apierr.Violations
	var fsmPaths []string
	for _, p := range paths {
		fp, ok := updatable[p]
		if !ok {
			v.Add("updateMask", "field %q cannot be updated; updatable: name, description, labels, variables, isDefault, resourceQuota, ttl", p)
			continue
		}
		fsmPaths = append(fsmPaths, fp)
		switch fp {
		case "name":
			checkName(&v, "environment.name", patch.Name)
		case "description":
			checkDescription(&v, "environment.description", patch.Description)
		case "labels":
			checkLabels(&v, "environment.labels", patch.Labels)
		case "variables":
			checkVariables(&v, "environment.variables", patch.Variables)
		case "resourceQuota", "resourceQuota.cpu", "resourceQuota.memory", "resourceQuota.storage":
			q := patch.GetResourceQuota()
			for _, d := range []struct {
				n string
				x int32
			}{{"cpu", q.GetCpu()}, {"memory", q.GetMemory()}, {"storage", q.GetStorage()}} {
				if (fp == "resourceQuota" || fp == "resourceQuota."+d.n) && d.x <= 0 {
					v.Add("environment.resourceQuota."+d.n, "must be greater than 0, got %d", d.x)
				}
			}
		case "ttl":
			d := checkTTL(&v, "environment.ttl", patch.Ttl, s.opts.MaxTTL)
			patch.ExpiresAt = nil
			if d > 0 {
				patch.ExpiresAt = timestamppb.New(s.opts.Now().Add(d))
			}
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if req.ExpectedVersion < 0 {
		return nil, apierr.InvalidField("expectedVersion", "must be >= 0")
	}
	if _, err := s.getEnv(ctx, s.snap(), req.EnvironmentId, false); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_UpdateEnvironment{UpdateEnvironment: &atollv1.UpdateEnvironmentCmd{
		EnvironmentId: req.EnvironmentId, Patch: patch, Paths: fsmPaths, ExpectedVersion: req.ExpectedVersion,
	}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.view(s.snap(), out.(*atollv1.Environment)), nil
}

func (s *envService) DeleteEnvironment(ctx context.Context, req *atollv1.DeleteEnvironmentRequest) (*emptypb.Empty, error) {
	// A purge also takes a soft-deleted environment.
	if _, err := s.getEnv(ctx, s.snap(), req.EnvironmentId, req.Purge); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_DeleteEnvironment{DeleteEnvironment: &atollv1.DeleteEnvironmentCmd{EnvironmentId: req.EnvironmentId, Force: req.Force, Purge: req.Purge}}
	if _, err := s.apply(ctx, cmd); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *envService) RestoreEnvironment(ctx context.Context, req *atollv1.RestoreEnvironmentRequest) (*atollv1.Environment, error) {
	if req.Version < 0 {
		return nil, apierr.InvalidField("version", "must be >= 0 (0 undeletes with the latest settings)")
	}
	if _, err := s.getEnv(ctx, s.snap(), req.EnvironmentId, true); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_RestoreEnvironment{RestoreEnvironment: &atollv1.RestoreEnvironmentCmd{EnvironmentId: req.EnvironmentId, Version: req.Version}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.view(s.snap(), out.(*atollv1.Environment)), nil
}

func (s *envService) GetEnvironmentHistory(ctx context.Context, req *atollv1.GetEnvironmentHistoryRequest) (*atollv1.GetEnvironmentHistoryResponse, error) {
	tx := s.snap()
	if _, err := s.getEnv(ctx, tx, req.EnvironmentId, true); err != nil {
		return nil, err
	}
	resp := &atollv1.GetEnvironmentHistoryResponse{EnvironmentId: req.EnvironmentId}
	for _, v := range tx.EnvironmentVersions(req.EnvironmentId) {
		cp := proto.Clone(v).(*atollv1.EnvironmentVersion)
		cp.Environment = present(cp.Environment)
		resp.Versions = append(resp.Versions, cp)
	}
	return resp, nil
}

func (s *envService) GetResourceUsage(ctx context.Context, req *atollv1.GetResourceUsageRequest) (*atollv1.ResourceUsage, error) {
	e, err := s.getEnv(ctx, s.snap(), req.EnvironmentId, true)
	if err != nil {
		return nil, err
	}
	q, used := quota.Of(e.ResourceQuota), quota.Of(e.ResourceUsage)
	return &atollv1.ResourceUsage{
		EnvironmentId: e.Id, Quota: q.Proto(), Used: used.Proto(),
		Available: quota.Available(q, used).Proto(), UtilizationPercent: quota.Utilization(q, used),
		Measured: s.measured(e.Id),
	}, nil
}

func (s *envService) measured(envID string) *atollv1.Resources {
	if s.opts.Usage == nil {
		return &atollv1.Resources{}
	}
	return s.opts.Usage.EnvUsage(envID)
}

func (s *envService) setState(ctx context.Context, id, action string) (*atollv1.Environment, error) {
	if _, err := s.getEnv(ctx, s.snap(), id, false); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_SetEnvironmentState{SetEnvironmentState: &atollv1.SetEnvironmentStateCmd{EnvironmentId: id, Action: action}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.view(s.snap(), out.(*atollv1.Environment)), nil
}

func (s *envService) StartEnvironment(ctx context.Context, req *atollv1.StartEnvironmentRequest) (*atollv1.Environment, error) {
	return s.setState(ctx, req.EnvironmentId, "start")
}

func (s *envService) StopEnvironment(ctx context.Context, req *atollv1.StopEnvironmentRequest) (*atollv1.Environment, error) {
	action := "stop"
	if req.Hibernate {
		action = "hibernate"
	}
	return s.setState(ctx, req.EnvironmentId, action)
}

// eventTypes maps state-machine event types to the API's event_type.
var eventTypes = map[string]string{
	"environment.created": "created", "environment.updated": "updated", "environment.deleted": "deleted",
	"environment.restored": "restored", "environment.status_changed": "status_changed", "environment.expired": "deleted",
	"environment.expiring": "expiring", "environment.purged": "purged",
}

func (s *envService) WatchEnvironment(req *atollv1.WatchEnvironmentRequest, stream atollv1.EnvironmentService_WatchEnvironmentServer) error {
	ctx := stream.Context()
	orgID := orgOf(ctx)
	tx := s.snap()
	switch {
	case req.EnvironmentId != "":
		if _, err := s.getEnv(ctx, tx, req.EnvironmentId, true); err != nil {
			return err
		}
	case req.ProjectId != "":
		if err := CheckID("projectId", "prj", req.ProjectId); err != nil {
			return err
		}
		if p := tx.Project(req.ProjectId); p == nil || p.OrgId != orgID {
			return apierr.NotFound("project", req.ProjectId)
		}
	}
	match := func(ev *atollv1.Event) bool {
		if ev.ObjectType != "environment" || ev.OrgId != orgID {
			return false
		}
		if req.EnvironmentId != "" {
			return ev.ObjectId == req.EnvironmentId
		}
		return req.ProjectId == "" || ev.ProjectId == req.ProjectId
	}
	from := req.FromIndex
	if from > tx.AppliedIndex() {
		// An index from the future is a client error; but this server may
		// just be behind the one that gave it out: give it a moment.
		grace := time.NewTimer(150 * time.Millisecond) // within the SSE route's wait for an early error
		defer grace.Stop()
		for cur := tx; from > cur.AppliedIndex(); cur = s.snap() {
			select {
			case <-cur.TableWatch(state.TableMeta): // the applied index is in meta
				continue
			case <-grace.C:
			case <-ctx.Done():
			}
			break
		}
		if applied := s.snap().AppliedIndex(); from > applied {
			return apierr.InvalidField("fromIndex", "is beyond the current index %d (use an index from a response or a previous event; 0 starts from the current state)", applied)
		}
	}
	if from == 0 {
		// Start with the current state, then changes after it.
		from = tx.AppliedIndex()
		var current []*atollv1.Environment
		if req.EnvironmentId != "" {
			current = append(current, tx.Environment(req.EnvironmentId))
		} else if req.ProjectId != "" {
			current = tx.ProjectEnvironments(req.ProjectId)
		} else {
			current = tx.Environments(orgID)
		}
		for _, e := range current {
			if e.IsDeleted && req.EnvironmentId == "" {
				continue
			}
			if err := stream.Send(&atollv1.EnvironmentEvent{EventType: "current", Environment: s.view(tx, e), Timestamp: timestamppb.Now(), Index: from}); err != nil {
				return err
			}
		}
	}
	for {
		store, restored := s.b.State()
		events, dropped, watch := store.Snapshot().EventsAfter(from)
		if from < dropped {
			return apierr.Compacted(from, dropped+1)
		}
		for _, ev := range events {
			from = ev.Index
			if !match(ev) {
				continue
			}
			if err := stream.Send(&atollv1.EnvironmentEvent{
				EventType: eventTypes[ev.Type], Environment: s.view(s.snap(), ev.Environment), Timestamp: ev.Time, Index: ev.Index,
			}); err != nil {
				return err
			}
			if ev.Type == "environment.purged" && req.EnvironmentId != "" {
				return nil // the environment is gone for good: nothing more will come
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-watch:
		case <-restored:
		case <-time.After(30 * time.Second): // re-check periodically; keeps idle streams honest
		}
	}
}
