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

// A token the state does not know is UNAUTHENTICATED, except while the
// server is still replaying its raft log after a restart (the token may be
// in the part not applied yet): then UNAVAILABLE, so callers retry.
func TestAuthUnknownTokenWhileReplaying(t *testing.T) {
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
	if _, err := a.Authenticate(ctxWith(known), method); err != nil {
		t.Fatalf("a known token while replaying: %v", err)
	}
	_, err := a.Authenticate(ctxWith("atl_unknown"), method)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("an unknown token while replaying: %v, want UNAVAILABLE", err)
	}
	replaying = false
	_, err = a.Authenticate(ctxWith("atl_unknown"), method)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("an unknown token after the replay: %v, want UNAUTHENTICATED", err)
	}
}
