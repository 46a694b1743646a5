package controlplane_test

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// A token can create and revoke only tokens whose scopes it holds itself:
// "token:admin" alone cannot revoke (or mint) a "*" token.
func TestTokenScopesBoundCreateAndRevoke(t *testing.T) {
	f := newAPIFixture(t)
	mk := func(name string, scopes ...string) *atollv1.CreateTokenResponse {
		t.Helper()
		r, err := f.toks.CreateToken(f.ctx, &atollv1.CreateTokenRequest{Name: name, Scopes: scopes})
		if err != nil {
			t.Fatalf("create token %s: %v", name, err)
		}
		return r
	}
	tokAdmin := mk("tok-admin", "token:admin")
	reader := mk("env-reader", "env:read")
	peer := mk("tok-admin-2", "token:admin")
	envAll := mk("env-all", "env:*", "token:admin")
	me, err := f.toks.WhoAmI(f.ctx, &atollv1.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := cptest.Ctx(t, tokAdmin.Secret)

	// Creating: only scopes it holds.
	_, err = f.toks.CreateToken(ctx, &atollv1.CreateTokenRequest{Name: "root", Scopes: []string{"*"}})
	wantCode(t, err, codes.PermissionDenied, `"*"`, "cannot create")
	_, err = f.toks.CreateToken(ctx, &atollv1.CreateTokenRequest{Name: "mixed", Scopes: []string{"token:admin", "env:read", "cluster:admin"}})
	st := wantCode(t, err, codes.PermissionDenied, `"env:read"`, `"cluster:admin"`)
	if strings.Contains(st.Message(), `"token:admin"`) {
		t.Fatalf("token:admin is held, yet named as missing: %s", st.Message())
	}
	mine, err := f.toks.CreateToken(ctx, &atollv1.CreateTokenRequest{Name: "same", Scopes: []string{"token:admin"}})
	if err != nil {
		t.Fatalf("a token:admin token creates another token:admin token: %v", err)
	}

	// Revoking: a token with scopes the caller lacks is out of reach.
	_, err = f.toks.RevokeToken(ctx, &atollv1.RevokeTokenRequest{TokenId: me.Id})
	wantCode(t, err, codes.PermissionDenied, me.Id, `"*"`, "cannot revoke")
	if _, err := f.toks.WhoAmI(f.ctx, &atollv1.WhoAmIRequest{}); err != nil {
		t.Fatalf("the admin token stopped working after a refused revoke: %v", err)
	}
	_, err = f.toks.RevokeToken(ctx, &atollv1.RevokeTokenRequest{TokenId: reader.Token.Id})
	wantCode(t, err, codes.PermissionDenied, `"env:read"`)
	_, err = f.toks.RevokeToken(ctx, &atollv1.RevokeTokenRequest{TokenId: envAll.Token.Id})
	wantCode(t, err, codes.PermissionDenied, `"env:*"`)
	for _, id := range []string{peer.Token.Id, mine.Token.Id} {
		if _, err := f.toks.RevokeToken(ctx, &atollv1.RevokeTokenRequest{TokenId: id}); err != nil {
			t.Fatalf("revoke %s (scopes within the caller's): %v", id, err)
		}
	}
	// env:* + token:admin covers env:read.
	if _, err := f.toks.RevokeToken(cptest.Ctx(t, envAll.Secret), &atollv1.RevokeTokenRequest{TokenId: reader.Token.Id}); err != nil {
		t.Fatalf("env:* holder revokes an env:read token: %v", err)
	}
	// The admin ("*") revokes anything.
	if _, err := f.toks.RevokeToken(f.ctx, &atollv1.RevokeTokenRequest{TokenId: envAll.Token.Id}); err != nil {
		t.Fatal(err)
	}

	// The same over REST.
	r := f.rest(t, tokAdmin.Secret)
	code, o := r.do(http.MethodDelete, "/v1/tokens/"+me.Id, nil)
	wantError(t, code, o, http.StatusForbidden, "PERMISSION_DENIED", `\"*\"`, "cannot revoke")
	code, o = r.do(http.MethodPost, "/v1/tokens", map[string]any{"name": "root", "scopes": []string{"*"}})
	wantError(t, code, o, http.StatusForbidden, "PERMISSION_DENIED", "cannot create")
	other := mk("tok-admin-3", "token:admin")
	r.must(http.StatusOK, http.MethodDelete, "/v1/tokens/"+other.Token.Id, nil)
}

// An Authorization header that is not a bearer token says what to send.
func TestNonBearerAuthExplained(t *testing.T) {
	f := newAPIFixture(t)
	for _, tc := range []struct{ header, want string }{
		{"Basic dXNlcjpwYXNz", "Basic auth is not supported"},
		{"basic dXNlcjpwYXNz", "Basic auth is not supported"},
		{f.c.AdminToken, `lacks the \"Bearer \" scheme`},
		{"", "missing API token"},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+f.srv.HTTPAddr()+"/v1/environments", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b.String(), tc.want) || !strings.Contains(b.String(), "Bearer atl_") {
			t.Fatalf("Authorization %q: %d %s; want 401 mentioning %q and Bearer atl_", tc.header, resp.StatusCode, b.String(), tc.want)
		}
		if strings.Contains(b.String(), f.c.AdminToken[4:]) {
			t.Fatalf("the error echoes the token: %s", b.String())
		}
	}
	// gRPC too.
	ctx := metadata.AppendToOutgoingContext(cptest.Ctx(t, ""), "authorization", "Basic dXNlcjpwYXNz")
	_, err := f.envs.ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{})
	wantCode(t, err, codes.Unauthenticated, "Basic auth is not supported", "Bearer")
}
