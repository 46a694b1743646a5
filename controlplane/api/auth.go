// Package api implements the control plane's gRPC services, their
// authentication and authorization, and the REST/JSON gateway in front of
// them. Handlers validate, decide ids and times, and propose one command;
// the state machine does the checks that must be atomic (uniqueness, quota).
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// TokenPrefix starts every API token.
const TokenPrefix = "atl_"

// Permissions. "*" grants all; "env:*" all env permissions.
const (
	PermEnvRead      = "env:read"
	PermEnvWrite     = "env:write"
	PermProjectRead  = "project:read"
	PermProjectWrite = "project:write"
	PermOrgRead      = "org:read"
	PermOrgAdmin     = "org:admin"
	PermTokenAdmin   = "token:admin"
	PermClusterAdmin = "cluster:admin"
	PermAppRead      = "app:read"
	PermAppWrite     = "app:write"
	PermNodeRead     = "node:read"
	PermNodeWrite    = "node:write"
	// PermNodeAgent lets an agent join and hold a session (`atoll token create --join-agent`).
	PermNodeAgent = "node:agent"
)

// KnownScopes are the scopes a token may carry.
var KnownScopes = []string{"*", PermEnvRead, PermEnvWrite, "env:*", PermProjectRead, PermProjectWrite, "project:*",
	PermOrgRead, PermOrgAdmin, "org:*", PermTokenAdmin, "token:*", PermClusterAdmin, "cluster:*",
	"app:read", "app:write", "app:*", "node:read", "node:write", "node:agent", "node:*"}

