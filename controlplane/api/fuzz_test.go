package api

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// fsmBackend is an in-memory Backend: Apply runs a real state machine, with
// no raft in between.
type fsmBackend struct {
	mu      sync.Mutex
	fsm     *fsm.FSM
	index   uint64
	applied int
}

func newFSMBackend() *fsmBackend { return &fsmBackend{fsm: fsm.New(100, nil, nil)} }

func (b *fsmBackend) Apply(_ context.Context, cmd *atollv1.Command) (*fsm.Result, error) {
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index++
	b.applied++
	return b.fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: b.index, Data: data}).(*fsm.Result), nil
}

func (b *fsmBackend) State() (*state.Store, <-chan struct{}) { return b.fsm.State() }

func (b *fsmBackend) hash(t *testing.T) string {
	st, _ := b.State()
	h, err := st.Snapshot().Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newFuzzEnv returns an environment service over a fresh state holding one
// organization (with its default project), and the caller's context.
func newFuzzEnv(t *testing.T) (*envService, *fsmBackend, context.Context) {
	b := newFSMBackend()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	svcs := NewServices(b, nil, Options{Now: func() time.Time { return now }})
	c, _ := NewOrganization("fuzz org", nil, []string{"*"})
	res, err := b.Apply(context.Background(), &atollv1.Command{Time: svcs.command(context.Background()).Time, OrgId: c.Organization.Id,
		Cmd: &atollv1.Command_CreateOrganization{CreateOrganization: c}})
	if err != nil || res.Err != nil {
		t.Fatalf("create organization: %v %v", err, res.Err)
	}
	ctx := WithIdentity(context.Background(), &Identity{TokenID: c.AdminToken.Id, OrgID: c.Organization.Id, Name: "admin", Scopes: []string{"*"}})
	return &envService{Services: svcs}, b, ctx
}

func FuzzCreateEnvironment(f *testing.F) {
	for _, seed := range []string{
		`{"name":"dev"}`,
		`{"name":"My Env","description":"d","labels":{"team":"a"},"resourceQuota":{"cpu":500,"memory":512,"storage":1024},"ttl":"48h"}`,
		`{"name":"snake","resource_quota":{"cpu":100},"is_default":true,"project_id":""}`,
		`{"name":"neg","resourceQuota":{"cpu":-1,"memory":-5,"storage":-7}}`,
		`{"name":"huge","resourceQuota":{"cpu":2147483647,"memory":2147483647,"storage":2147483647}}`,
		`{"name":"` + strings.Repeat("x", 5000) + `","description":"` + strings.Repeat("é", 3000) + `"}`,
		`{"name":"bad ttl","ttl":"forever"}`,
		`{"name":"ttl days","ttl":"99999999999d"}`,
		`{"name":"ttl neg","ttl":"-5h"}`,
		`{"name":"ttl small","ttl":"1s"}`,
		`{"name":"ttl d only","ttl":"d"}`,
		`{"name":"ünïcödé 環境"}`,
		`{"name":"emoji 🚀"}`,
		`{"name":" spaces "}`,
		`{"name":"x","slug":"-Bad-"}`,
		`{"name":"x","slug":"ok-slug"}`,
		`{"name":"x","projectId":"prj_aaaaaaaaaaaaaaaaaaaaaaaaaa"}`,
		`{"name":"x","projectId":"nope"}`,
		`{"name":"x","blueprintId":"bp_aaaaaaaaaaaaaaaaaaaaaaaaaa"}`,
		`{"name":"x","labels":{"":"v","k":"` + strings.Repeat("v", 300) + `"}}`,
		`{"name":"x","variables":{"1bad":"v"}}`,
		`{"name":"\u0000"}`,
		`{"name":"x","labels":{"` + strings.Repeat("a", 39) + `é":"v"}}`,
		`{}`,
		`[]`,
		`{"name":`,
		`{"unknownField":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := &atollv1.CreateEnvironmentRequest{}
		if err := jsonIn.Unmarshal(body, req); err != nil {
			return // the gateway answers 400 before any handler runs
		}
		svc, b, ctx := newFuzzEnv(t)
		before, appliedBefore := b.hash(t), b.applied
		env, err := svc.CreateEnvironment(ctx, req)
		after := b.hash(t)
		switch status.Code(err) {
		case codes.OK:
			if env.GetId() == "" || env.Version != 1 || env.Name != req.Name {
				t.Fatalf("created %v from %+v", env, req)
			}
			if before == after {
				t.Fatal("a successful create left the state unchanged")
			}
		case codes.InvalidArgument:
			if before != after {
				t.Fatalf("rejected request (%v) changed the state", err)
			}
			if b.applied != appliedBefore {
				t.Fatalf("rejected request (%v) was proposed to raft", err)
			}
			if len(status.Convert(err).Details()) == 0 {
				t.Fatalf("INVALID_ARGUMENT without field violations: %v", err)
			}
		default:
			// Refused by the state machine (NOT_FOUND, RESOURCE_EXHAUSTED, ...): nothing written either.
			if before != after {
				t.Fatalf("refused request (%v) changed the state", err)
			}
		}
	})
}

// A violation on a long non-ASCII key must keep its details: truncating the
// key inside a UTF-8 character made the details unmarshalable and dropped them.
func TestViolationDetailsSurviveTruncation(t *testing.T) {
	svc, _, ctx := newFuzzEnv(t)
	key := strings.Repeat("a", 39) + "é"
	_, err := svc.CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "x", Labels: map[string]string{key: "v"}})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || len(st.Details()) != 1 {
		t.Fatalf("want INVALID_ARGUMENT with field violations, got %v (details %v)", err, st.Details())
	}
	if !utf8.ValidString(st.Message()) {
		t.Fatalf("message is not valid UTF-8: %q", st.Message())
	}
	for _, id := range []string{strings.Repeat("é", 60), strings.Repeat("a", 79) + "é"} {
		st := status.Convert(CheckID("environmentId", "env", id))
		if len(st.Details()) != 1 || !utf8.ValidString(st.Message()) {
			t.Fatalf("CheckID(%q): %v details %v", id, st.Message(), st.Details())
		}
	}
}
