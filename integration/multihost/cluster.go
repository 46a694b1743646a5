// Package multihost runs atoll control-plane servers as separate containers
// on the local Docker Engine, one "host" each, so tests can kill, restart
// and partition them with real processes, real TCP and real network
// failures.
//
// The server image is cmd/atoll compiled statically into a FROM scratch
// image (built once per process through the Engine API, see BuildImage).
// Each server container sits on two private bridge networks that the
// cluster creates with its own subnets:
//
//   - the cluster network (internal: no gateway, no way out), with a fixed
//     IP per server; raft and leader forwarding use these addresses.
//     Disconnecting a container from it partitions that server away.
//   - the client network, which carries the ports published on 127.0.0.1
//     (random host ports) that the test dials. Docker isolates bridge
//     networks from each other, so a server cut off from the cluster network
//     cannot reach its peers through this one, while the test still reaches
//     it.
//
// Data dirs are host temp dirs bind-mounted at /data, so the bootstrap
// server's admin token is read from the host and a restarted container
// keeps its state. Everything created (containers, networks, the image
// unless ATOLL_MULTIHOST_KEEP_IMAGE=1) is removed in t.Cleanup, also when
// the test fails; container logs are written to the test log on failure.
//
// The package only talks to the loopback ports and networks it creates.
package multihost

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

const (
	grpcPort = "7071"
	httpPort = "7070"
	raftPort = "7072"
	dataDir  = "/data"
	// ScopeLabel marks the containers and networks of one cluster.
	ScopeLabel = "atoll.multihost.scope"
)

// Server is one server container.
type Server struct {
	Index       int
	ID          string // raft server id: server-<index>
	IP          string // address on the cluster network
	ContainerID string
	DataDir     string // host path mounted at /data

	mu       sync.Mutex
	grpcHost string // 127.0.0.1:<port>, changes when the container restarts
	httpHost string
	conn     *grpc.ClientConn
}

// Cluster is a set of server containers created by NewCluster.
type Cluster struct {
	t          testing.TB
	docker     *client.Client
	scope      string
	clusterNet string // network ids
	clientNet  string
	Image      string
	Servers    []*Server
	// AdminToken is the bootstrap server's admin token.
	AdminToken string
}

// NewCluster builds the image if needed and starts n servers: server 0
// bootstraps, the others join it. It waits until every server is a voter.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	c := &Cluster{t: t, docker: cli, Image: DefaultTag, scope: fmt.Sprintf("mh-%d", time.Now().UnixNano())}
	acquireImage(t, cli, c.Image)
	t.Cleanup(c.cleanup)

	clusterSubnet := c.createNetworks()
	for i := 0; i < n; i++ {
		s := &Server{Index: i, ID: fmt.Sprintf("server-%d", i), IP: fmt.Sprintf("%s.%d", clusterSubnet, 10+i), DataDir: t.TempDir()}
		c.Servers = append(c.Servers, s)
		c.create(s)
		c.Start(i)
		if i == 0 {
			c.AdminToken = c.waitAdminToken(s)
		}
	}
	c.WaitVoters(n, 60*time.Second)
	return c
}

// createNetworks creates the cluster and client networks on random private
// subnets (retrying on overlaps) and returns the cluster subnet's prefix
// ("10.213.N").
func (c *Cluster) createNetworks() string {
	c.t.Helper()
	ctx := c.ctx(30 * time.Second)
	labels := map[string]string{ScopeLabel: c.scope}
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		n := 1 + rand.IntN(250)
		cl, err := c.docker.NetworkCreate(ctx, c.scope+"-cluster", network.CreateOptions{
			Driver: "bridge", Internal: true, Labels: labels,
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: fmt.Sprintf("10.213.%d.0/24", n), Gateway: fmt.Sprintf("10.213.%d.1", n)}}},
		})
		if err != nil {
			lastErr = err
			continue
		}
		c.clusterNet = cl.ID
		cn, err := c.docker.NetworkCreate(ctx, c.scope+"-client", network.CreateOptions{
			Driver: "bridge", Labels: labels,
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: fmt.Sprintf("10.214.%d.0/24", n), Gateway: fmt.Sprintf("10.214.%d.1", n)}}},
		})
		if err != nil {
			lastErr = err
			_ = c.docker.NetworkRemove(ctx, cl.ID)
			c.clusterNet = ""
			continue
		}
		c.clientNet = cn.ID
		return fmt.Sprintf("10.213.%d", n)
	}
	c.t.Fatalf("creating networks: %v", lastErr)
	return ""
}

