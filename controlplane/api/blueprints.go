package api

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// blueprintService implements BlueprintService (environment templates).
type blueprintService struct {
	*Services
	atollv1.UnimplementedBlueprintServiceServer
}

// MaxBlueprintObjects limits each kind of template in a blueprint.
const MaxBlueprintObjects = 64

var (
	bpVarNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	// placeholder matches ${name}; "$${" is an escaped, literal "${".
	placeholder = regexp.MustCompile(`\$\$\{|\$\{([^}]*)\}`)
)

// substitute replaces ${var} in s with vars[var]; undeclared names are
// reported (and left as they are).
func substitute(s string, vars map[string]string, undeclared func(name string)) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$${" {
			return "${"
		}
		name := m[2 : len(m)-1]
		val, ok := vars[name]
		if !ok {
			undeclared(name)
			return m
		}
		return val
	})
}

// walkStrings calls fn on every set string of m (string fields, elements of
// string lists, string map values), recursing into messages; fn returns the
// new value. path is the JSON path of m.
func walkStrings(m protoreflect.Message, path string, fn func(field, s string) string) {
	join := func(f string) string {
		if path == "" {
			return f
		}
		return path + "." + f
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		f := join(fd.JSONName())
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				ef := fmt.Sprintf("%s[%d]", f, i)
				switch fd.Kind() {
				case protoreflect.StringKind:
					l.Set(i, protoreflect.ValueOfString(fn(ef, l.Get(i).String())))
				case protoreflect.MessageKind, protoreflect.GroupKind:
					walkStrings(l.Get(i).Message(), ef, fn)
				}
			}
		case fd.IsMap():
			mp := v.Map()
			vd := fd.MapValue()
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				ef := f + "." + k.String()
				switch vd.Kind() {
				case protoreflect.StringKind:
					mp.Set(k, protoreflect.ValueOfString(fn(ef, mv.String())))
				case protoreflect.MessageKind:
					walkStrings(mv.Message(), ef, fn)
				}
				return true
			})
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(fn(f, v.String())))
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			walkStrings(v.Message(), f, fn)
		}
		return true
	})
}

// instantiate returns a copy of a template with ${var} substituted in every
// string; undeclared is called with the field and name of each unknown
// variable, used (may be nil) with each field and the variables it used.
func instantiate[T proto.Message](tpl T, vars map[string]string, undeclared func(field, name string), used func(field, name string)) T {
	out := proto.Clone(tpl).(T)
	walkStrings(out.ProtoReflect(), "", func(field, s string) string {
		field = valuePath(field)
		if used != nil {
			for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
				if m[0] != "$${" {
					used(field, m[1])
				}
			}
		}
		return substitute(s, vars, func(name string) { undeclared(field, name) })
	})
	return out
}

// valuePath writes a path through google.protobuf.Value fields (an app's
// command and args) as the JSON has it: args[0], not
// args.listValue.values[0].stringValue.
func valuePath(f string) string {
	f = strings.ReplaceAll(f, ".listValue.values[", "[")
	return strings.ReplaceAll(f, ".stringValue", "")
}

// violationsOf extracts the field violations of an INVALID_ARGUMENT error.
func violationsOf(err error) ([]apierr.Violation, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	var out []apierr.Violation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.FieldViolations {
				out = append(out, apierr.Violation{Field: fv.Field, Description: fv.Description})
			}
		}
	}
	return out, len(out) > 0
}

// addErr adds err's violations to v with their fields under prefix.
func addErr(v *apierr.Violations, prefix string, err error, skip func(field string) bool) {
	if err == nil {
		return
	}
	vs, ok := violationsOf(err)
	if !ok {
		v.Add(prefix, "%v", status.Convert(err).Message())
		return
	}
	for _, x := range vs {
		if skip != nil && skip(x.Field) {
			continue
		}
		*v = append(*v, apierr.Violation{Field: prefix + "." + x.Field, Description: x.Description})
	}
}

