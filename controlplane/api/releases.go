package api

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// releaseService implements ReleaseService (releases of a project's apps,
// deployments to environments).
type releaseService struct {
	*Services
	atollv1.UnimplementedReleaseServiceServer
}

// Default per-replica requests of an app created by a deploy when the
// release names none.
const (
	DefaultReleaseCPU    = "100m"
	DefaultReleaseMemory = "128Mi"
)

var releaseVersionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// appOfRelease is the app a deploy creates from a release's defaults.
func appOfRelease(r *atollv1.Release, name string) *atollv1.App {
	app := &atollv1.App{
		Name:             name,
		Source:           proto.Clone(r.GetSource()).(*atollv1.AppSource),
		ResourceRequests: &atollv1.ResourceRequests{Cpu: DefaultReleaseCPU, Memory: DefaultReleaseMemory},
		PublicEndpoint:   r.GetPublicEndpoint(),
		Command:          r.GetCommand(),
		Args:             r.GetArgs(),
	}
	if rr := r.GetResourceRequests(); rr != nil {
		app.ResourceRequests = proto.Clone(rr).(*atollv1.ResourceRequests)
		if app.ResourceRequests.Cpu == "" {
			app.ResourceRequests.Cpu = DefaultReleaseCPU
		}
		if app.ResourceRequests.Memory == "" {
			app.ResourceRequests.Memory = DefaultReleaseMemory
		}
	}
	for _, p := range r.GetPorts() {
		app.Ports = append(app.Ports, proto.Clone(p).(*atollv1.Port))
	}
	if app.PublicEndpoint != nil {
		app.PublicEndpoint = proto.Clone(app.PublicEndpoint).(*atollv1.PublicEndpoint)
	}
	return proto.Clone(app).(*atollv1.App)
}

// ownProjectOf finds a project of the caller's organization.
func (s *Services) ownProjectOf(ctx context.Context, tx *state.Txn, id string) (*atollv1.Project, error) {
	if err := CheckID("projectId", "prj", id); err != nil {
		return nil, err
	}
	p := tx.Project(id)
	if p == nil || p.OrgId != orgOf(ctx) {
		return nil, apierr.NotFound("project", id)
	}
	return p, nil
}

// ownRelease finds a release of the caller's organization.
func (s *Services) ownRelease(ctx context.Context, tx *state.Txn, id string) (*atollv1.Release, error) {
	if err := CheckID("releaseId", "rel", id); err != nil {
		return nil, err
	}
	r := tx.Release(id)
	if r == nil || r.OrgId != orgOf(ctx) {
		return nil, apierr.NotFound("release", id)
	}
	return r, nil
}

