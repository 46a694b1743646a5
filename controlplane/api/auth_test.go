package api

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// While the server is still replaying its raft log after a restart, tokens
// are not checked (UNAVAILABLE, callers retry); after it, an unknown token is
// UNAUTHENTICATED.
func TestAuthWhileReplaying(t *testing.T) {
	known := "atl_" + "known-token-for-the-test"
	tok := &atollv1.Token{Id: "tok_1", OrgId: "org_1", SecretHash: HashToken(known), Scopes: []string{"*"}}
	replaying := true
	a := &Authenticator{
		Lookup: func(h string) *atollv1.Token {
			if h == tok.SecretHash {
				return tok
			}
			return nil
		},
		Replaying: func() bool { return replaying },
		Now:       time.Now,
	}
	ctxWith := func(secret string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+secret))
	}
	const method = "/atoll.v1.EnvironmentService/ListEnvironments"
	// While replaying, no token is checked: it may not exist yet, or its
	// revocation may not be applied yet.
	for _, secret := range []string{known, "atl_unknown"} {
		if _, err := a.Authenticate(ctxWith(secret), method); status.Code(err) != codes.Unavailable {
			t.Fatalf("token %q while replaying: %v, want UNAVAILABLE", secret[:8], err)
		}
	}
	replaying = false
	if _, err := a.Authenticate(ctxWith(known), method); err != nil {
		t.Fatalf("a known token after the replay: %v", err)
	}
	if _, err := a.Authenticate(ctxWith("atl_unknown"), method); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("an unknown token after the replay: %v, want UNAUTHENTICATED", err)
	}
}