// bpObjects are the objects of one instantiation of a blueprint.
type bpObjects struct {
	volumes []*atollv1.Volume
	varSets []*atollv1.VariableSet
	files   []*atollv1.File
	apps    []*atollv1.App
}

// buildObjects substitutes vars into the blueprint's templates and validates
// every object exactly like the individual create APIs, with the mounts of
// the apps resolved against the blueprint's own objects. Ids are assigned
// (env.Id, env.OrgId set) when assignIDs. Violations of fields that use a
// variable of noValue (may be nil) are dropped: when a blueprint is created,
// a variable without a default has no value to check yet.
func (s *Services) buildObjects(v *apierr.Violations, bp *atollv1.Blueprint, vars map[string]string, env *atollv1.Environment, assignIDs bool, noValue map[string]bool) *bpObjects {
	out := &bpObjects{}
	undeclared := func(prefix string) func(field, name string) {
		return func(field, name string) {
			v.Add(prefix+"."+field, "uses ${%s}, which is not a variable of the blueprint (declare it in variables)", truncate(name, 60))
		}
	}
	var tmpl []string // fields filled from a variable without a value
	mark := func(prefix string) func(string, string) {
		return func(field, name string) {
			if noValue[name] {
				tmpl = append(tmpl, prefix+"."+field)
			}
		}
	}
	// A secret variable may only fill variable set values, which are then
	// stored sealed and shown masked whatever the template says; anywhere
	// else (an app's args, a file, a label) its value would be in the clear.
	secretVar := map[string]bool{}
	for _, bv := range bp.Variables {
		if bv.GetSecret() {
			secretVar[bv.Name] = true
		}
	}
	var sealKeys map[string]bool // of the variable set being built
	use := func(prefix string) func(string, string) {
		m := mark(prefix)
		return func(field, name string) {
			m(field, name)
			if !secretVar[name] {
				return
			}
			if strings.HasPrefix(prefix, "variableSets[") && strings.HasPrefix(field, "variables.") && strings.HasSuffix(field, ".value") {
				sealKeys[strings.TrimSuffix(strings.TrimPrefix(field, "variables."), ".value")] = true
				return
			}
			v.Add(prefix+"."+field, "uses secret variable ${%s}: secret variables may only be used in variable set values (stored sealed); put it in a variable set and reference that from the app", name)
		}
	}
	skipFor := func(prefix string) func(string) bool {
		return func(field string) bool {
			// The field, a field in it (command.stringValue for command)
			// or its parent (resourceRequests for resourceRequests.cpu).
			f := prefix + "." + field
			for _, t := range tmpl {
				if t == f || under(t, f) || under(f, t) {
					return true
				}
			}
			return false
		}
	}
	id := func(prefix string) string {
		if assignIDs {
			return NewID(prefix)
		}
		return ""
	}
	names := func(kind string) func(field, name string) {
		seen := map[string]bool{}
		return func(field, name string) {
			if name != "" && seen[name] {
				v.Add(field, "%s name %q is used twice in the blueprint", kind, truncate(name, 60))
			}
			seen[name] = true
		}
	}
	for _, kind := range []struct {
		n int
		f string
	}{{len(bp.Volumes), "volumes"}, {len(bp.VariableSets), "variableSets"}, {len(bp.Files), "files"}, {len(bp.Apps), "apps"}} {
		if kind.n > MaxBlueprintObjects {
			v.Add(kind.f, "at most %d", MaxBlueprintObjects)
			return out
		}
	}
	seenVol := names("volume")
	for i, t := range bp.Volumes {
		p := fmt.Sprintf("volumes[%d]", i)
		in := instantiate(t, vars, undeclared(p), use(p))
		var vv apierr.Violations
		vol := buildVolume(&vv, "", in, env, id("vol"))
		addErr(v, p, vv.Err(), skipFor(p))
		seenVol(p+".name", in.GetName())
		out.volumes = append(out.volumes, vol)
	}
	seenVS := names("variable set")
	for i, t := range bp.VariableSets {
		p := fmt.Sprintf("variableSets[%d]", i)
		sealKeys = map[string]bool{}
		in := instantiate(t, vars, undeclared(p), use(p))
		for k := range sealKeys {
			if x := in.GetVariables()[k]; x != nil {
				x.Secret = true
			}
		}
		var vv apierr.Violations
		checkVariableSet(&vv, "", in)
		addErr(v, p, vv.Err(), skipFor(p))
		seenVS(p+".name", in.GetName())
		vars := in.GetVariables()
		if assignIDs { // instantiated for an environment: secrets enter the log sealed
			sealed, err := s.seal(vars, true)
			if err != nil {
				v.Add(p, "%v", err)
			}
			vars = sealed
		}
		out.varSets = append(out.varSets, &atollv1.VariableSet{Id: id("vset"), EnvId: env.GetId(), OrgId: env.GetOrgId(), Name: in.GetName(), Variables: vars})
	}
	seenFile := names("file")
	for i, t := range bp.Files {
		p := fmt.Sprintf("files[%d]", i)
		in := instantiate(t, vars, undeclared(p), use(p))
		var vv apierr.Violations
		f := buildFile(&vv, "", in, env, id("file"))
		addErr(v, p, vv.Err(), skipFor(p))
		seenFile(p+".name", in.GetName())
		out.files = append(out.files, f)
	}
	seenApp := names("app")
	for i, t := range bp.Apps {
		p := fmt.Sprintf("apps[%d]", i)
		app := instantiate(t, vars, undeclared(p), use(p))
		addErr(v, p, s.normalizeAppWith(env, app, out.volumes, out.varSets, out.files), skipFor(p))
		seenApp(p+".name", app.GetName())
		app.Id, app.EnvIdRef, app.OrgId, app.Status = id("app"), env.GetId(), env.GetOrgId(), nil
		app.IsDeleted, app.Version = false, 0
		if app.IsActive == nil {
			t := true
			app.IsActive = &t
		}
		out.apps = append(out.apps, app)
	}
	return out
}