func (c *Cluster) create(s *Server) {
	c.t.Helper()
	ctx := c.ctx(30 * time.Second)
	args := []string{"server",
		"--node-id", s.ID,
		"--data-dir", dataDir,
		"--raft-addr", "0.0.0.0:" + raftPort, "--raft-advertise", s.IP + ":" + raftPort,
		"--grpc-addr", "0.0.0.0:" + grpcPort, "--grpc-advertise", s.IP + ":" + grpcPort,
		"--http-addr", "0.0.0.0:" + httpPort,
		"--log-level", "info",
	}
	if s.Index == 0 {
		args = append(args, "--bootstrap")
	} else {
		args = append(args, "--join", c.Servers[0].IP+":"+grpcPort, "--token", c.AdminToken)
	}
	ports := nat.PortMap{}
	exposed := nat.PortSet{}
	for _, p := range []string{grpcPort, httpPort} {
		port := nat.Port(p + "/tcp")
		exposed[port] = struct{}{}
		ports[port] = []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: ""}}
	}
	resp, err := c.docker.ContainerCreate(ctx,
		&container.Config{Image: c.Image, Cmd: args, ExposedPorts: exposed, Labels: map[string]string{ScopeLabel: c.scope}},
		&container.HostConfig{PortBindings: ports, Binds: []string{s.DataDir + ":" + dataDir}},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{c.clientNet: {}}},
		nil, fmt.Sprintf("%s-%s", c.scope, s.ID))
	if err != nil {
		c.t.Fatalf("create container %s: %v", s.ID, err)
	}
	s.ContainerID = resp.ID
	c.Connect(s.Index)
}

// Start starts server i's container (again), on the same data dir, and
// redials it: its published host ports may have changed.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	s := c.Servers[i]
	ctx := c.ctx(30 * time.Second)
	if err := c.docker.ContainerStart(ctx, s.ContainerID, container.StartOptions{}); err != nil {
		c.t.Fatalf("start %s: %v", s.ID, err)
	}
	ins, err := c.docker.ContainerInspect(ctx, s.ContainerID)
	if err != nil {
		c.t.Fatalf("inspect %s: %v", s.ID, err)
	}
	hostPort := func(p string) string {
		b := ins.NetworkSettings.Ports[nat.Port(p+"/tcp")]
		if len(b) == 0 {
			c.t.Fatalf("%s: port %s not published", s.ID, p)
		}
		return "127.0.0.1:" + b[0].HostPort
	}
	conn, err := grpc.NewClient(hostPort(grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	s.mu.Lock()
	old := s.conn
	s.grpcHost, s.httpHost, s.conn = hostPort(grpcPort), hostPort(httpPort), conn
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// Kill kills server i's container (SIGKILL); its data dir stays.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	if err := c.docker.ContainerKill(c.ctx(30*time.Second), c.Servers[i].ContainerID, "KILL"); err != nil {
		c.t.Fatalf("kill %s: %v", c.Servers[i].ID, err)
	}
	// Wait until the engine reports it stopped, so Start does not race it.
	ch, errCh := c.docker.ContainerWait(c.ctx(30*time.Second), c.Servers[i].ContainerID, container.WaitConditionNotRunning)
	select {
	case <-ch:
	case err := <-errCh:
		c.t.Fatalf("wait for %s to stop: %v", c.Servers[i].ID, err)
	}
}

// Disconnect removes server i from the cluster network: it can no longer
// reach its peers, nor they it; the test still reaches it.
func (c *Cluster) Disconnect(i int) {
	c.t.Helper()
	if err := c.docker.NetworkDisconnect(c.ctx(30*time.Second), c.clusterNet, c.Servers[i].ContainerID, true); err != nil {
		c.t.Fatalf("disconnect %s: %v", c.Servers[i].ID, err)
	}
}

// Connect attaches server i to the cluster network with its fixed IP.
func (c *Cluster) Connect(i int) {
	c.t.Helper()
	s := c.Servers[i]
	err := c.docker.NetworkConnect(c.ctx(30*time.Second), c.clusterNet, s.ContainerID,
		&network.EndpointSettings{IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: s.IP}})
	if err != nil {
		c.t.Fatalf("connect %s: %v", s.ID, err)
	}
}

// Conn is the gRPC connection to server i (through its published port).
func (c *Cluster) Conn(i int) *grpc.ClientConn {
	s := c.Servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// HTTPAddr is server i's REST address on the host.
func (c *Cluster) HTTPAddr(i int) string {
	s := c.Servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpHost
}

// Envs is an EnvironmentService client of server i.
func (c *Cluster) Envs(i int) atollv1.EnvironmentServiceClient {
	return atollv1.NewEnvironmentServiceClient(c.Conn(i))
}

// Ops is an OperatorService client of server i.
func (c *Cluster) Ops(i int) atollv1.OperatorServiceClient {
	return atollv1.NewOperatorServiceClient(c.Conn(i))
}

// Ctx returns a context with the admin token and a timeout.
func (c *Cluster) Ctx(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.AdminToken), cancel
}

// Peers is server i's own view of the raft configuration.
func (c *Cluster) Peers(i int) ([]*atollv1.RaftPeer, error) {
	ctx, cancel := c.Ctx(3 * time.Second)
	defer cancel()
	r, err := c.Ops(i).ListRaftPeers(ctx, &atollv1.ListRaftPeersRequest{})
	if err != nil {
		return nil, err
	}
	return r.Peers, nil
}

