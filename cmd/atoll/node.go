package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func nodeCommand() *command {
	return group("node", "inspect and drain the hosts agents run on",
		nodeList(), nodeGet(), nodeDrain(), nodeUndrain(),
	)
}

func nodeClient(c *call) atollv1.NodeServiceClient { return atollv1.NewNodeServiceClient(c.conn) }

func nodeStatus(n *atollv1.Node) string {
	s := strings.TrimPrefix(n.Status.String(), "NODE_")
	if n.Drain && n.Status != atollv1.NodeStatus_NODE_DRAINING {
		s += ",DRAIN"
	}
	return s
}

// allocOf formats "allocated/allocatable" of one dimension.
func allocOf(alloc, total int32, f func(int32) string) string {
	s := f(alloc) + "/" + f(total)
	if total > 0 {
		s += fmt.Sprintf(" (%d%%)", int(int64(alloc)*100/int64(total)))
	}
	return s
}

func nodeList() *command {
	return leaf("node list", "", "list the nodes: status, CPU and memory allocated of allocatable, instances", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			resp, err := nodeClient(c).ListNodes(c.ctx, &atollv1.ListNodesRequest{})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				now := time.Now()
				rows := make([][]string, len(resp.Nodes))
				for i, n := range resp.Nodes {
					rows[i] = []string{n.Name, n.Id, nodeStatus(n),
						allocOf(n.GetAllocated().GetCpu(), n.GetAllocatable().GetCpu(), fmtCPU),
						allocOf(n.GetAllocated().GetMemory(), n.GetAllocatable().GetMemory(), fmtMB),
						strconv.Itoa(int(n.Instances)), heartbeat(n, now)}
				}
				table(w, []string{"NAME", "ID", "STATUS", "CPU", "MEM", "INSTANCES", "LAST HEARTBEAT"}, rows)
			})
		}
	})
}

func heartbeat(n *atollv1.Node, now time.Time) string {
	if n.LastHeartbeat == nil {
		return "-"
	}
	return ago(n.LastHeartbeat.AsTime(), now) + " ago"
}

func printNode(w io.Writer, n *atollv1.Node) {
	now := time.Now()
	a, t, m, cp := n.GetAllocated(), n.GetAllocatable(), n.GetMeasured(), n.GetCapacity()
	rows := [][]string{
		{"ID:", n.Id},
		{"Name:", n.Name},
		{"Status:", nodeStatus(n)},
	}
	if n.StatusMessage != "" {
		rows = append(rows, []string{"Message:", n.StatusMessage}) // e.g. drain progress, why it is down
	}
	if n.Drain && n.StatusMessage == "" {
		var progress string
		if n.Instances == 0 {
			progress = "drained: no instances left"
		} else {
			progress = fmt.Sprintf("draining: %d instance(s) still here", n.Instances)
		}
		rows = append(rows, []string{"Drain:", progress})
	}
	rows = append(rows,
		[]string{"Capacity:", fmt.Sprintf("cpu %s  memory %s  storage %s", fmtCPU(cp.GetCpu()), fmtMB(cp.GetMemory()), fmtMB(cp.GetStorage()))},
		[]string{"Allocatable:", fmt.Sprintf("cpu %s  memory %s  storage %s", fmtCPU(t.GetCpu()), fmtMB(t.GetMemory()), fmtMB(t.GetStorage()))},
		[]string{"Allocated:", fmt.Sprintf("cpu %s  memory %s  storage %s", allocOf(a.GetCpu(), t.GetCpu(), fmtCPU), allocOf(a.GetMemory(), t.GetMemory(), fmtMB), allocOf(a.GetStorage(), t.GetStorage(), fmtMB))},
	)
	if m != nil {
		rows = append(rows, []string{"Measured:", fmt.Sprintf("cpu %s  memory %s  storage %s", fmtCPU(m.GetCpu()), fmtMB(m.GetMemory()), fmtMB(m.GetStorage()))})
	}
	rows = append(rows, []string{"Instances:", strconv.Itoa(int(n.Instances))})
	if len(n.Labels) > 0 {
		rows = append(rows, []string{"Labels:", fmtMap(n.Labels)})
	}
	if n.Address != "" {
		rows = append(rows, []string{"Address:", n.Address})
	}
	if n.RouterAddress != "" {
		rows = append(rows, []string{"Router:", n.RouterAddress})
	}
	if n.AgentAddress != "" {
		rows = append(rows, []string{"Agent:", n.AgentAddress + "  version " + orDash(n.AgentVersion)})
	} else if n.AgentVersion != "" {
		rows = append(rows, []string{"Agent:", "version " + n.AgentVersion})
	}
	rows = append(rows, []string{"Heartbeat:", heartbeat(n, now)})
	if n.RegisteredAt != nil {
		rows = append(rows, []string{"Registered:", ago(n.RegisteredAt.AsTime(), now) + " ago"})
	}
	tw := tableWriter(w)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func nodeGet() *command {
	return leaf("node get", "NAME|ID", "show a node: status, capacity, allocation, measured usage, drain progress", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			n, err := nodeClient(c).GetNode(c.ctx, &atollv1.GetNodeRequest{NodeId: c.args[0]})
			if err != nil {
				return err
			}
			return c.print(n, func(w io.Writer) { printNode(w, n) })
		}
	})
}

func nodeDrainCmd(undrain bool) *command {
	path, short := "node drain", "move every instance off a node and place nothing new on it"
	if undrain {
		path, short = "node undrain", "let the scheduler place instances on a drained node again"
	}
	return leaf(path, "NAME|ID", short, 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			n, err := nodeClient(c).DrainNode(c.ctx, &atollv1.DrainNodeRequest{NodeId: c.args[0], Undrain: undrain})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, n)
			}
			if undrain {
				fmt.Fprintf(c.e.stdout, "node %s (%s) is %s: it takes new instances again\n", n.Name, n.Id, nodeStatus(n))
				return nil
			}
			if others, err := readyNodesBesides(c, n.Id); err == nil && others == 0 {
				fmt.Fprintf(c.e.stdout, "node %s (%s) is %s, but there is no other ready node: nothing new is placed on it, and its %d instance(s) have nowhere to move, so they keep running here\n  add a node (atoll agent --join-token ...), or undo with `atoll node undrain %s`\n",
					n.Name, n.Id, nodeStatus(n), n.Instances, n.Name)
				return nil
			}
			fmt.Fprintf(c.e.stdout, "node %s (%s) is %s: its %d instance(s) move to other nodes\n  follow with `atoll node get %s`; undo with `atoll node undrain %s`\n",
				n.Name, n.Id, nodeStatus(n), n.Instances, n.Name, n.Name)
			return nil
		}
	})
}

func nodeDrain() *command   { return nodeDrainCmd(false) }
func nodeUndrain() *command { return nodeDrainCmd(true) }

// readyNodesBesides counts the nodes other than id that take new instances.
func readyNodesBesides(c *call, id string) (int, error) {
	resp, err := nodeClient(c).ListNodes(c.ctx, &atollv1.ListNodesRequest{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, x := range resp.Nodes {
		if x.Id != id && x.Status == atollv1.NodeStatus_NODE_READY && !x.Drain {
			n++
		}
	}
	return n, nil
}