// methodPermissions maps each RPC to the permission it needs. An RPC missing
// here is refused: new methods are closed until someone decides.
var methodPermissions = map[string]string{
	"/atoll.v1.EnvironmentService/CreateEnvironment":         PermEnvWrite,
	"/atoll.v1.EnvironmentService/GetEnvironment":            PermEnvRead,
	"/atoll.v1.EnvironmentService/ListEnvironments":          PermEnvRead,
	"/atoll.v1.EnvironmentService/UpdateEnvironment":         PermEnvWrite,
	"/atoll.v1.EnvironmentService/DeleteEnvironment":         PermEnvWrite,
	"/atoll.v1.EnvironmentService/RestoreEnvironment":        PermEnvWrite,
	"/atoll.v1.EnvironmentService/GetEnvironmentHistory":     PermEnvRead,
	"/atoll.v1.EnvironmentService/GetResourceUsage":          PermEnvRead,
	"/atoll.v1.EnvironmentService/StartEnvironment":          PermEnvWrite,
	"/atoll.v1.EnvironmentService/StopEnvironment":           PermEnvWrite,
	"/atoll.v1.EnvironmentService/WatchEnvironment":          PermEnvRead,
	"/atoll.v1.EnvironmentService/ExtendEnvironment":         PermEnvWrite,
	"/atoll.v1.EnvironmentService/CheckEnvironmentHealth":    PermEnvRead,
	"/atoll.v1.EnvironmentService/ReconcileEnvironment":      PermEnvWrite,
	"/atoll.v1.EnvironmentService/CleanupFailedEnvironments": PermEnvWrite,
	"/atoll.v1.ProjectService/CreateProject":                 PermProjectWrite,
	"/atoll.v1.ProjectService/GetProject":                    PermProjectRead,
	"/atoll.v1.ProjectService/ListProjects":                  PermProjectRead,
	"/atoll.v1.ProjectService/UpdateProject":                 PermProjectWrite,
	"/atoll.v1.ProjectService/DeleteProject":                 PermProjectWrite,
	"/atoll.v1.OrganizationService/GetOrganization":          PermOrgRead,
	"/atoll.v1.OrganizationService/UpdateOrganization":       PermOrgAdmin,
	"/atoll.v1.OrganizationService/CreateOrganization":       PermClusterAdmin,
	"/atoll.v1.TokenService/CreateToken":                     PermTokenAdmin,
	"/atoll.v1.TokenService/ListTokens":                      PermTokenAdmin,
	"/atoll.v1.TokenService/RevokeToken":                     PermTokenAdmin,
	"/atoll.v1.TokenService/WhoAmI":                          "",
	"/atoll.v1.OperatorService/ListRaftPeers":                PermClusterAdmin,
	"/atoll.v1.OperatorService/RemoveRaftPeer":               PermClusterAdmin,
	"/atoll.v1.OperatorService/JoinServer":                   PermClusterAdmin,
	"/atoll.v1.OperatorService/SaveSnapshot":                 PermClusterAdmin,
	"/atoll.v1.OperatorService/RestoreSnapshot":              PermClusterAdmin,
	"/atoll.v1.OperatorService/StateHash":                    PermClusterAdmin,
	"/atoll.v1.AppService/CreateApp":                         PermAppWrite,
	"/atoll.v1.AppService/GetApp":                            PermAppRead,
	"/atoll.v1.AppService/ListApps":                          PermAppRead,
	"/atoll.v1.AppService/UpdateApp":                         PermAppWrite,
	"/atoll.v1.AppService/DeleteApp":                         PermAppWrite,
	"/atoll.v1.AppService/RestartApp":                        PermAppWrite,
	"/atoll.v1.AppService/GetAppLogs":                        PermAppRead,
	"/atoll.v1.VolumeService/CreateVolume":                   PermAppWrite,
	"/atoll.v1.VolumeService/GetVolume":                      PermAppRead,
	"/atoll.v1.VolumeService/ListVolumes":                    PermAppRead,
	"/atoll.v1.VolumeService/DeleteVolume":                   PermAppWrite,
	"/atoll.v1.VariableSetService/CreateVariableSet":         PermAppWrite,
	"/atoll.v1.VariableSetService/GetVariableSet":            PermAppRead,
	"/atoll.v1.VariableSetService/ListVariableSets":          PermAppRead,
	"/atoll.v1.VariableSetService/UpdateVariableSet":         PermAppWrite,
	"/atoll.v1.VariableSetService/DeleteVariableSet":         PermAppWrite,
	"/atoll.v1.FileService/CreateFile":                       PermAppWrite,
	"/atoll.v1.FileService/GetFile":                          PermAppRead,
	"/atoll.v1.FileService/ListFiles":                        PermAppRead,
	"/atoll.v1.FileService/UpdateFile":                       PermAppWrite,
	"/atoll.v1.FileService/DeleteFile":                       PermAppWrite,
	"/atoll.v1.NodeService/ListNodes":                        PermNodeRead,
	"/atoll.v1.NodeService/GetNode":                          PermNodeRead,
	"/atoll.v1.NodeService/DrainNode":                        PermNodeWrite,
	"/atoll.v1.AgentService/Session":                         PermNodeAgent,
	"/atoll.v1.ReleaseService/CreateRelease":                 PermAppWrite,
	"/atoll.v1.ReleaseService/GetRelease":                    PermAppRead,
	"/atoll.v1.ReleaseService/ListReleases":                  PermAppRead,
	"/atoll.v1.ReleaseService/DeployRelease":                 PermAppWrite,
	"/atoll.v1.ReleaseService/UndeployApp":                   PermAppWrite,
	"/atoll.v1.ReleaseService/ListDeployments":               PermAppRead,
	"/atoll.v1.BlueprintService/CreateBlueprint":             PermEnvWrite,
	"/atoll.v1.BlueprintService/GetBlueprint":                PermEnvRead,
	"/atoll.v1.BlueprintService/ListBlueprints":              PermEnvRead,
	"/atoll.v1.BlueprintService/DeleteBlueprint":             PermEnvWrite,
}

// RegisterPermission declares the permission of an RPC added by another package.
func RegisterPermission(fullMethod, perm string) { methodPermissions[fullMethod] = perm }