// LeaderSeenBy is the index of the server that server i considers the
// leader, or -1.
func (c *Cluster) LeaderSeenBy(i int) int {
	peers, err := c.Peers(i)
	if err != nil {
		return -1
	}
	for _, p := range peers {
		if p.Leader {
			return c.indexOf(p.Id)
		}
	}
	return -1
}

// Leader is the leader that all the given servers (all servers if none)
// agree on, or -1.
func (c *Cluster) Leader(among ...int) int {
	if len(among) == 0 {
		for i := range c.Servers {
			among = append(among, i)
		}
	}
	leader := -1
	for _, i := range among {
		l := c.LeaderSeenBy(i)
		if l < 0 || (leader >= 0 && l != leader) {
			return -1
		}
		leader = l
	}
	return leader
}

// WaitLeader waits until the given servers agree on a leader that is one
// of them, and returns it.
func (c *Cluster) WaitLeader(timeout time.Duration, among ...int) int {
	c.t.Helper()
	var l int
	c.WaitFor(timeout, fmt.Sprintf("a leader among %v", among), func() bool {
		l = c.Leader(among...)
		if l < 0 {
			return false
		}
		if len(among) == 0 {
			return true
		}
		for _, i := range among {
			if i == l {
				return true
			}
		}
		return false
	})
	return l
}

// WaitVoters waits until every server sees n voters and one leader.
func (c *Cluster) WaitVoters(n int, timeout time.Duration) {
	c.t.Helper()
	c.WaitFor(timeout, fmt.Sprintf("%d voters seen by every server", n), func() bool {
		for i := range c.Servers {
			peers, err := c.Peers(i)
			if err != nil {
				return false
			}
			voters := 0
			for _, p := range peers {
				if p.Voter {
					voters++
				}
			}
			if voters != n {
				return false
			}
		}
		return c.Leader() >= 0
	})
}

// StateHash is server i's own state hash and applied index (stale=true).
func (c *Cluster) StateHash(i int) (string, uint64, error) {
	ctx, cancel := c.Ctx(3 * time.Second)
	defer cancel()
	r, err := c.Ops(i).StateHash(ctx, &atollv1.StateHashRequest{Stale: true})
	if err != nil {
		return "", 0, err
	}
	return r.Sha256, r.AppliedIndex, nil
}

// WaitConverged waits until all servers report the same applied index and
// state hash, and returns the hash. Equal indexes with different hashes
// fail at once: the replicas diverged.
func (c *Cluster) WaitConverged(timeout time.Duration) string {
	c.t.Helper()
	var hash string
	c.WaitFor(timeout, "all servers to converge on one state", func() bool {
		var idx0 uint64
		for i := range c.Servers {
			h, idx, err := c.StateHash(i)
			if err != nil {
				return false
			}
			if i == 0 {
				hash, idx0 = h, idx
				continue
			}
			if idx != idx0 {
				return false
			}
			if h != hash {
				c.t.Fatalf("servers %s and %s diverged: same applied index %d, hashes %s and %s", c.Servers[0].ID, c.Servers[i].ID, idx, hash, h)
			}
		}
		return true
	})
	return hash
}

// WaitFor polls cond every 100ms until it holds or the timeout passes.
func (c *Cluster) WaitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) indexOf(id string) int {
	for i, s := range c.Servers {
		if s.ID == id {
			return i
		}
	}
	return -1
}

func (c *Cluster) waitAdminToken(s *Server) string {
	c.t.Helper()
	var tok string
	c.WaitFor(30*time.Second, "the bootstrap server's admin token", func() bool {
		b, err := os.ReadFile(filepath.Join(s.DataDir, "admin.token"))
		tok = strings.TrimSpace(string(b))
		return err == nil && tok != ""
	})
	return tok
}

// ctx is a context for one engine call; it is cancelled at test end.
func (c *Cluster) ctx(timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	c.t.Cleanup(cancel)
	return ctx
}

// cleanup logs the containers' output when the test failed, then removes
// the containers and networks. The data dirs are t.TempDir's.
func (c *Cluster) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range c.Servers {
		if s.ContainerID == "" {
			continue
		}
		if c.t.Failed() {
			c.logTail(ctx, s, 60)
		}
		s.mu.Lock()
		if s.conn != nil {
			s.conn.Close()
		}
		s.mu.Unlock()
		if err := c.docker.ContainerRemove(ctx, s.ContainerID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			c.t.Logf("multihost: removing container %s: %v", s.ID, err)
		}
	}
	for _, id := range []string{c.clusterNet, c.clientNet} {
		if id == "" {
			continue
		}
		if err := c.docker.NetworkRemove(ctx, id); err != nil {
			c.t.Logf("multihost: removing network %s: %v", id, err)
		}
	}
}

func (c *Cluster) logTail(ctx context.Context, s *Server, lines int) {
	r, err := c.docker.ContainerLogs(ctx, s.ContainerID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(lines)})
	if err != nil {
		c.t.Logf("multihost: logs of %s: %v", s.ID, err)
		return
	}
	defer r.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, r)
	c.t.Logf("multihost: last %d log lines of %s (%s):\n%s", lines, s.ID, s.IP, out.String())
}
