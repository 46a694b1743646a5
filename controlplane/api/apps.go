package api

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/quota"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime"
)

type appService struct {
	*Services
	atollv1.UnimplementedAppServiceServer
}

// Limits of apps.
const (
	MaxReplicas = 100
	MaxPorts    = 32
	MaxMounts   = 32
)

var (
	imageNamePattern = regexp.MustCompile(`^[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)
	imageTagPattern  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// liveEnvOf finds a not-deleted environment of the caller's organization.
func (s *Services) liveEnvOf(ctx context.Context, tx *state.Txn, field, id string) (*atollv1.Environment, error) {
	if err := CheckID(field, "env", id); err != nil {
		return nil, err
	}
	e := tx.Environment(id)
	if e == nil || e.OrgId != orgOf(ctx) {
		return nil, apierr.NotFound("environment", id)
	}
	if e.IsDeleted {
		return nil, apierr.EnvDeleted(id)
	}
	return e, nil
}

// PublicHostname is the public hostname of an app: <app>-<env slug>.<domain>.
func PublicHostname(app, envSlug, domain string) string {
	return app + "-" + envSlug + "." + domain
}

// Hostname is the public hostname of an app on this cluster's domain.
func (s *Services) Hostname(app, envSlug string) string {
	return PublicHostname(app, envSlug, s.opts.Domain)
}

func (s *Services) appURL(host string) string {
	return PublicURL(s.opts.PublicScheme, host, s.opts.RouterPort)
}

// commandLine turns a JSON string ("sh -c 'x'") or array into argv.
func commandLine(v *apierr.Violations, field string, val *structpb.Value) []string {
	if val == nil {
		return nil
	}
	switch k := val.Kind.(type) {
	case *structpb.Value_NullValue:
		return nil
	case *structpb.Value_StringValue:
		if strings.TrimSpace(k.StringValue) == "" {
			return nil
		}
		out, err := runtime.SplitArgs(k.StringValue)
		if err != nil {
			v.Add(field, "%v", err)
		}
		return out
	case *structpb.Value_ListValue:
		var out []string
		for i, e := range k.ListValue.Values {
			sv, ok := e.Kind.(*structpb.Value_StringValue)
			if !ok {
				v.Add(fmt.Sprintf("%s[%d]", field, i), "must be a string")
				continue
			}
			out = append(out, sv.StringValue)
		}
		return out
	}
	v.Add(field, "must be a string (split like a shell would) or an array of strings")
	return nil
}

// normalizeApp validates an app as given by a user and fills what follows
// from it (requests, resolved command line, mount ids, hostnames).
func (s *Services) normalizeApp(tx *state.Txn, env *atollv1.Environment, app *atollv1.App) error {
	var v apierr.Violations
	s.checkApp(&v, env, app, tx.Volumes(env.Id), tx.VariableSets(env.Id), tx.Files(env.Id))
	return v.Err()
}

// normalizeAppWith is normalizeApp with the mounts resolved against the given
// volumes, variable sets and files (the environment's, or a blueprint's
// objects about to be created with the environment).
func (s *Services) normalizeAppWith(env *atollv1.Environment, app *atollv1.App, vols []*atollv1.Volume, vsets []*atollv1.VariableSet, files []*atollv1.File) error {
	var v apierr.Violations
	s.checkApp(&v, env, app, vols, vsets, files)
	return v.Err()
}

// checkApp is normalizeAppWith adding its violations to v.
func (s *Services) checkApp(v *apierr.Violations, env *atollv1.Environment, app *atollv1.App, vols []*atollv1.Volume, vsets []*atollv1.VariableSet, files []*atollv1.File) {
	if app.Name == "" {
		v.Add("name", "is required")
	} else if !slugPattern.MatchString(app.Name) {
		v.Add("name", "must be a DNS label (1-63 of a-z, 0-9, '-'): it becomes part of the app's hostname")
	}
	img := app.GetSource().GetImage()
	switch {
	case img.GetName() == "":
		v.Add("source.image.name", "is required (e.g. \"nginx\")")
	case !imageNamePattern.MatchString(img.GetName()):
		v.Add("source.image.name", "%q is not a valid image name", truncate(img.GetName(), 80))
	}
	switch {
	case img.GetTag() == "":
		v.Add("source.image.tag", "is required (e.g. \"latest\", \"1.21\")")
	case !imageTagPattern.MatchString(img.GetTag()):
		v.Add("source.image.tag", "%q is not a valid tag", truncate(img.GetTag(), 80))
	}
	rr := app.GetResourceRequests()
	req := &atollv1.Resources{}
	if rr.GetCpu() == "" {
		v.Add("resourceRequests.cpu", "is required (e.g. \"100m\")")
	} else if c, err := quota.ParseCPU(rr.GetCpu()); err != nil {
		v.Add("resourceRequests.cpu", "%v", err)
	} else {
		req.Cpu = int32(c)
	}
	if rr.GetMemory() == "" {
		v.Add("resourceRequests.memory", "is required (e.g. \"128Mi\")")
	} else if m, err := quota.ParseMB(rr.GetMemory()); err != nil {
		v.Add("resourceRequests.memory", "%v", err)
	} else if m < 6 {
		v.Add("resourceRequests.memory", "must be at least 6Mi (the engine's minimum)")
	} else {
		req.Memory = int32(m)
	}
	if rr.GetFilesystemStorage() != "" {
		if st, err := quota.ParseMB(rr.GetFilesystemStorage()); err != nil {
			v.Add("resourceRequests.filesystemStorage", "%v", err)
		} else {
			req.Storage = int32(st)
		}
	}
	app.Requests = req
	if app.Replicas == 0 {
		app.Replicas = 1
	}
	if app.Replicas < 0 || app.Replicas > MaxReplicas {
		v.Add("replicas", "must be between 1 and %d", MaxReplicas)
	}
	if len(app.Ports) > MaxPorts {
		v.Add("ports", "at most %d ports", MaxPorts)
	}
	host := s.Hostname(app.Name, env.Slug)
	seen := map[string]bool{}
	for i, p := range app.Ports {
		f := fmt.Sprintf("ports[%d]", i)
		if p.Number < 1 || p.Number > 65535 {
			v.Add(f+".number", "must be between 1 and 65535, got %d", p.Number)
		}
		switch strings.ToUpper(p.Protocol) {
		case "":
			p.Protocol = "TCP"
		case "TCP", "UDP":
			p.Protocol = strings.ToUpper(p.Protocol)
		default:
			v.Add(f+".protocol", "must be TCP or UDP, got %q", truncate(p.Protocol, 20))
		}
		key := fmt.Sprintf("%d/%s", p.Number, p.Protocol)
		if seen[key] {
			v.Add(f, "port %s is listed twice", key)
		}
		seen[key] = true
		if p.Name != "" && !slugPattern.MatchString(p.Name) {
			v.Add(f+".name", "must be a DNS label")
		}
		p.Hostname = host
	}
	if pe := app.PublicEndpoint; pe != nil {
		if pe.AppPort < 1 || pe.AppPort > 65535 {
			v.Add("publicEndpoint.appPort", "must be between 1 and 65535, got %d", pe.AppPort)
		}
		if pe.ExternalPort == 0 {
			pe.ExternalPort = 443
		}
		if pe.ExternalPort < 1 || pe.ExternalPort > 65535 {
			v.Add("publicEndpoint.externalPort", "must be between 1 and 65535, got %d", pe.ExternalPort)
		}
		// An app without ports publishes appPort alone; one with ports
		// must list it (the router reaches instances on a published TCP port).
		if len(app.Ports) > 0 && pe.AppPort > 0 && !seen[fmt.Sprintf("%d/TCP", pe.AppPort)] {
			v.Add("publicEndpoint.appPort", "must be one of the app's TCP ports (ports[].number): %s; got %d", tcpPorts(app.Ports), pe.AppPort)
		}
		pe.Hostname, pe.Url = host, s.appURL(host)
	}
	checkHealthCheck(v, app, seen)
	app.ResolvedCommand = commandLine(v, "command", app.Command)
	app.ResolvedArgs = commandLine(v, "args", app.Args)
	if n := len(app.VolumeMounts) + len(app.VariableSetMounts) + len(app.FileMounts); n > MaxMounts {
		v.Add("volumeMounts", "at most %d mounts in all", MaxMounts)
	}
	paths := map[string]bool{}
	checkPath := func(field, p string) {
		if msg := checkMountPath(p); msg != "" {
			v.Add(field, "%s", msg)
		} else if paths[p] {
			v.Add(field, "%q is mounted twice", p)
		}
		paths[p] = true
	}
	for i, m := range app.VolumeMounts {
		f := fmt.Sprintf("volumeMounts[%d]", i)
		checkPath(f+".path", m.Path)
		m.VolIdRef, m.VolNameRef = resolveRef(v, f, refFields{"volume", "volIdRef", "volNameRef"}, m.VolIdRef, m.VolNameRef, vols)
	}
	for i, m := range app.VariableSetMounts {
		f := fmt.Sprintf("variableSetMounts[%d]", i)
		m.VarSetIdRef, m.VarSetNameRef = resolveRef(v, f, refFields{"variable set", "varSetIdRef", "varSetNameRef"}, m.VarSetIdRef, m.VarSetNameRef, vsets)
	}
	for i, m := range app.FileMounts {
		f := fmt.Sprintf("fileMounts[%d]", i)
		checkPath(f+".mountPath", m.MountPath)
		if m.FileOwner != "" {
			if _, err := runtime.ParseOwner(m.FileOwner); err != nil {
				v.Add(f+".fileOwner", "%v", err)
			}
		}
		m.FileIdRef, m.FileNameRef = resolveRef(v, f, refFields{"file", "fileIdRef", "fileNameRef"}, m.FileIdRef, m.FileNameRef, files)
	}
	checkLabels(v, "labels", app.Labels)
}

// namedObject is a volume, variable set or file of an environment.
type namedObject interface {
	GetId() string
	GetName() string
}

// refFields names a kind of mounted object and the mount's id and name fields.
type refFields struct{ kind, id, name string }

// resolveRef finds a mounted object of the environment by id or by name
// (the seed's examples put names like "vol-123" in the id field, so an id
// field that matches a name is accepted too) and returns its id and name.
// Given both, they must name the same object.
func resolveRef[T namedObject](v *apierr.Violations, field string, k refFields, id, name string, objs []T) (string, string) {
	if id == "" && name == "" {
		v.Add(field, "give the %s's id (%s) or name (%s)", k.kind, k.id, k.name)
		return "", ""
	}
	find := func(match func(o T) bool) int {
		for i, o := range objs {
			if match(o) {
				return i
			}
		}
		return -1
	}
	byID, byName := -1, -1
	if id != "" {
		// an id match wins over a name in the id field
		if byID = find(func(o T) bool { return o.GetId() == id }); byID < 0 {
			byID = find(func(o T) bool { return o.GetName() == id })
		}
	}
	if name != "" {
		byName = find(func(o T) bool { return o.GetName() == name })
	}
	switch {
	case id != "" && name != "" && (byID < 0 || byName < 0 || byID != byName):
		v.Add(field, "give either %s or %s, not both: %s", k.name, k.id, describeRefs(k, id, name, byID, byName, objs))
		return id, name
	case id != "" && byID >= 0:
		return objs[byID].GetId(), objs[byID].GetName()
	case id == "" && byName >= 0:
		return objs[byName].GetId(), objs[byName].GetName()
	}
	ref := id
	if ref == "" {
		ref = name
	}
	v.Add(field, "%s %q not found in this environment", k.kind, truncate(ref, 80))
	return id, name
}

// describeRefs says what each of a mount's id and name refers to.
func describeRefs[T namedObject](k refFields, id, name string, byID, byName int, objs []T) string {
	what := func(field, ref string, i int) string {
		if i < 0 {
			return fmt.Sprintf("%s %q is no %s of this environment", field, truncate(ref, 80), k.kind)
		}
		return fmt.Sprintf("%s %q is %s %s (%s)", field, truncate(ref, 80), k.kind, objs[i].GetName(), objs[i].GetId())
	}
	return what(k.name, name, byName) + ", " + what(k.id, id, byID)
}

func (s *appService) CreateApp(ctx context.Context, req *atollv1.CreateAppRequest) (*atollv1.App, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", req.EnvId)
	if err != nil {
		return nil, err
	}
	app := req.GetApp()
	if app == nil {
		return nil, apierr.InvalidField("app", "is required")
	}
	app = proto.Clone(app).(*atollv1.App)
	if err := s.normalizeApp(tx, env, app); err != nil {
		return nil, err
	}
	app.Id, app.EnvIdRef, app.OrgId, app.Status = NewID("app"), env.Id, env.OrgId, nil
	app.IsDeleted, app.Version = false, 0
	if app.IsActive == nil {
		t := true
		app.IsActive = &t
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_CreateApp{CreateApp: &atollv1.CreateAppCmd{App: app}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.presentApp(s.snap(), out.(*atollv1.App)), nil
}

// findApp finds a live app of an environment by id or name.
func (s *Services) findApp(ctx context.Context, tx *state.Txn, envID, ref string) (*atollv1.App, *atollv1.Environment, error) {
	env, err := s.liveEnvOf(ctx, tx, "envId", envID)
	if err != nil {
		return nil, nil, err
	}
	if ref == "" {
		return nil, nil, apierr.InvalidField("appId", "is required (the app's id or name)")
	}
	if strings.HasPrefix(ref, "app_") {
		if a := tx.App(ref); a != nil && a.EnvIdRef == env.Id && !a.IsDeleted {
			return a, env, nil
		}
		return nil, nil, apierr.NotFound("app", ref)
	}
	if a := tx.LiveAppByName(env.Id, ref); a != nil {
		return a, env, nil
	}
	return nil, nil, apierr.NotFound("app", ref)
}

// presentApp adds the status: per-instance state and a summary. Running
// counts the instances that serve, of any version; while a rollout is under
// way (Rollout set) the state is UPDATING, and a halted rollout says why in
// the message while the previous version keeps running.
func (s *Services) presentApp(tx *state.Txn, a *atollv1.App) *atollv1.App {
	out := proto.Clone(a).(*atollv1.App)
	out.SpecVersion = fsm.SpecVersion(a)
	st := &atollv1.AppStatus{Desired: a.Replicas, Message: a.GetStatus().GetMessage()}
	if !fsm.AppActive(a) {
		st.Desired = 0
	}
	var failing, unhealthy string
	insts := tx.AppInstances(a.Id)
	for _, in := range insts {
		if unhealthy == "" && in.DesiredRunning && fsm.Unhealthy(tx, a, in) {
			unhealthy = fmt.Sprintf("instance %s unhealthy: %s", in.Id, in.HealthMessage)
		}
		cp := proto.Clone(in).(*atollv1.Instance)
		if s.opts.Usage != nil {
			cp.Measured = s.opts.Usage.InstanceUsage(in.Id)
		}
		st.Instances = append(st.Instances, cp)
		switch in.State {
		case atollv1.InstanceState_INSTANCE_RUNNING:
			st.Running++
		case atollv1.InstanceState_INSTANCE_ERROR, atollv1.InstanceState_INSTANCE_FAILED:
			failing = in.LastError
		}
	}
	st.Rollout = fsm.Rollout(a, insts)
	switch {
	case a.IsDeleted:
		st.State = "DELETED"
	case st.Desired == 0:
		st.State = "STOPPED"
	case st.Rollout != nil && st.Rollout.State == fsm.RolloutFailed:
		// Halted: the previous version serves; the message says why.
		st.State, st.Message = "RUNNING", st.Rollout.Message
		if st.Running < st.Desired {
			st.State = "DEGRADED"
		}
	case st.Rollout != nil:
		st.State = "UPDATING"
		if st.Message == "" {
			st.Message = st.Rollout.Message
		}
	case st.Running >= st.Desired:
		st.State = "RUNNING"
	case failing != "":
		st.State, st.Message = "FAILED", failing
	case st.Running > 0:
		st.State = "DEGRADED"
	case len(st.Instances) == 0:
		st.State = "PENDING"
	default:
		st.State = "STARTING"
	}
	if unhealthy != "" && (st.State == "RUNNING" || st.State == "DEGRADED") {
		// It runs but fails its health check: out of routing, not restarted.
		st.State, st.Message = "DEGRADED", unhealthy
	}
	out.Status = st
	return out
}

func (s *appService) GetApp(ctx context.Context, req *atollv1.GetAppRequest) (*atollv1.App, error) {
	tx := s.snap()
	a, _, err := s.findApp(ctx, tx, req.EnvId, req.AppId)
	if err != nil {
		return nil, err
	}
	return s.presentApp(tx, a), nil
}

func (s *appService) ListApps(ctx context.Context, req *atollv1.ListAppsRequest) (*atollv1.ListAppsResponse, error) {
	var v apierr.Violations
	size := pageSize(&v, req.PageSize)
	if err := v.Err(); err != nil {
		return nil, err
	}
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", req.EnvId)
	if err != nil {
		return nil, err
	}
	var apps []*atollv1.App
	for _, a := range tx.Apps(env.Id) {
		if !a.IsDeleted || req.IncludeDeleted {
			apps = append(apps, a)
		}
	}
	items, next, err := page(apps, req.PageToken, size)
	if err != nil {
		return nil, err
	}
	resp := &atollv1.ListAppsResponse{TotalCount: int32(len(apps)), NextPageToken: next}
	for _, a := range items {
		resp.Apps = append(resp.Apps, s.presentApp(tx, a))
	}
	return resp, nil
}

// appFields maps update-mask paths to a copy function.
var appFields = map[string]func(dst, src *atollv1.App){
	"name":              func(d, s *atollv1.App) { d.Name = s.Name },
	"source":            func(d, s *atollv1.App) { d.Source = s.Source },
	"resourceRequests":  func(d, s *atollv1.App) { d.ResourceRequests = s.ResourceRequests },
	"ports":             func(d, s *atollv1.App) { d.Ports = s.Ports },
	"publicEndpoint":    func(d, s *atollv1.App) { d.PublicEndpoint = s.PublicEndpoint },
	"command":           func(d, s *atollv1.App) { d.Command = s.Command },
	"args":              func(d, s *atollv1.App) { d.Args = s.Args },
	"volumeMounts":      func(d, s *atollv1.App) { d.VolumeMounts = s.VolumeMounts },
	"variableSetMounts": func(d, s *atollv1.App) { d.VariableSetMounts = s.VariableSetMounts },
	"fileMounts":        func(d, s *atollv1.App) { d.FileMounts = s.FileMounts },
	"isActive":          func(d, s *atollv1.App) { d.IsActive = s.IsActive },
	"replicas":          func(d, s *atollv1.App) { d.Replicas = s.Replicas },
	"labels":            func(d, s *atollv1.App) { d.Labels = s.Labels },
	"healthCheck":       func(d, s *atollv1.App) { d.HealthCheck = s.HealthCheck },
}

func (s *appService) UpdateApp(ctx context.Context, req *atollv1.UpdateAppRequest) (*atollv1.App, error) {
	tx := s.snap()
	cur, env, err := s.findApp(ctx, tx, req.EnvId, req.AppId)
	if err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, apierr.InvalidField("updateMask", "is required: name the fields to change (REST: the fields present in the body)")
	}
	next := proto.Clone(cur).(*atollv1.App)
	var v apierr.Violations
	setsReplicas := false
	for _, p := range paths {
		top, _, _ := strings.Cut(p, ".")
		top = snakeToCamel(top)
		set, ok := appFields[top]
		if !ok {
			v.Add("updateMask", "field %q cannot be updated", p)
			continue
		}
		setsReplicas = setsReplicas || top == "replicas"
		set(next, proto.Clone(req.GetApp()).(*atollv1.App))
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	// 0 means "the default, 1" only on create: an update naming replicas
	// (REST: a body with "replicas") asks for exactly that many, and there
	// is no scale to zero (isActive: false stops an app).
	if setsReplicas && next.Replicas == 0 {
		v.Add("replicas", "must be between 1 and %d (to stop the app, set isActive to false)", MaxReplicas)
	}
	s.checkApp(&v, env, next, tx.Volumes(env.Id), tx.VariableSets(env.Id), tx.Files(env.Id))
	if err := v.Err(); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_UpdateApp{UpdateApp: &atollv1.UpdateAppCmd{App: next, ExpectedVersion: cur.Version}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.presentApp(s.snap(), out.(*atollv1.App)), nil
}

func snakeToCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

func (s *appService) DeleteApp(ctx context.Context, req *atollv1.DeleteAppRequest) (*emptypb.Empty, error) {
	a, _, err := s.findApp(ctx, s.snap(), req.EnvId, req.AppId)
	if err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_DeleteApp{DeleteApp: &atollv1.DeleteAppCmd{AppId: a.Id}}
	if _, err := s.apply(ctx, cmd); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *appService) RestartApp(ctx context.Context, req *atollv1.RestartAppRequest) (*atollv1.App, error) {
	tx := s.snap()
	cur, _, err := s.findApp(ctx, tx, req.EnvId, req.AppId)
	if err != nil {
		return nil, err
	}
	next := proto.Clone(cur).(*atollv1.App)
	next.RestartGeneration++
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_UpdateApp{UpdateApp: &atollv1.UpdateAppCmd{App: next, ExpectedVersion: cur.Version}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.presentApp(s.snap(), out.(*atollv1.App)), nil
}

// checkHealthCheck validates an app's health check and fills in its
// defaults. tcp holds the app's ports as "number/protocol".
func checkHealthCheck(v *apierr.Violations, app *atollv1.App, tcp map[string]bool) {
	hc := app.HealthCheck
	if hc == nil {
		return
	}
	switch {
	case hc.HttpPath == "":
		v.Add("healthCheck.httpPath", "is required (e.g. \"/healthz\")")
	case !strings.HasPrefix(hc.HttpPath, "/"):
		v.Add("healthCheck.httpPath", "must start with \"/\", got %q", truncate(hc.HttpPath, 80))
	case len(hc.HttpPath) > 1024 || strings.ContainsAny(hc.HttpPath, " \t\r\n#"):
		v.Add("healthCheck.httpPath", "must be a URL path (at most 1024 characters, no spaces or '#')")
	}
	if hc.Port == 0 {
		switch {
		case app.PublicEndpoint != nil:
			hc.Port = app.PublicEndpoint.AppPort
		case len(app.Ports) > 0:
			hc.Port = app.Ports[0].Number
		}
	}
	published := tcp[fmt.Sprintf("%d/TCP", hc.Port)] || app.PublicEndpoint != nil && app.PublicEndpoint.AppPort == hc.Port
	switch {
	case hc.Port == 0:
		v.Add("healthCheck.port", "is required when the app has no ports and no public endpoint")
	case hc.Port < 1 || hc.Port > 65535:
		v.Add("healthCheck.port", "must be between 1 and 65535, got %d", hc.Port)
	case !published:
		v.Add("healthCheck.port", "must be one of the app's TCP ports or its public endpoint's app port, got %d", hc.Port)
	}
	if hc.IntervalSeconds == 0 {
		hc.IntervalSeconds = 10
	}
	if hc.TimeoutSeconds == 0 {
		hc.TimeoutSeconds = min(2, max(hc.IntervalSeconds-1, 1))
	}
	if hc.FailureThreshold == 0 {
		hc.FailureThreshold = 3
	}
	if hc.IntervalSeconds < 1 || hc.IntervalSeconds > 300 {
		v.Add("healthCheck.intervalSeconds", "must be between 1 and 300, got %d", hc.IntervalSeconds)
	}
	switch {
	case hc.TimeoutSeconds < 1 || hc.TimeoutSeconds > 60:
		v.Add("healthCheck.timeoutSeconds", "must be between 1 and 60, got %d", hc.TimeoutSeconds)
	case hc.TimeoutSeconds >= hc.IntervalSeconds:
		v.Add("healthCheck.timeoutSeconds", "must be less than intervalSeconds (%d), got %d", hc.IntervalSeconds, hc.TimeoutSeconds)
	}
	if hc.FailureThreshold < 1 || hc.FailureThreshold > 10 {
		v.Add("healthCheck.failureThreshold", "must be between 1 and 10, got %d", hc.FailureThreshold)
	}
	if hc.InitialDelaySeconds < 0 || hc.InitialDelaySeconds > 600 {
		v.Add("healthCheck.initialDelaySeconds", "must be between 0 and 600, got %d", hc.InitialDelaySeconds)
	}
}