// under reports whether field path a is inside path b.
func under(a, b string) bool {
	return strings.HasPrefix(a, b) && len(a) > len(b) && (a[len(b)] == '.' || a[len(b)] == '[')
}

// checkBlueprintVars validates the declared variables; it returns the values
// used to check the templates (the defaults, "x" for the others) and the
// names without a default.
func checkBlueprintVars(v *apierr.Violations, vars []*atollv1.BlueprintVariable) (map[string]string, map[string]bool) {
	out, noValue := map[string]string{}, map[string]bool{}
	if len(vars) > MaxVariables {
		v.Add("variables", "at most %d variables", MaxVariables)
		return out, noValue
	}
	for i, bv := range vars {
		f := fmt.Sprintf("variables[%d]", i)
		switch {
		case bv == nil || bv.Name == "":
			v.Add(f+".name", "is required")
			continue
		case !bpVarNamePattern.MatchString(bv.Name):
			v.Add(f+".name", "%q must be letters, digits and '_', not starting with a digit (it is used as ${name})", truncate(bv.Name, 60))
		}
		if _, dup := out[bv.Name]; dup {
			v.Add(f+".name", "variable %q is declared twice", bv.Name)
		}
		checkDescription(v, f+".description", bv.Description)
		if len(bv.Default) > MaxVariableValue || !utf8.ValidString(bv.Default) {
			v.Add(f+".default", "must be valid UTF-8 of at most %d bytes", MaxVariableValue)
		}
		if bv.Secret && bv.Default != "" {
			v.Add(f+".default", "a secret variable cannot have a default: the blueprint would hold it in the clear; give its value when creating an environment")
		}
		if bv.Default != "" {
			out[bv.Name] = bv.Default
		} else {
			out[bv.Name], noValue[bv.Name] = "x", true
		}
	}
	return out, noValue
}

