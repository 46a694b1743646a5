package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/atollhq/atoll/client"
	"github.com/atollhq/atoll/controlplane/api"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func operatorCommand() *command {
	return group("operator", "raft peers and snapshots",
		group("raft", "raft membership", raftListPeers(), raftRemovePeer()),
		group("snapshot", "save and restore the whole state", snapshotSave(), snapshotRestore()),
	)
}

func opClient(c *call) atollv1.OperatorServiceClient { return atollv1.NewOperatorServiceClient(c.conn) }

func raftListPeers() *command {
	return leaf("operator raft list-peers", "", "list the raft servers and the leader", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			var md metadata.MD
			resp, err := opClient(c).ListRaftPeers(c.ctx, &atollv1.ListRaftPeersRequest{}, grpc.Header(&md))
			if err != nil {
				return err
			}
			if err := c.print(resp, func(w io.Writer) {
				rows := make([][]string, len(resp.Peers))
				for i, p := range resp.Peers {
					rows[i] = []string{p.Id, p.Address, orDash(p.GrpcAddress), fmt.Sprint(p.Leader), fmt.Sprint(p.Voter)}
				}
				table(w, []string{"ID", "ADDRESS", "GRPC", "LEADER", "VOTER"}, rows)
			}); err != nil {
				return err
			}
			var self string
			if v := md.Get(api.ServerIDHeader); len(v) > 0 {
				self = v[0]
			}
			return peersProblem(resp.Peers, self, c.o.addr)
		}
	})
}

func raftRemovePeer() *command {
	return leaf("operator raft remove-peer", "ID", "remove a server from the raft configuration", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			if _, err := opClient(c).RemoveRaftPeer(c.ctx, &atollv1.RemoveRaftPeerRequest{Id: c.args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(c.e.stdout, "removed raft peer %s\n", c.args[0])
			return nil
		}
	})
}

func snapshotSave() *command {
	return leaf("operator snapshot save", "FILE", "save a snapshot of the whole state into FILE (mode 0600)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			path := c.args[0]
			// write to a temporary file next to FILE, rename when complete
			tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			defer tmp.Close()
			if err := tmp.Chmod(0o600); err != nil {
				return err
			}
			n, err := client.SaveSnapshot(c.ctx, opClient(c), tmp)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("the server sent an empty snapshot; %s not written", path)
			}
			if err := tmp.Sync(); err != nil {
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), path); err != nil {
				return err
			}
			if c.json() {
				fmt.Fprintf(c.e.stdout, "{\"path\": %q, \"bytes\": %d}\n", path, n)
				return nil
			}
			fmt.Fprintf(c.e.stdout, "saved snapshot: %d bytes to %s\n", n, path)
			return nil
		}
	})
}

func snapshotRestore() *command {
	return leaf("operator snapshot restore", "FILE", "replace the whole cluster state with a saved snapshot", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			f, err := os.Open(c.args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			n := st.Size()
			idx, err := client.RestoreSnapshot(c.ctx, opClient(c), f)
			if err != nil {
				return err
			}
			resp := &atollv1.RestoreSnapshotResponse{Index: idx}
			if c.json() {
				return printJSON(c.e.stdout, resp)
			}
			fmt.Fprintf(c.e.stdout, "restored snapshot %s (%d bytes) at raft index %d\n", c.args[0], n, resp.Index)
			return nil
		}
	})
}

// peersProblem is the error list-peers exits with when the answering server
// knows no leader (the peers are printed first): nil when there is one.
func peersProblem(peers []*atollv1.RaftPeer, self, addr string) error {
	for _, p := range peers {
		if p.Leader {
			return nil
		}
	}
	who := "the server at " + addr
	if self != "" {
		who = "server " + self + " (at " + addr + ")"
	}
	if self != "" && len(peers) > 0 && !slices.ContainsFunc(peers, func(p *atollv1.RaftPeer) bool { return p.Id == self }) {
		return fmt.Errorf("no leader: %s is not in the raft configuration it knows (removed?); ask another server with --addr, and restart this one with --join <addr> after clearing its data dir", who)
	}
	if len(peers) == 0 {
		return fmt.Errorf("no leader: %s has no raft configuration (not bootstrapped or joined yet?)", who)
	}
	return fmt.Errorf("no leader: %s knows no leader; the cluster has no quorum until a majority of the %d voters above is up and reachable", who, countVoters(peers))
}

func countVoters(peers []*atollv1.RaftPeer) int {
	n := 0
	for _, p := range peers {
		if p.Voter {
			n++
		}
	}
	return n
}
