package api

import (
	"context"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/fsm"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Backend is what the services need from the server: the one write path and
// the current state.
type Backend interface {
	// Apply proposes a command through raft and returns the state machine's result.
	Apply(ctx context.Context, cmd *atollv1.Command) (*fsm.Result, error)
	// State returns the current store and a channel closed if it is replaced.
	State() (*state.Store, <-chan struct{})
}

// Operator is the raft administration the OperatorService exposes.
type Operator interface {
	ServerID() string
	RaftPeers(ctx context.Context) ([]*atollv1.RaftPeer, error)
	RemovePeer(ctx context.Context, id string) error
	Join(ctx context.Context, m *atollv1.ServerMember) error
	SaveSnapshot(ctx context.Context, w io.Writer) error
	RestoreSnapshot(ctx context.Context, r io.Reader) (uint64, error)
	// ClusterKey is the keyring a joining server needs.
	ClusterKey() []byte
}

// Sealer encrypts secret values before they enter the raft log, and opens
// them again (an update that gives a secret's current value changes nothing).
type Sealer interface {
	Seal(plain string) (string, error)
	Open(sealed string) (string, error)
}

// Options tune the services.
type Options struct {
	MaxTTL time.Duration // longest environment TTL; default 720h
	Now    func() time.Time
	Log    *slog.Logger
	// Domain of public app hostnames (<app>-<env>.<domain>); RouterPort and
	// PublicScheme make the URLs shown (PublicURL; scheme default http).
	Domain       string
	RouterPort   int
	PublicScheme string
	// Usage gives live usage measured by the agents (nil: none yet).
	Usage UsageSource
	// Logs streams an instance's logs from its node (nil: unsupported).
	Logs LogSource
	// Health is the leader's view of the agents (nil: none).
	Health NodeHealth
	// Secrets seals secret variable values (nil: stored as given).
	Secrets Sealer
}

// UsageSource is the live usage reported by agents.
type UsageSource interface {
	InstanceUsage(instanceID string) *atollv1.Resources
	EnvUsage(envID string) *atollv1.Resources
}

// LogSource streams the logs of one instance from the node that runs it.
type LogSource interface {
	InstanceLogs(ctx context.Context, in *atollv1.Instance, req *atollv1.InstanceLogsRequest, send func(*atollv1.LogLine) error) error
}

// Services implements every control-plane gRPC service.
type Services struct {
	b    Backend
	op   Operator
	opts Options
}

// NewServices returns the services over a backend.
func NewServices(b Backend, op Operator, opts Options) *Services {
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = 720 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Services{b: b, op: op, opts: opts}
}

// Register adds every service to a gRPC server.
func (s *Services) Register(g *grpc.Server) {
	atollv1.RegisterEnvironmentServiceServer(g, &envService{Services: s})
	atollv1.RegisterProjectServiceServer(g, &projectService{Services: s})
	atollv1.RegisterOrganizationServiceServer(g, &orgService{Services: s})
	atollv1.RegisterTokenServiceServer(g, &tokenService{Services: s})
	atollv1.RegisterOperatorServiceServer(g, &operatorService{s: s})
	atollv1.RegisterAppServiceServer(g, &appService{Services: s})
	atollv1.RegisterVolumeServiceServer(g, &volumeService{Services: s})
	atollv1.RegisterVariableSetServiceServer(g, &varSetService{Services: s})
	atollv1.RegisterFileServiceServer(g, &fileService{Services: s})
	atollv1.RegisterNodeServiceServer(g, &nodeService{Services: s})
	atollv1.RegisterReleaseServiceServer(g, &releaseService{Services: s})
	atollv1.RegisterBlueprintServiceServer(g, &blueprintService{Services: s})
}

func (s *Services) snap() *state.Txn {
	st, _ := s.b.State()
	return st.Snapshot()
}

// command starts a command on behalf of the caller.
func (s *Services) command(ctx context.Context) *atollv1.Command {
	c := &atollv1.Command{Time: timestamppb.New(s.opts.Now().UTC())}
	if id := IdentityFrom(ctx); id != nil {
		c.Actor, c.OrgId = id.Name, id.OrgID
	}
	return c
}

// apply proposes cmd and returns its result value or the refusal.
func (s *Services) apply(ctx context.Context, cmd *atollv1.Command) (any, error) {
	res, err := s.b.Apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Value, nil
}

func tsOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func orgOf(ctx context.Context) string {
	if id := IdentityFrom(ctx); id != nil {
		return id.OrgID
	}
	return ""
}
