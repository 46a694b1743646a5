package api

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/quota"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

type projectService struct {
	*Services
	atollv1.UnimplementedProjectServiceServer
}

func (s *projectService) CreateProject(ctx context.Context, req *atollv1.CreateProjectRequest) (*atollv1.Project, error) {
	var v apierr.Violations
	checkName(&v, "name", req.Name)
	checkSlug(&v, "slug", req.Slug)
	checkDescription(&v, "description", req.Description)
	if err := v.Err(); err != nil {
		return nil, err
	}
	p := &atollv1.Project{Id: NewID("prj"), OrgId: orgOf(ctx), Name: req.Name, Slug: req.Slug, Description: req.Description, CreatedBy: IdentityFrom(ctx).Name}
	derived := p.Slug == ""
	if derived {
		p.Slug = Slugify(req.Name, "project")
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_CreateProject{CreateProject: &atollv1.CreateProjectCmd{Project: p, SlugDerived: derived}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return out.(*atollv1.Project), nil
}

func (s *projectService) getProject(ctx context.Context, tx *state.Txn, id string) (*atollv1.Project, error) {
	if err := CheckID("projectId", "prj", id); err != nil {
		return nil, err
	}
	p := tx.Project(id)
	if p == nil || p.OrgId != orgOf(ctx) {
		return nil, apierr.NotFound("project", id)
	}
	return p, nil
}

func withEnvCount(tx *state.Txn, p *atollv1.Project) *atollv1.Project {
	n := 0
	for _, e := range tx.ProjectEnvironments(p.Id) {
		if !e.IsDeleted {
			n++
		}
	}
	cp := cloneProject(p)
	cp.EnvironmentCount = int32(n)
	return cp
}

func (s *projectService) GetProject(ctx context.Context, req *atollv1.GetProjectRequest) (*atollv1.Project, error) {
	tx := s.snap()
	p, err := s.getProject(ctx, tx, req.ProjectId)
	if err != nil {
		return nil, err
	}
	return withEnvCount(tx, p), nil
}

func (s *projectService) ListProjects(ctx context.Context, req *atollv1.ListProjectsRequest) (*atollv1.ListProjectsResponse, error) {
	var v apierr.Violations
	size := pageSize(&v, req.PageSize)
	if err := v.Err(); err != nil {
		return nil, err
	}
	tx := s.snap()
	ps := tx.Projects(orgOf(ctx))
	items, next, err := page(ps, req.PageToken, size)
	if err != nil {
		return nil, err
	}
	resp := &atollv1.ListProjectsResponse{TotalCount: int32(len(ps)), NextPageToken: next}
	for _, p := range items {
		resp.Projects = append(resp.Projects, withEnvCount(tx, p))
	}
	return resp, nil
}

func (s *projectService) UpdateProject(ctx context.Context, req *atollv1.UpdateProjectRequest) (*atollv1.Project, error) {
	if _, err := s.getProject(ctx, s.snap(), req.ProjectId); err != nil {
		return nil, err
	}
	var v apierr.Violations
	var paths []string
	for _, p := range req.GetUpdateMask().GetPaths() {
		switch p {
		case "name":
			checkName(&v, "project.name", req.GetProject().GetName())
		case "description":
			checkDescription(&v, "project.description", req.GetProject().GetDescription())
		default:
			v.Add("updateMask", "field %q cannot be updated; updatable: name, description", p)
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		v.Add("updateMask", "is required: name the fields to change")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_UpdateProject{UpdateProject: &atollv1.UpdateProjectCmd{ProjectId: req.ProjectId, Patch: req.Project, Paths: paths}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return out.(*atollv1.Project), nil
}

func (s *projectService) DeleteProject(ctx context.Context, req *atollv1.DeleteProjectRequest) (*emptypb.Empty, error) {
	if _, err := s.getProject(ctx, s.snap(), req.ProjectId); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_DeleteProject{DeleteProject: &atollv1.DeleteProjectCmd{ProjectId: req.ProjectId}}
	if _, err := s.apply(ctx, cmd); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

type orgService struct {
	*Services
	atollv1.UnimplementedOrganizationServiceServer
}

// presentOrg fills the computed fields of an organization.
func presentOrg(o *atollv1.Organization) *atollv1.Organization {
	out := cloneOrg(o)
	q, used := quota.Of(o.Quota), quota.Of(o.Allocated)
	out.Available = quota.Available(q, used).Proto()
	out.UtilizationPercent = quota.Utilization(q, used)
	if out.DefaultEnvironmentQuota == nil {
		out.DefaultEnvironmentQuota = DefaultEnvironmentQuota
	}
	return out
}

func (s *orgService) GetOrganization(ctx context.Context, _ *atollv1.GetOrganizationRequest) (*atollv1.Organization, error) {
	o := s.snap().Organization(orgOf(ctx))
	if o == nil {
		return nil, apierr.NotFound("organization", orgOf(ctx))
	}
	return presentOrg(o), nil
}

func (s *orgService) UpdateOrganization(ctx context.Context, req *atollv1.UpdateOrganizationRequest) (*atollv1.Organization, error) {
	var v apierr.Violations
	var paths []string
	o := req.GetOrganization()
	var partialDefault []string // defaultEnvironmentQuota.cpu etc. (a REST PATCH body's mask)
	seen := map[string]bool{}
	for _, p := range req.GetUpdateMask().GetPaths() {
		if rest, ok := strings.CutPrefix(p, "default_environment_quota"); ok {
			p = "defaultEnvironmentQuota" + rest
		}
		if d, ok := strings.CutPrefix(p, "defaultEnvironmentQuota."); ok && (d == "cpu" || d == "memory" || d == "storage") {
			partialDefault = append(partialDefault, d)
			p = "defaultEnvironmentQuota"
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		switch p {
		case "name":
			checkName(&v, "organization.name", o.GetName())
		case "quota", "quota.cpu", "quota.memory", "quota.storage":
			checkQuotaValues(&v, "organization.quota", o.GetQuota(), p)
		case "defaultEnvironmentQuota":
			checkQuotaValues(&v, "organization.defaultEnvironmentQuota", o.GetDefaultEnvironmentQuota(), "quota")
		default:
			v.Add("updateMask", "field %q cannot be updated; updatable: name, quota, defaultEnvironmentQuota", p)
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		v.Add("updateMask", "is required: name the fields to change")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if len(partialDefault) > 0 && !slices.Contains(req.GetUpdateMask().GetPaths(), "defaultEnvironmentQuota") && !slices.Contains(req.GetUpdateMask().GetPaths(), "default_environment_quota") {
		// Only some dimensions named: keep the others as they are.
		cur := DefaultEnvironmentQuota
		if org := s.snap().Organization(orgOf(ctx)); org != nil && org.DefaultEnvironmentQuota != nil {
			cur = org.DefaultEnvironmentQuota
		}
		merged := proto.Clone(cur).(*atollv1.Resources)
		for _, d := range partialDefault {
			quota.CopyDim(merged, o.GetDefaultEnvironmentQuota(), d)
		}
		o = proto.Clone(o).(*atollv1.Organization)
		o.DefaultEnvironmentQuota = merged
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_UpdateOrganization{UpdateOrganization: &atollv1.UpdateOrganizationCmd{Patch: o, Paths: paths}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return presentOrg(out.(*atollv1.Organization)), nil
}

func checkQuotaValues(v *apierr.Violations, field string, q *atollv1.Resources, path string) {
	for _, d := range []struct {
		n string
		x int32
	}{{"cpu", q.GetCpu()}, {"memory", q.GetMemory()}, {"storage", q.GetStorage()}} {
		if (path == "quota" || strings.HasSuffix(path, "."+d.n)) && d.x < 0 {
			v.Add(field+"."+d.n, "must be >= 0, got %d", d.x)
		}
	}
}

// DefaultOrgQuota is a new organization's quota when none is given.
var DefaultOrgQuota = &atollv1.Resources{Cpu: 64000, Memory: 262144, Storage: 1048576}

// NewOrganization builds the command that creates an organization with its
// default project and an admin token; it returns the token's secret.
func NewOrganization(name string, q *atollv1.Resources, scopes []string) (*atollv1.CreateOrganizationCmd, string) {
	orgID := NewID("org")
	secret := NewSecret()
	if q == nil {
		q = DefaultOrgQuota
	}
	return &atollv1.CreateOrganizationCmd{
		Organization:   &atollv1.Organization{Id: orgID, Name: name, Slug: Slugify(name, "org") + "-" + orgID[len(orgID)-6:], Quota: q},
		DefaultProject: &atollv1.Project{Id: NewID("prj"), OrgId: orgID, Name: "default", Slug: "default", IsDefault: true, CreatedBy: "system"},
		AdminToken: &atollv1.Token{Id: NewID("tok"), OrgId: orgID, Name: "admin", Scopes: scopes,
			SecretHash: HashToken(secret), Prefix: secret[:8], CreatedBy: "system"},
	}, secret
}

func (s *orgService) CreateOrganization(ctx context.Context, req *atollv1.CreateOrganizationRequest) (*atollv1.CreateOrganizationResponse, error) {
	var v apierr.Violations
	checkName(&v, "name", req.Name)
	if req.Quota != nil {
		checkQuotaValues(&v, "quota", req.Quota, "quota")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, secret := NewOrganization(req.Name, req.Quota, []string{"*"})
	// The new organization's admin is not a cluster admin.
	c.AdminToken.Scopes = []string{"env:*", "project:*", "org:*", "token:*", "app:*", "node:read"}
	cmd := s.command(ctx)
	cmd.OrgId = c.Organization.Id
	cmd.Cmd = &atollv1.Command_CreateOrganization{CreateOrganization: c}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return &atollv1.CreateOrganizationResponse{Organization: presentOrg(out.(*atollv1.Organization)), AdminToken: secret}, nil
}

type tokenService struct {
	*Services
	atollv1.UnimplementedTokenServiceServer
}

func presentToken(t *atollv1.Token) *atollv1.Token {
	out := cloneToken(t)
	out.SecretHash = ""
	return out
}

func (s *tokenService) CreateToken(ctx context.Context, req *atollv1.CreateTokenRequest) (*atollv1.CreateTokenResponse, error) {
	id := IdentityFrom(ctx)
	var v apierr.Violations
	checkName(&v, "name", req.Name)
	if len(req.Scopes) == 0 {
		v.Add("scopes", "is required: e.g. [\"env:read\"], [\"env:*\"] or [\"*\"]")
	}
	var missing []string
	for i, sc := range req.Scopes {
		known := false
		for _, k := range KnownScopes {
			known = known || k == sc
		}
		switch {
		case !known:
			v.Add("scopes["+itoa(i)+"]", "unknown scope %q; known: %s", truncate(sc, 40), strings.Join(KnownScopes, ", "))
		case !grantable(id.Scopes, sc) && !slices.Contains(missing, sc):
			missing = append(missing, sc)
		}
	}
	if len(missing) > 0 {
		return nil, scopesDenied(fmt.Sprintf("permission denied: cannot create a token with scope(s) %s: this token lacks them (a token can only grant scopes it holds itself)", quoteAll(missing)), missing)
	}
	d := checkTTL(&v, "ttl", req.Ttl, 10*365*24*timeHour)
	if err := v.Err(); err != nil {
		return nil, err
	}
	secret := NewSecret()
	t := &atollv1.Token{Id: NewID("tok"), OrgId: id.OrgID, Name: req.Name, Scopes: req.Scopes,
		SecretHash: HashToken(secret), Prefix: secret[:8], CreatedBy: id.Name}
	if d > 0 {
		t.ExpiresAt = timestamppb.New(s.opts.Now().Add(d))
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_CreateToken{CreateToken: &atollv1.CreateTokenCmd{Token: t}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return &atollv1.CreateTokenResponse{Token: presentToken(out.(*atollv1.Token)), Secret: secret}, nil
}

// grantable: a token can only hand out what its creator holds.
func grantable(have []string, want string) bool {
	if want == "*" {
		return HasScope(have, "*")
	}
	if res, ok := strings.CutSuffix(want, ":*"); ok {
		return HasScope(have, "*") || HasScope(have, res+":*") && containsExact(have, res+":*")
	}
	return HasScope(have, want)
}

// scopesDenied is PERMISSION_DENIED naming the scopes of another token that
// the caller lacks.
func scopesDenied(msg string, missing []string) error {
	st, err := status.New(codes.PermissionDenied, msg).WithDetails(&errdetails.ErrorInfo{Reason: "MISSING_PERMISSION", Domain: apierr.Domain,
		Metadata: map[string]string{"requiredPermission": missing[0], "missingScopes": strings.Join(missing, ",")}})
	if err != nil {
		return status.Error(codes.PermissionDenied, msg)
	}
	return st.Err()
}

// ungrantable returns the scopes of want that a holder of have cannot grant.
func ungrantable(have, want []string) []string {
	var out []string
	for _, sc := range want {
		if !grantable(have, sc) {
			out = append(out, sc)
		}
	}
	return out
}

func quoteAll(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

func containsExact(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (s *tokenService) ListTokens(ctx context.Context, _ *atollv1.ListTokensRequest) (*atollv1.ListTokensResponse, error) {
	resp := &atollv1.ListTokensResponse{}
	for _, t := range s.snap().Tokens(orgOf(ctx)) {
		resp.Tokens = append(resp.Tokens, presentToken(t))
	}
	sort.Slice(resp.Tokens, func(i, j int) bool { return resp.Tokens[i].CreateIndex < resp.Tokens[j].CreateIndex })
	return resp, nil
}

func (s *tokenService) RevokeToken(ctx context.Context, req *atollv1.RevokeTokenRequest) (*emptypb.Empty, error) {
	if err := CheckID("tokenId", "tok", req.TokenId); err != nil {
		return nil, err
	}
	// A token may only revoke tokens it could have created: one holding
	// scopes the caller lacks (e.g. "*") is out of its reach.
	id := IdentityFrom(ctx)
	if t := s.snap().Token(req.TokenId); t != nil && t.OrgId == id.OrgID {
		if missing := ungrantable(id.Scopes, t.Scopes); len(missing) > 0 {
			return nil, scopesDenied(fmt.Sprintf("permission denied: cannot revoke token %s (%s): it has scope(s) %s that this token lacks (a token can only revoke tokens whose scopes it holds itself)", t.Id, t.Name, quoteAll(missing)), missing)
		}
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_RevokeToken{RevokeToken: &atollv1.RevokeTokenCmd{TokenId: req.TokenId}}
	if _, err := s.apply(ctx, cmd); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *tokenService) WhoAmI(ctx context.Context, _ *atollv1.WhoAmIRequest) (*atollv1.Token, error) {
	id := IdentityFrom(ctx)
	t := s.snap().Token(id.TokenID)
	if t == nil {
		return nil, apierr.NotFound("token", id.TokenID)
	}
	return presentToken(t), nil
}