func (s *releaseService) CreateRelease(ctx context.Context, req *atollv1.CreateReleaseRequest) (*atollv1.Release, error) {
	tx := s.snap()
	p, err := s.ownProjectOf(ctx, tx, req.ProjectId)
	if err != nil {
		return nil, err
	}
	if req.GetRelease() == nil {
		return nil, apierr.InvalidField("release", "is required")
	}
	r := proto.Clone(req.Release).(*atollv1.Release)
	var v apierr.Violations
	r.AppName, r.Version = strings.TrimSpace(r.AppName), strings.TrimSpace(r.Version)
	name := r.AppName
	switch {
	case name == "":
		v.Add("appName", "is required: the name of the app this is a release of")
	case !slugPattern.MatchString(name):
		v.Add("appName", "must be a DNS label (1-63 of a-z, 0-9, '-'): it becomes the app's name")
	}
	if !slugPattern.MatchString(name) {
		name = "app" // validate the rest with a placeholder name
	}
	switch {
	case r.Version == "":
		v.Add("version", "is required (e.g. \"1.4.2\"), unique per app of the project")
	case !releaseVersionPattern.MatchString(r.Version):
		v.Add("version", "%q is not valid: 1-64 of A-Z, a-z, 0-9, '.', '_', '+', '-', starting with a letter or digit", truncate(r.Version, 80))
	}
	if len(r.Description) > 1024 {
		v.Add("description", "at most 1024 bytes")
	} else {
		checkDescription(&v, "description", r.Description)
	}
	// The image and the defaults are validated as the app a deploy would
	// create (the environment only matters for hostnames and mounts).
	probe := appOfRelease(r, name)
	if err := s.normalizeApp(tx, &atollv1.Environment{Slug: "env"}, probe); err != nil {
		vs := releaseFieldViolations(err)
		if len(vs) == 0 {
			return nil, err
		}
		v = append(v, vs...)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	for _, pt := range r.Ports {
		pt.Protocol, pt.Hostname = strings.ToUpper(pt.Protocol), ""
		if pt.Protocol == "" {
			pt.Protocol = "TCP"
		}
	}
	if pe := r.PublicEndpoint; pe != nil {
		pe.Hostname, pe.Url = "", ""
	}
	r.Id, r.ProjectId, r.OrgId = NewID("rel"), p.Id, p.OrgId
	r.CreatedBy, r.CreatedAt, r.CreateIndex, r.ModifyIndex = "", nil, 0, 0
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_CreateRelease{CreateRelease: &atollv1.CreateReleaseCmd{Release: r}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return out.(*atollv1.Release), nil
}

func (s *releaseService) GetRelease(ctx context.Context, req *atollv1.GetReleaseRequest) (*atollv1.Release, error) {
	return s.ownRelease(ctx, s.snap(), req.ReleaseId)
}

// ListReleases lists a project's releases, newest first.
func (s *releaseService) ListReleases(ctx context.Context, req *atollv1.ListReleasesRequest) (*atollv1.ListReleasesResponse, error) {
	tx := s.snap()
	p, err := s.ownProjectOf(ctx, tx, req.ProjectId)
	if err != nil {
		return nil, err
	}
	all := tx.Releases(p.Id)
	resp := &atollv1.ListReleasesResponse{}
	for i := len(all) - 1; i >= 0; i-- {
		if req.AppName == "" || all[i].AppName == req.AppName {
			resp.Releases = append(resp.Releases, all[i])
		}
	}
	resp.TotalCount = int32(len(resp.Releases))
	return resp, nil
}

// DeployRelease creates the release's app in the environment, or updates
// the existing one to the release's image (the scheduler replaces its
// instances), and records the deployment, in one command. A concurrent
// change of the app is retried once.
func (s *releaseService) DeployRelease(ctx context.Context, req *atollv1.DeployReleaseRequest) (*atollv1.DeployReleaseResponse, error) {
	dep, err := s.deployOnce(ctx, req)
	if status.Code(err) == codes.Aborted {
		dep, err = s.deployOnce(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	rel := s.snap().Release(dep.ReleaseId)
	msg := fmt.Sprintf("Release %s deployed: app %s is at version %d", dep.ReleaseId, dep.AppName, dep.AppVersion)
	if rel != nil {
		msg = fmt.Sprintf("Release %s (%s %s) deployed: app %s is at version %d", rel.Id, rel.AppName, rel.Version, dep.AppName, dep.AppVersion)
	}
	return &atollv1.DeployReleaseResponse{
		Message: msg, DeploymentId: dep.Id, EnvironmentId: dep.EnvironmentId,
		AppId: dep.AppId, ReleaseId: dep.ReleaseId, Deployment: dep,
	}, nil
}

func (s *releaseService) deployOnce(ctx context.Context, req *atollv1.DeployReleaseRequest) (*atollv1.Deployment, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "environmentId", req.EnvironmentId)
	if err != nil {
		return nil, err
	}
	rel, err := s.ownRelease(ctx, tx, req.ReleaseId)
	if err != nil {
		return nil, err
	}
	if rel.ProjectId != env.ProjectId {
		return nil, apierr.FailedPrecondition("release %s belongs to project %s but environment %s is in project %s: a release deploys only to environments of its project",
			rel.Id, rel.ProjectId, env.Id, env.ProjectId)
	}
	ref := req.AppId
	if ref == "" {
		ref = rel.AppName
	}
	var cur *atollv1.App
	if strings.HasPrefix(ref, "app_") {
		if cur, _, err = s.findApp(ctx, tx, env.Id, ref); err != nil {
			return nil, err
		}
	} else {
		cur = tx.LiveAppByName(env.Id, ref)
	}
	dep := &atollv1.Deployment{Id: NewID("dep"), EnvironmentId: env.Id, ReleaseId: rel.Id}
	c := &atollv1.DeployReleaseCmd{Deployment: dep}
	if cur != nil {
		next := proto.Clone(cur).(*atollv1.App)
		next.Source = proto.Clone(rel.Source).(*atollv1.AppSource)
		if err := s.normalizeApp(tx, env, next); err != nil {
			return nil, err
		}
		c.App, c.ExpectedVersion = next, cur.Version
	} else {
		app := appOfRelease(rel, ref)
		if err := s.normalizeApp(tx, env, app); err != nil {
			return nil, err
		}
		t := true
		app.Id, app.EnvIdRef, app.OrgId, app.IsActive = NewID("app"), env.Id, env.OrgId, &t
		c.App, c.Create = app, true
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_DeployRelease{DeployRelease: c}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return out.(*atollv1.Deployment), nil
}

// UndeployApp deletes a deployed app (its instances go) and records it.
func (s *releaseService) UndeployApp(ctx context.Context, req *atollv1.UndeployAppRequest) (*atollv1.UndeployAppResponse, error) {
	tx := s.snap()
	app, env, err := s.findApp(ctx, tx, req.EnvironmentId, req.AppId)
	if err != nil {
		return nil, err
	}
	if env.ActiveDeployments[app.Name] == "" {
		return nil, apierr.NotFound("deployment of app", app.Name)
	}
	dep := &atollv1.Deployment{Id: NewID("dep"), EnvironmentId: env.Id}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_UndeployApp{UndeployApp: &atollv1.UndeployAppCmd{AppId: app.Id, Deployment: dep}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	d := out.(*atollv1.Deployment)
	return &atollv1.UndeployAppResponse{
		Message:      fmt.Sprintf("App %s undeployed from environment %s (was release %s)", d.AppName, d.EnvironmentId, d.PreviousReleaseId),
		DeploymentId: d.Id,
	}, nil
}

// ListDeployments lists an environment's deploys and undeploys, newest first.
func (s *releaseService) ListDeployments(ctx context.Context, req *atollv1.ListDeploymentsRequest) (*atollv1.ListDeploymentsResponse, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "environmentId", req.EnvironmentId)
	if err != nil {
		return nil, err
	}
	if req.Limit < 0 || req.Limit > 200 {
		return nil, apierr.InvalidField("limit", "must be between 1 and 200 (0 lists every deployment)")
	}
	all := tx.Deployments(env.Id)
	resp := &atollv1.ListDeploymentsResponse{TotalCount: int32(len(all))}
	for i := len(all) - 1; i >= 0 && (req.Limit == 0 || len(resp.Deployments) < int(req.Limit)); i-- {
		resp.Deployments = append(resp.Deployments, all[i])
	}
	return resp, nil
}

// releaseFieldViolations extracts the field violations of an INVALID_ARGUMENT error.
func releaseFieldViolations(err error) []apierr.Violation {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return nil
	}
	var out []apierr.Violation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.FieldViolations {
				out = append(out, apierr.Violation{Field: fv.Field, Description: fv.Description})
			}
		}
	}
	return out
}
