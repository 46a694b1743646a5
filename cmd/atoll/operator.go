package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/atollhq/atoll/client"
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
			resp, err := opClient(c).ListRaftPeers(c.ctx, &atollv1.ListRaftPeersRequest{})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				rows := make([][]string, len(resp.Peers))
				for i, p := range resp.Peers {
					rows[i] = []string{p.Id, p.Address, orDash(p.GrpcAddress), fmt.Sprint(p.Leader), fmt.Sprint(p.Voter)}
				}
				table(w, []string{"ID", "ADDRESS", "GRPC", "LEADER", "VOTER"}, rows)
			})
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