// prefixed moves violations under a field prefix.
func prefixed(prefix string, vs apierr.Violations) apierr.Violations {
	out := make(apierr.Violations, 0, len(vs))
	for _, x := range vs {
		out = append(out, apierr.Violation{Field: prefix + "." + x.Field, Description: x.Description})
	}
	return out
}

func (s *blueprintService) CreateBlueprint(ctx context.Context, req *atollv1.CreateBlueprintRequest) (*atollv1.Blueprint, error) {
	in := req.GetBlueprint()
	if in == nil {
		return nil, apierr.InvalidField("blueprint", "is required")
	}
	bp := proto.Clone(in).(*atollv1.Blueprint)
	orgID := orgOf(ctx)
	var v apierr.Violations
	checkName(&v, "blueprint.name", bp.Name)
	checkDescription(&v, "blueprint.description", bp.Description)
	var inner apierr.Violations
	dummy, noValue := checkBlueprintVars(&inner, bp.Variables)
	if bp.DefaultTtl != "" {
		checkTTL(&inner, "defaultTtl", bp.DefaultTtl, s.opts.MaxTTL)
	}
	if q := bp.ResourceQuota; q != nil && (q.Cpu < 0 || q.Memory < 0 || q.Storage < 0) {
		inner.Add("resourceQuota", "must be positive (cpu in millicores, memory and storage in MB; 0 means the default)")
	}
	tx := s.snap()
	// Templates are checked with placeholder values: a field filled from a
	// variable without a default is only checked once the value is known.
	s.buildObjects(&inner, bp, dummy, &atollv1.Environment{Id: "env_template", OrgId: orgID, Slug: "template"}, false, noValue)
	for i, vs := range bp.VariableSets {
		checkNotSealed(&inner, fmt.Sprintf("variableSets[%d].variables.", i), vs.GetVariables())
	}
	v = append(v, prefixed("blueprint", inner)...)
	if err := v.Err(); err != nil {
		return nil, err
	}
	// Literal secret values are stored sealed in the blueprint too; one
	// filled from variables is sealed when an environment is made from it.
	for _, vs := range bp.VariableSets {
		for _, x := range vs.GetVariables() {
			if x.GetSecret() && !strings.Contains(x.GetValue(), "${") && s.opts.Secrets != nil {
				sealed, err := s.opts.Secrets.Seal(x.Value)
				if err != nil {
					return nil, apierr.Unavailable("cannot encrypt secret values on this server: %v", err)
				}
				x.Value = sealed
			}
		}
	}
	if findBlueprintByName(tx, orgID, bp.Name) != nil {
		return nil, apierr.AlreadyExists("blueprint", "name", bp.Name, "the organization")
	}
	bp.Id, bp.OrgId = NewID("bp"), orgID
	bp.CreatedBy, bp.CreatedAt, bp.CreateIndex, bp.ModifyIndex = "", nil, 0, 0
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_CreateBlueprint{CreateBlueprint: &atollv1.CreateBlueprintCmd{Blueprint: bp}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return maskBlueprint(out.(*atollv1.Blueprint)), nil
}

// maskBlueprint hides the values of secret variables of its variable sets,
// as the VariableSet API does.
func maskBlueprint(b *atollv1.Blueprint) *atollv1.Blueprint {
	out := proto.Clone(b).(*atollv1.Blueprint)
	for i, vs := range out.VariableSets {
		out.VariableSets[i] = maskSecrets(vs)
	}
	return out
}

func findBlueprintByName(tx *state.Txn, orgID, name string) *atollv1.Blueprint {
	for _, b := range tx.Blueprints(orgID) {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// findBlueprint finds a blueprint of the caller's organization by id or by
// name ("bp_<name>" also finds a blueprint named <name>, as in the examples
// of other platforms). Another organization's is NOT_FOUND.
func (s *Services) findBlueprint(ctx context.Context, tx *state.Txn, field, ref string) (*atollv1.Blueprint, error) {
	if ref == "" {
		return nil, apierr.InvalidField(field, "is required (the blueprint's id or name)")
	}
	orgID := orgOf(ctx)
	if b := tx.Blueprint(ref); b != nil && b.OrgId == orgID {
		return b, nil
	}
	if b := findBlueprintByName(tx, orgID, ref); b != nil {
		return b, nil
	}
	if name, ok := strings.CutPrefix(ref, "bp_"); ok {
		if b := findBlueprintByName(tx, orgID, name); b != nil {
			return b, nil
		}
	}
	return nil, apierr.NotFound("blueprint", truncate(ref, 80))
}

func (s *blueprintService) GetBlueprint(ctx context.Context, req *atollv1.GetBlueprintRequest) (*atollv1.Blueprint, error) {
	b, err := s.findBlueprint(ctx, s.snap(), "blueprintId", req.BlueprintId)
	if err != nil {
		return nil, err
	}
	return maskBlueprint(b), nil
}

func (s *blueprintService) ListBlueprints(ctx context.Context, _ *atollv1.ListBlueprintsRequest) (*atollv1.ListBlueprintsResponse, error) {
	bps := s.snap().Blueprints(orgOf(ctx))
	sort.SliceStable(bps, func(i, j int) bool { return bps[i].CreateIndex < bps[j].CreateIndex })
	resp := &atollv1.ListBlueprintsResponse{TotalCount: int32(len(bps))}
	for _, b := range bps {
		resp.Blueprints = append(resp.Blueprints, maskBlueprint(b))
	}
	return resp, nil
}

func (s *blueprintService) DeleteBlueprint(ctx context.Context, req *atollv1.DeleteBlueprintRequest) (*emptypb.Empty, error) {
	b, err := s.findBlueprint(ctx, s.snap(), "blueprintId", req.BlueprintId)
	if err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_DeleteBlueprint{DeleteBlueprint: &atollv1.DeleteBlueprintCmd{BlueprintId: b.Id}}
	if _, err := s.apply(ctx, cmd); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// blueprintVars checks the variables given for a blueprint and returns the
// value of every declared variable (given, else the default, else "").
func blueprintVars(bp *atollv1.Blueprint, given map[string]string) (map[string]string, error) {
	var v apierr.Violations
	declared := map[string]*atollv1.BlueprintVariable{}
	for _, bv := range bp.Variables {
		declared[bv.Name] = bv
	}
	keys := make([]string, 0, len(given))
	for k := range given {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if declared[k] == nil {
			names := make([]string, 0, len(bp.Variables))
			for _, bv := range bp.Variables {
				names = append(names, bv.Name)
			}
			v.Add("variables."+truncate(k, 40), "blueprint %s has no variable %q (its variables: %s)", bp.Name, truncate(k, 40), strings.Join(names, ", "))
		}
	}
	out := map[string]string{}
	for _, bv := range bp.Variables {
		val, ok := given[bv.Name]
		if !ok {
			val = bv.Default
			if bv.Required && val == "" {
				desc := ""
				if bv.Description != "" {
					desc = " (" + truncate(bv.Description, 80) + ")"
				}
				v.Add("variables."+bv.Name, "is required by blueprint %s%s", bp.Name, desc)
			}
		}
		checkNotSealedValue(&v, "variables."+bv.Name, val)
		out[bv.Name] = val
	}
	return out, v.Err()
}

// maskSecretVars is what an environment records of its blueprint variables:
// secret ones masked (their values live only in the sealed objects).
func maskSecretVars(bp *atollv1.Blueprint, vars map[string]string) map[string]string {
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		out[k] = v
	}
	for _, bv := range bp.Variables {
		if _, ok := out[bv.Name]; ok && bv.Secret {
			out[bv.Name] = SecretMask
		}
	}
	return out
}