// unauthenticated methods: health checks and reflection.
func public(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.") || strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

// Identity is the authenticated caller.
type Identity struct {
	TokenID string
	OrgID   string
	Name    string
	Scopes  []string
}

// Has reports whether the identity holds perm.
func (id *Identity) Has(perm string) bool { return HasScope(id.Scopes, perm) }

// HasScope reports whether scopes grant perm.
func HasScope(scopes []string, perm string) bool {
	if perm == "" {
		return true
	}
	res, _, _ := strings.Cut(perm, ":")
	return slices.Contains(scopes, "*") || slices.Contains(scopes, perm) || slices.Contains(scopes, res+":*")
}

type identityKey struct{}

// IdentityFrom returns the caller of an authenticated request.
func IdentityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// WithIdentity is for tests and in-process callers.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// HashToken is the stored form of a token secret.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// TokenLookup finds a token by the hash of its secret in the current state.
type TokenLookup func(hash string) *atollv1.Token

// orgInPath is the organization an org-scoped REST path names, if any.
func orgInPath(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(OrgHeader); len(v) > 0 {
		return v[0]
	}
	return ""
}

func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		if t, ok := strings.CutPrefix(v, "bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return ""
}

// notBearer explains an Authorization header that is not a bearer token
// ("Basic ...", a bare token), "" when there is none.
func notBearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, TokenPrefix) {
			return "the Authorization header lacks the \"Bearer \" scheme: send \"Authorization: Bearer atl_...\""
		}
		scheme, _, _ := strings.Cut(v, " ")
		if scheme == "" || strings.EqualFold(scheme, "bearer") {
			continue
		}
		if strings.EqualFold(scheme, "basic") {
			scheme = "Basic"
		} else if len(scheme) > 20 || strings.ContainsFunc(scheme, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			scheme = "this"
		} else {
			scheme = strconv.Quote(scheme)
		}
		return scheme + " auth is not supported: send an API token as \"Authorization: Bearer atl_...\" (see `atoll token create`)"
	}
	return ""
}

// Authenticator checks tokens and permissions.
type Authenticator struct {
	Lookup TokenLookup
	// Replaying, when set and true, says the server's state is still being
	// rebuilt from its raft log after a restart: no token can be checked
	// then (UNAVAILABLE, retry).
	Replaying func() bool
	// OrgSlug returns an organization's slug (paths may name it by slug).
	OrgSlug func(orgID string) string
	Now     func() time.Time
}

// Authenticate resolves the caller of ctx and checks it may call fullMethod.
func (a *Authenticator) Authenticate(ctx context.Context, fullMethod string) (context.Context, error) {
	if public(fullMethod) {
		return ctx, nil
	}
	secret := bearer(ctx)
	if secret == "" {
		if msg := notBearer(ctx); msg != "" {
			return nil, apierr.Unauthenticated(msg)
		}
		return nil, apierr.Unauthenticated("missing API token: send the header \"Authorization: Bearer atl_...\" (see `atoll token create`)")
	}
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 256 {
		return nil, apierr.Unauthenticated("invalid API token: atoll tokens start with \"atl_\"")
	}
	// Tokens are checked against the state: while it is still being rebuilt
	// after a restart, a token may not exist yet, or its revocation may not
	// be applied yet, so no answer from it can be trusted.
	if a.Replaying != nil && a.Replaying() {
		return nil, apierr.Unavailable("this server is still replaying its raft log after a restart and cannot check tokens yet; retry in a moment")
	}
	hash := HashToken(secret)
	tok := a.Lookup(hash)
	if tok == nil || subtle.ConstantTimeCompare([]byte(tok.SecretHash), []byte(hash)) != 1 {
		return nil, apierr.Unauthenticated("invalid API token: unknown or revoked")
	}
	if tok.Revoked {
		return nil, apierr.Unauthenticated("invalid API token: unknown or revoked")
	}
	if tok.ExpiresAt != nil && !tok.ExpiresAt.AsTime().After(a.Now()) {
		return nil, apierr.Unauthenticated("API token expired; create a new one with `atoll token create`")
	}
	perm, known := methodPermissions[fullMethod]
	if !known {
		return nil, apierr.PermissionDenied("unknown-method:" + fullMethod)
	}
	id := &Identity{TokenID: tok.Id, OrgID: tok.OrgId, Name: tok.Name, Scopes: tok.Scopes}
	if org := orgInPath(ctx); org != "" && org != tok.OrgId && (a.OrgSlug == nil || a.OrgSlug(tok.OrgId) != org) {
		return nil, apierr.NotFound("organization", org)
	}
	if !id.Has(perm) {
		return nil, apierr.PermissionDenied(perm)
	}
	return WithIdentity(ctx, id), nil
}

// UnaryInterceptor authenticates unary calls.
func (a *Authenticator) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := a.Authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// StreamInterceptor authenticates streaming calls.
func (a *Authenticator) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.Authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }
