package main

import (
	"flag"
	"fmt"
	"io"
	"sort"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func envExtend() *command {
	return leaf("env extend", "ID|NAME", "push the environment's expiry back (from now if it has none)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		by := fs.String("by", "24h", "how much time to add: 30m, 24h, 7d")
		return func(c *call) error {
			id, err := resolveEnv(c, c.args[0], false)
			if err != nil {
				return err
			}
			e, err := envClient(c).ExtendEnvironment(c.ctx, &atollv1.ExtendEnvironmentRequest{EnvironmentId: id, By: *by})
			if err != nil {
				return err
			}
			return c.print(e, func(w io.Writer) {
				fmt.Fprintf(w, "environment %s (%s) now expires at %s\n", e.Name, e.Id, e.GetExpiresAt().AsTime().Format("2006-01-02 15:04:05 MST"))
			})
		}
	})
}

func envHealth() *command {
	return leaf("env health", "ID|NAME", "probe every public endpoint of the environment's apps", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			id, err := resolveEnv(c, c.args[0], false)
			if err != nil {
				return err
			}
			h, err := envClient(c).CheckEnvironmentHealth(c.ctx, &atollv1.CheckEnvironmentHealthRequest{EnvironmentId: id})
			if err != nil {
				return err
			}
			return c.print(h, func(w io.Writer) {
				fmt.Fprintf(w, "environment %s: %s\n", h.EnvironmentId, h.Status)
				names := make([]string, 0, len(h.Details))
				for n := range h.Details {
					names = append(names, n)
				}
				sort.Strings(names)
				var rows [][]string
				for _, n := range names {
					d := h.Details[n]
					rows = append(rows, []string{n, d.Url, d.Status, fmt.Sprintf("%dms", d.ResponseTimeMs), d.Error})
				}
				if len(rows) > 0 {
					table(w, []string{"APP", "URL", "STATUS", "TIME", "ERROR"}, rows)
				}
			})
		}
	})
}

func envReconcile() *command {
	return leaf("env reconcile", "ID|NAME", "derive the environment's status again from its instances", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			id, err := resolveEnv(c, c.args[0], false)
			if err != nil {
				return err
			}
			e, err := envClient(c).ReconcileEnvironment(c.ctx, &atollv1.ReconcileEnvironmentRequest{EnvironmentId: id})
			if err != nil {
				return err
			}
			return c.print(e, func(w io.Writer) {
				fmt.Fprintf(w, "environment %s (%s): %s %s\n", e.Name, e.Id, e.Status, e.StatusMessage)
			})
		}
	})
}

func envCleanupFailed() *command {
	return leaf("env cleanup-failed", "", "delete every environment in ERROR (their apps are stopped)", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		project := fs.String("project", "", "only this project (id)")
		return func(c *call) error {
			r, err := envClient(c).CleanupFailedEnvironments(c.ctx, &atollv1.CleanupFailedEnvironmentsRequest{ProjectId: *project})
			if err != nil {
				return err
			}
			return c.print(r, func(w io.Writer) {
				fmt.Fprintf(w, "deleted %d environment(s) in ERROR\n", r.Count)
				for _, id := range r.Deleted {
					fmt.Fprintln(w, "  "+id)
				}
			})
		}
	})
}
