package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/keyring"
	"github.com/atollhq/atoll/controlplane/quota"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// MaxFileBytes is the largest file content accepted.
const MaxFileBytes = fsm.MaxFileBytes

// SecretMask replaces secret values in responses.
const SecretMask = "********"

var objectNamePattern = slugPattern

func checkObjectName(v *apierr.Violations, field, name string) {
	if name == "" {
		v.Add(field, "is required")
	} else if !objectNamePattern.MatchString(strings.ToLower(name)) && !fileNameOK(name) {
		v.Add(field, "must be 1-63 characters of letters, digits, '.', '_' and '-'")
	}
}

func fileNameOK(n string) bool {
	if len(n) > 63 || n == "." || n == ".." {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return false
		}
	}
	return true
}

// ---- volumes

type volumeService struct {
	*Services
	atollv1.UnimplementedVolumeServiceServer
}

func (s *volumeService) CreateVolume(ctx context.Context, req *atollv1.CreateVolumeRequest) (*atollv1.Volume, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", req.EnvId)
	if err != nil {
		return nil, err
	}
	var v apierr.Violations
	vol := buildVolume(&v, "volume.", req.GetVolume(), env, NewID("vol"))
	if err := v.Err(); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_CreateVolume{CreateVolume: &atollv1.CreateVolumeCmd{Volume: vol}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return out.(*atollv1.Volume), nil
}

// byRef finds the object whose id or name is ref.
func byRef[T interface {
	GetId() string
	GetName() string
}](objs []T, ref string) (T, bool) {
	for _, o := range objs {
		if o.GetId() == ref || o.GetName() == ref {
			return o, true
		}
	}
	var zero T
	return zero, false
}

func (s *Services) volumeRef(ctx context.Context, envID, ref string) (*atollv1.Volume, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", envID)
	if err != nil {
		return nil, err
	}
	v, ok := byRef(tx.Volumes(env.Id), ref)
	if !ok {
		return nil, apierr.NotFound("volume", ref)
	}
	out := proto.Clone(v).(*atollv1.Volume)
	out.MountedBy = fsm.VolumeUsers(tx, v)
	return out, nil
}

func (s *volumeService) GetVolume(ctx context.Context, req *atollv1.GetVolumeRequest) (*atollv1.Volume, error) {
	return s.volumeRef(ctx, req.EnvId, req.VolumeId)
}

func (s *volumeService) ListVolumes(ctx context.Context, req *atollv1.ListVolumesRequest) (*atollv1.ListVolumesResponse, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", req.EnvId)
	if err != nil {
		return nil, err
	}
	resp := &atollv1.ListVolumesResponse{}
	for _, v := range tx.Volumes(env.Id) {
		out := proto.Clone(v).(*atollv1.Volume)
		out.MountedBy = fsm.VolumeUsers(tx, v)
		resp.Volumes = append(resp.Volumes, out)
	}
	sort.Slice(resp.Volumes, func(i, j int) bool { return resp.Volumes[i].CreateIndex < resp.Volumes[j].CreateIndex })
	resp.TotalCount = int32(len(resp.Volumes))
	return resp, nil
}

func (s *volumeService) DeleteVolume(ctx context.Context, req *atollv1.DeleteVolumeRequest) (*emptypb.Empty, error) {
	vol, err := s.volumeRef(ctx, req.EnvId, req.VolumeId)
	if err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_DeleteVolume{DeleteVolume: &atollv1.DeleteVolumeCmd{VolumeId: vol.Id}}
	if _, err := s.apply(ctx, cmd); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ---- variable sets

type varSetService struct {
	*Services
	atollv1.UnimplementedVariableSetServiceServer
}

// maskSecrets hides the values of secret variables.
func maskSecrets(vs *atollv1.VariableSet) *atollv1.VariableSet {
	out := proto.Clone(vs).(*atollv1.VariableSet)
	out.Version = fsm.VarSetVersion(vs)
	for _, v := range out.Variables {
		if v.Secret {
			v.Value = SecretMask
		}
	}
	return out
}

func (s *varSetService) CreateVariableSet(ctx context.Context, req *atollv1.CreateVariableSetRequest) (*atollv1.VariableSet, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", req.EnvId)
	if err != nil {
		return nil, err
	}
	in := req.GetVariableSet()
	var v apierr.Violations
	checkVariableSet(&v, "variableSet.", in)
	checkNotSealed(&v, "variableSet.variables.", in.GetVariables())
	if err := v.Err(); err != nil {
		return nil, err
	}
	vars, err := s.sealVariables(in.GetVariables())
	if err != nil {
		return nil, err
	}
	vs := &atollv1.VariableSet{Id: NewID("vset"), EnvId: env.Id, OrgId: env.OrgId, Name: in.GetName(), Variables: vars}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_CreateVariableSet{CreateVariableSet: &atollv1.CreateVariableSetCmd{VariableSet: vs}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return maskSecrets(out.(*atollv1.VariableSet)), nil
}

func (s *Services) varSetRef(ctx context.Context, envID, ref string) (*atollv1.VariableSet, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", envID)
	if err != nil {
		return nil, err
	}
	v, ok := byRef(tx.VariableSets(env.Id), ref)
	if !ok {
		return nil, apierr.NotFound("variable set", ref)
	}
	out := maskSecrets(v)
	out.MountedBy = fsm.VariableSetUsers(tx, v)
	return out, nil
}

func (s *varSetService) GetVariableSet(ctx context.Context, req *atollv1.GetVariableSetRequest) (*atollv1.VariableSet, error) {
	return s.varSetRef(ctx, req.EnvId, req.VariableSetId)
}

func (s *varSetService) ListVariableSets(ctx context.Context, req *atollv1.ListVariableSetsRequest) (*atollv1.ListVariableSetsResponse, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", req.EnvId)
	if err != nil {
		return nil, err
	}
	resp := &atollv1.ListVariableSetsResponse{}
	for _, v := range tx.VariableSets(env.Id) {
		out := maskSecrets(v)
		out.MountedBy = fsm.VariableSetUsers(tx, v)
		resp.VariableSets = append(resp.VariableSets, out)
	}
	sort.Slice(resp.VariableSets, func(i, j int) bool { return resp.VariableSets[i].CreateIndex < resp.VariableSets[j].CreateIndex })
	resp.TotalCount = int32(len(resp.VariableSets))
	return resp, nil
}

func (s *varSetService) DeleteVariableSet(ctx context.Context, req *atollv1.DeleteVariableSetRequest) (*emptypb.Empty, error) {
	vs, err := s.varSetRef(ctx, req.EnvId, req.VariableSetId)
	if err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_DeleteVariableSet{DeleteVariableSet: &atollv1.DeleteVariableSetCmd{VariableSetId: vs.Id}}
	if _, err := s.apply(ctx, cmd); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// buildVolume validates a requested volume (field names start with prefix)
// and returns it for env with the given id.
func buildVolume(v *apierr.Violations, prefix string, in *atollv1.Volume, env *atollv1.Environment, id string) *atollv1.Volume {
	checkObjectName(v, prefix+"name", in.GetName())
	size := int64(in.GetSizeMb())
	if in.GetSize() != "" {
		mb, err := quota.ParseMB(in.GetSize())
		switch {
		case err != nil:
			v.Add(prefix+"size", "%v", err)
		case in.GetSizeMb() != 0 && int64(in.GetSizeMb()) != mb:
			// Either could be meant: refuse rather than pick one. Equal
			// values (a volume read back and sent again) are fine.
			v.Add(prefix+"sizeMb", "give either size or sizeMb, not both: size %q is %d MB but sizeMb is %d", truncate(in.GetSize(), 40), mb, in.GetSizeMb())
		}
		size = mb
	}
	if size <= 0 {
		v.Add(prefix+"sizeMb", "must be greater than 0 (or give size, e.g. \"1Gi\")")
	}
	return &atollv1.Volume{Id: id, EnvId: env.GetId(), OrgId: env.GetOrgId(), Name: in.GetName(), SizeMb: int32(size)}
}

// buildFile validates a requested file (content, or text) and returns it
// for env with the given id, its size and hash filled.
func buildFile(v *apierr.Violations, prefix string, in *atollv1.File, env *atollv1.Environment, id string) *atollv1.File {
	checkObjectName(v, prefix+"name", in.GetName())
	content := in.GetContent()
	if in.GetText() != "" {
		if len(content) > 0 {
			v.Add(prefix+"text", "give either content (base64) or text, not both")
		}
		content = []byte(in.GetText())
	}
	if len(content) > MaxFileBytes {
		v.Add(prefix+"content", "at most 1 MiB, got %d bytes", len(content))
	}
	sum := sha256.Sum256(content)
	return &atollv1.File{Id: id, EnvId: env.GetId(), OrgId: env.GetOrgId(), Name: in.GetName(), Content: content,
		SizeBytes: int32(len(content)), Sha256: hex.EncodeToString(sum[:])}
}

// checkVariableSet validates a variable set's name and variables; field
// names start with prefix ("variableSet." or "").
func checkVariableSet(v *apierr.Violations, prefix string, in *atollv1.VariableSet) {
	checkObjectName(v, prefix+"name", in.GetName())
	if len(in.GetVariables()) > MaxVariables {
		v.Add(prefix+"variables", "at most %d variables", MaxVariables)
	}
	checkVariableEntries(v, prefix+"variables.", in.GetVariables())
}

// checkVariableEntries validates variable names and values; field names
// are prefix + the name.
func checkVariableEntries(v *apierr.Violations, prefix string, vars map[string]*atollv1.Variable) {
	for k, val := range vars {
		if !envVarPattern.MatchString(k) {
			v.Add(prefix+truncate(k, 40), "must be an environment variable name: letters, digits and '_', not starting with a digit")
		}
		if val == nil || len(val.Value) > MaxVariableValue || !utf8.ValidString(val.GetValue()) || strings.ContainsRune(val.GetValue(), 0) {
			v.Add(prefix+truncate(k, 40), "value must be valid UTF-8 without NUL, at most %d bytes", MaxVariableValue)
		}
	}
}

// checkNotSealed refuses values that look sealed: only the server seals,
// so a value given with the sealed prefix could only be a ciphertext copied
// from elsewhere, which the agent would decrypt into the container.
func checkNotSealed(v *apierr.Violations, prefix string, vars map[string]*atollv1.Variable) {
	for k, val := range vars {
		checkNotSealedValue(v, prefix+truncate(k, 40), val.GetValue())
	}
}

func checkNotSealedValue(v *apierr.Violations, field, value string) {
	if strings.HasPrefix(value, keyring.Prefix) {
		v.Add(field, "values starting with %q are reserved for values the server encrypted", keyring.Prefix)
	}
}

// sealVariables copies variables, encrypting the secret values.
func (s *Services) sealVariables(in map[string]*atollv1.Variable) (map[string]*atollv1.Variable, error) {
	return s.seal(in, false)
}

// seal copies variables, encrypting the secret values; keepSealed leaves
// values the server sealed before (a blueprint's literal secrets) as they are.
func (s *Services) seal(in map[string]*atollv1.Variable, keepSealed bool) (map[string]*atollv1.Variable, error) {
	vars := make(map[string]*atollv1.Variable, len(in))
	for k, val := range in {
		cp := &atollv1.Variable{Value: val.GetValue(), Secret: val.GetSecret()}
		if keepSealed && strings.HasPrefix(cp.Value, keyring.Prefix) {
			vars[k] = cp
			continue
		}
		if cp.Secret && s.opts.Secrets != nil {
			sealed, err := s.opts.Secrets.Seal(cp.Value)
			if err != nil {
				return nil, apierr.Unavailable("cannot encrypt secret values on this server: %v", err)
			}
			cp.Value = sealed
		}
		vars[k] = cp
	}
	return vars, nil
}

// ---- files

type fileService struct {
	*Services
	atollv1.UnimplementedFileServiceServer
}

func (s *fileService) CreateFile(ctx context.Context, req *atollv1.CreateFileRequest) (*atollv1.File, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", req.EnvId)
	if err != nil {
		return nil, err
	}
	var v apierr.Violations
	f := buildFile(&v, "file.", req.GetFile(), env, NewID("file"))
	if err := v.Err(); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_CreateFile{CreateFile: &atollv1.CreateFileCmd{File: f}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return out.(*atollv1.File), nil
}

func (s *Services) fileRef(ctx context.Context, envID, ref string, withContent bool) (*atollv1.File, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", envID)
	if err != nil {
		return nil, err
	}
	f, ok := byRef(tx.Files(env.Id), ref)
	if !ok {
		return nil, apierr.NotFound("file", ref)
	}
	out := proto.Clone(f).(*atollv1.File)
	out.Version = fsm.FileVersion(f)
	out.MountedBy = fsm.FileUsers(tx, f)
	if !withContent {
		out.Content = nil
	}
	return out, nil
}

func (s *fileService) GetFile(ctx context.Context, req *atollv1.GetFileRequest) (*atollv1.File, error) {
	return s.fileRef(ctx, req.EnvId, req.FileId, true)
}

func (s *fileService) ListFiles(ctx context.Context, req *atollv1.ListFilesRequest) (*atollv1.ListFilesResponse, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", req.EnvId)
	if err != nil {
		return nil, err
	}
	resp := &atollv1.ListFilesResponse{}
	for _, f := range tx.Files(env.Id) {
		out := proto.Clone(f).(*atollv1.File)
		out.Version = fsm.FileVersion(f)
		out.Content = nil
		out.MountedBy = fsm.FileUsers(tx, f)
		resp.Files = append(resp.Files, out)
	}
	sort.Slice(resp.Files, func(i, j int) bool { return resp.Files[i].CreateIndex < resp.Files[j].CreateIndex })
	resp.TotalCount = int32(len(resp.Files))
	return resp, nil
}

func (s *fileService) DeleteFile(ctx context.Context, req *atollv1.DeleteFileRequest) (*emptypb.Empty, error) {
	f, err := s.fileRef(ctx, req.EnvId, req.FileId, false)
	if err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_DeleteFile{DeleteFile: &atollv1.DeleteFileCmd{FileId: f.Id}}
	if _, err := s.apply(ctx, cmd); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ---- updates: a new version of a set or file; the apps mounting it roll

// varSetUpdateFields are the update mask paths UpdateVariableSet takes.
var varSetUpdateFields = map[string]string{"variables": "variables", "set": "set", "remove": "remove"}

func (s *varSetService) UpdateVariableSet(ctx context.Context, req *atollv1.UpdateVariableSetRequest) (*atollv1.VariableSet, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", req.EnvId)
	if err != nil {
		return nil, err
	}
	cur, ok := byRef(tx.VariableSets(env.Id), req.VariableSetId)
	if !ok {
		return nil, apierr.NotFound("variable set", req.VariableSetId)
	}
	var v apierr.Violations
	use := map[string]bool{}
	for _, p := range req.GetUpdateMask().GetPaths() {
		f, ok := varSetUpdateFields[p]
		if !ok {
			v.Add("updateMask", "field %q cannot be updated; updatable: variables (the whole map), set, remove", p)
			continue
		}
		use[f] = true
	}
	if len(req.GetUpdateMask().GetPaths()) == 0 {
		// No mask: the fields given.
		use["variables"], use["set"], use["remove"] = len(req.Variables) > 0, len(req.Set) > 0, len(req.Remove) > 0
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	replace := use["variables"]
	switch {
	case !use["variables"] && !use["set"] && !use["remove"]:
		return nil, apierr.InvalidField("updateMask", "nothing to change: give variables (the whole new map), or set and/or remove")
	case replace && (use["set"] || use["remove"]):
		v.Add("variables", "give either variables (the whole new map) or set and remove (single keys), not both")
	}
	if req.ExpectedVersion < 0 {
		v.Add("expectedVersion", "must be >= 0")
	}
	var in map[string]*atollv1.Variable
	size := len(cur.Variables)
	if replace {
		in = req.Variables
		checkUpdateVariables(&v, "variables.", in)
		size = len(in)
	} else {
		if use["set"] {
			in = req.Set
			checkUpdateVariables(&v, "set.", in)
			for k := range in {
				if _, ok := cur.Variables[k]; !ok {
					size++
				}
			}
		}
		if use["remove"] {
			for i, k := range req.Remove {
				field := fmt.Sprintf("remove[%d]", i)
				switch _, set := in[k]; {
				case !envVarPattern.MatchString(k):
					v.Add(field, "must be an environment variable name: letters, digits and '_', not starting with a digit")
				case set:
					v.Add(field, "%q is also in set: give a key in one of them", truncate(k, 40))
				case cur.Variables[k] == nil:
					v.Add(field, "variable set %q has no variable %q", cur.Name, truncate(k, 40))
				default:
					size--
				}
			}
		}
	}
	if size > MaxVariables {
		field := "set"
		if replace {
			field = "variables"
		}
		v.Add(field, "at most %d variables (the set would have %d)", MaxVariables, size)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	vars, err := s.sealUpdate(cur.Variables, in)
	if err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	c := &atollv1.UpdateVariableSetCmd{VariableSetId: cur.Id, Variables: vars, Replace: replace, ExpectedVersion: req.ExpectedVersion}
	if use["remove"] && !replace {
		c.Remove = req.Remove
	}
	cmd.Cmd = &atollv1.Command_UpdateVariableSet{UpdateVariableSet: c}
	res, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	out := maskSecrets(res.(*atollv1.VariableSet))
	out.MountedBy = fsm.VariableSetUsers(s.snap(), out)
	return out, nil
}

// checkUpdateVariables validates variable names and values (field names start
// with prefix) and refuses values that look sealed.
func checkUpdateVariables(v *apierr.Violations, prefix string, vars map[string]*atollv1.Variable) {
	checkVariableEntries(v, prefix, vars)
	checkNotSealed(v, prefix, vars)
}

// sealUpdate seals the secret values of an update. A value equal to the
// current one (the same plaintext of a secret) keeps its current sealed
// form, so the FSM sees no change and nothing rolls.
func (s *Services) sealUpdate(cur, in map[string]*atollv1.Variable) (map[string]*atollv1.Variable, error) {
	out := make(map[string]*atollv1.Variable, len(in))
	var fresh map[string]*atollv1.Variable
	for k, val := range in {
		if old := cur[k]; old != nil && old.Secret == val.GetSecret() && s.plainValue(old) == val.GetValue() {
			out[k] = &atollv1.Variable{Value: old.Value, Secret: old.Secret}
			continue
		}
		if fresh == nil {
			fresh = map[string]*atollv1.Variable{}
		}
		fresh[k] = val
	}
	sealed, err := s.sealVariables(fresh)
	if err != nil {
		return nil, err
	}
	for k, val := range sealed {
		out[k] = val
	}
	return out, nil
}

// plainValue is a stored variable's value in clear ("\x00" when a secret
// cannot be opened here: it then never equals a given value).
func (s *Services) plainValue(v *atollv1.Variable) string {
	if !v.Secret || !strings.HasPrefix(v.Value, keyring.Prefix) {
		return v.Value
	}
	if s.opts.Secrets != nil {
		if plain, err := s.opts.Secrets.Open(v.Value); err == nil {
			return plain
		}
	}
	return "\x00"
}

func (s *fileService) UpdateFile(ctx context.Context, req *atollv1.UpdateFileRequest) (*atollv1.File, error) {
	tx := s.snap()
	env, err := s.liveEnvOf(ctx, tx, "envId", req.EnvId)
	if err != nil {
		return nil, err
	}
	cur, ok := byRef(tx.Files(env.Id), req.FileId)
	if !ok {
		return nil, apierr.NotFound("file", req.FileId)
	}
	var v apierr.Violations
	content := req.Content
	switch {
	case req.Text != "" && len(content) > 0:
		v.Add("text", "give either content (base64) or text, not both")
	case req.Text != "":
		content = []byte(req.Text)
	case len(content) == 0:
		v.Add("content", "is required: the new content (base64), or give text")
	}
	if len(content) > MaxFileBytes {
		v.Add("content", "at most 1 MiB, got %d bytes", len(content))
	}
	if req.ExpectedVersion < 0 {
		v.Add("expectedVersion", "must be >= 0")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_UpdateFile{UpdateFile: &atollv1.UpdateFileCmd{FileId: cur.Id, Content: content, ExpectedVersion: req.ExpectedVersion}}
	res, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	out := proto.Clone(res.(*atollv1.File)).(*atollv1.File)
	out.MountedBy = fsm.FileUsers(s.snap(), out)
	return out, nil
}
