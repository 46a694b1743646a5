package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

var envIDRe = regexp.MustCompile(`^env_[a-z2-7]{26}$`)

func envCommand() *command {
	return group("env", "manage environments",
		envCreate(), envGet(), envList(), envUpdate(), envDelete(), envRestore(),
		envHistory(), envUsage(), envStart(), envStop(), envWatch(),
		envExtend(), envHealth(), envReconcile(), envCleanupFailed(),
	)
}

func envClient(c *call) atollv1.EnvironmentServiceClient {
	return atollv1.NewEnvironmentServiceClient(c.conn)
}

// resolveEnv turns an id or a name/slug into an environment id. With
// deleted, deleted environments match too (live ones are preferred).
func resolveEnv(c *call, arg string, deleted bool) (string, error) {
	if envIDRe.MatchString(arg) {
		return arg, nil
	}
	cl := envClient(c)
	var live, dead []*atollv1.Environment
	req := &atollv1.ListEnvironmentsRequest{PageSize: 100, IncludeDeleted: deleted}
	for {
		resp, err := cl.ListEnvironments(c.ctx, req)
		if err != nil {
			return "", err
		}
		for _, e := range resp.Environments {
			if e.Name == arg || e.Slug == arg {
				if e.IsDeleted {
					dead = append(dead, e)
				} else {
					live = append(live, e)
				}
			}
		}
		if resp.NextPageToken == "" {
			break
		}
		req.PageToken = resp.NextPageToken
	}
	m := live
	if len(m) == 0 {
		m = dead
	}
	switch len(m) {
	case 0:
		if !deleted {
			// Not live: say so if it is a deleted one, and how to bring it back.
			switch _, err := resolveEnv(c, arg, true); {
			case err == nil:
				return "", fmt.Errorf("environment %q is deleted: restore it with `atoll env restore %s` (`atoll env list --all` shows deleted environments)", arg, arg)
			case strings.Contains(err.Error(), "ambiguous"):
				return "", fmt.Errorf("no live environment named %q, and %v; restore one with `atoll env restore ID`", arg, err)
			}
			return "", fmt.Errorf("not found: no environment named %q (run `atoll env list --all` to include deleted ones)", arg)
		}
		return "", fmt.Errorf("not found: no environment named %q (run `atoll env list --all` to see them)", arg)
	case 1:
		return m[0].Id, nil
	}
	ids := make([]string, len(m))
	for i, e := range m {
		ids[i] = e.Id
	}
	return "", fmt.Errorf("%q is ambiguous: it names %d environments (%s); use an id", arg, len(m), strings.Join(ids, ", "))
}

func envRow(e *atollv1.Environment, now time.Time) []string {
	st := e.Status.String()
	if e.IsDeleted {
		st = "DELETED"
	}
	q := e.GetResourceQuota()
	return []string{e.Id, e.Name, st, fmtCPU(q.GetCpu()), fmtMB(q.GetMemory()), fmtMB(q.GetStorage()),
		ago(e.GetCreatedAt().AsTime(), now), untilTS(e, now)}
}

func untilTS(e *atollv1.Environment, now time.Time) string {
	if e.ExpiresAt == nil {
		return "-"
	}
	return until(e.ExpiresAt.AsTime(), now)
}

var envHeader = []string{"ID", "NAME", "STATUS", "CPU", "MEM", "STORAGE", "AGE", "EXPIRES"}

func printEnv(c *call, e *atollv1.Environment) error {
	return c.print(e, func(w io.Writer) {
		now := time.Now()
		st := e.Status.String()
		if e.IsDeleted {
			st += " (deleted " + ago(e.GetDeletedAt().AsTime(), now) + " ago)"
		}
		if e.StatusMessage != "" {
			st += ": " + e.StatusMessage
		}
		q := e.GetResourceQuota()
		rows := [][]string{
			{"ID:", e.Id},
			{"Name:", e.Name},
			{"Slug:", e.Slug},
			{"Project:", e.ProjectId},
			{"Status:", st},
			{"Quota:", fmt.Sprintf("cpu %s  memory %s  storage %s", fmtCPU(q.GetCpu()), fmtMB(q.GetMemory()), fmtMB(q.GetStorage()))},
		}
		if e.Description != "" {
			rows = append(rows, []string{"Description:", e.Description})
		}
		if len(e.Labels) > 0 {
			rows = append(rows, []string{"Labels:", fmtMap(e.Labels)})
		}
		if e.IsDefault {
			rows = append(rows, []string{"Default:", "yes"})
		}
		if e.Ttl != "" || e.ExpiresAt != nil {
			rows = append(rows, []string{"TTL:", orDash(e.Ttl) + "  (expires " + untilTS(e, now) + ")"})
		}
		for _, ep := range e.Endpoints {
			rows = append(rows, []string{"Endpoint:", ep.Name + "  " + ep.Url})
		}
		rows = append(rows,
			[]string{"Created:", fmt.Sprintf("%s ago by %s", ago(e.GetCreatedAt().AsTime(), now), orDash(e.CreatedBy))},
			[]string{"Version:", fmt.Sprintf("%d (last change by %s, %s ago)", e.Version, orDash(e.ModifiedBy), ago(e.GetUpdatedAt().AsTime(), now))},
		)
		tw := tableWriter(w)
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		tw.Flush()
	})
}

func fmtMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func envCreate() *command {
	return leaf("env create", "NAME", "create an environment", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		project := fs.String("project", "", "project id or name (default: the organization's default project)")
		ttl := fs.String("ttl", "", "lifetime, e.g. 48h, 30m, 7d (default: no expiry)")
		desc := fs.String("description", "", "description")
		slug := fs.String("slug", "", "DNS label (default: derived from the name)")
		def := fs.Bool("default", false, "make it the project's default environment")
		var labels multiFlag
		fs.Var(&labels, "label", "label key=value (repeatable)")
		bp := fs.String("blueprint", "", "create it from this blueprint (name or id) with its apps, volumes, variable sets and files")
		var vars multiFlag
		fs.Var(&vars, "var", "blueprint variable NAME=VALUE (repeatable)")
		var q quotaFlags
		q.register(fs, "quota:")
		return func(c *call) error {
			quota, _, err := q.resources()
			if err != nil {
				return err
			}
			variables, err := parseVars(vars)
			if err != nil {
				return err
			}
			lbl, _, err := parseLabels(labels, false)
			if err != nil {
				return err
			}
			if *project, err = optProject(c, *project); err != nil {
				return err
			}
			e, err := envClient(c).CreateEnvironment(c.ctx, &atollv1.CreateEnvironmentRequest{
				Name: c.args[0], ProjectId: *project, Ttl: *ttl, Description: *desc, Slug: *slug,
				IsDefault: *def, Labels: lbl, ResourceQuota: quota, BlueprintId: *bp, Variables: variables,
			})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, e)
			}
			q := e.GetResourceQuota()
			fmt.Fprintf(c.e.stdout, "created environment %s (%s)  cpu %s  memory %s  storage %s  expires %s\n",
				e.Name, e.Id, fmtCPU(q.GetCpu()), fmtMB(q.GetMemory()), fmtMB(q.GetStorage()), untilTS(e, time.Now()))
			return nil
		}
	})
}

func envGet() *command {
	return leaf("env get", "ID|NAME", "show an environment", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		stale := fs.Bool("stale", false, "answer from the contacted server's own state (may lag the leader)")
		return func(c *call) error {
			id, err := resolveEnv(c, c.args[0], true)
			if err != nil {
				return err
			}
			e, err := envClient(c).GetEnvironment(c.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: id, Stale: *stale})
			if err != nil {
				return err
			}
			return printEnv(c, e)
		}
	})
}

func envList() *command {
	return leaf("env list", "", "list environments", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		project := fs.String("project", "", "only this project's environments (id or name)")
		status := fs.String("status", "", "only this status (running, stopped, ...)")
		search := fs.String("search", "", "only names containing this text")
		all := fs.Bool("all", false, "include deleted environments")
		limit := fs.Int("limit", 0, "page size (server default 50, max 100)")
		token := fs.String("page-token", "", "continue from a previous page")
		stale := fs.Bool("stale", false, "answer from the contacted server's own state (may lag the leader)")
		return func(c *call) error {
			var err error
			if *project, err = optProject(c, *project); err != nil {
				return err
			}
			resp, err := envClient(c).ListEnvironments(c.ctx, &atollv1.ListEnvironmentsRequest{
				ProjectId: *project, Status: *status, Search: *search, IncludeDeleted: *all,
				PageSize: int32(*limit), PageToken: *token, Stale: *stale,
			})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				if len(resp.Environments) == 0 {
					fmt.Fprintln(w, "no environments (create one: atoll env create NAME)")
					return
				}
				now := time.Now()
				rows := make([][]string, len(resp.Environments))
				for i, e := range resp.Environments {
					rows[i] = envRow(e, now)
				}
				table(w, envHeader, rows)
				if resp.NextPageToken != "" {
					fmt.Fprintf(c.e.stderr, "\n%d of %d shown; next page: atoll env list --page-token %s\n", len(rows), resp.TotalCount, resp.NextPageToken)
				}
			})
		}
	})
}

func envUpdate() *command {
	return leaf("env update", "ID|NAME", "change an environment's name, description, quota, TTL or labels", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		name := fs.String("name", "", "new name")
		desc := fs.String("description", "", "new description")
		ttl := fs.String("ttl", "", "new lifetime from now, e.g. 48h (\"\" or 0: no expiry)")
		version := fs.Int("if-version", 0, "fail unless the environment is at this version")
		var labels multiFlag
		fs.Var(&labels, "label", "set label key=value, or remove it with key- (repeatable)")
		var q quotaFlags
		q.register(fs, "new quota:")
		return func(c *call) error {
			given := setFlags(fs)
			id, err := resolveEnv(c, c.args[0], false)
			if err != nil {
				return err
			}
			patch := &atollv1.Environment{}
			var paths []string
			if given["name"] {
				patch.Name, paths = *name, append(paths, "name")
			}
			if given["description"] {
				patch.Description, paths = *desc, append(paths, "description")
			}
			if given["ttl"] {
				t := *ttl
				if t == "0" {
					t = ""
				}
				patch.Ttl, paths = t, append(paths, "ttl")
			}
			quota, qpaths, err := q.resources()
			if err != nil {
				return err
			}
			if quota != nil {
				patch.ResourceQuota = quota
				for _, p := range qpaths {
					paths = append(paths, "resourceQuota."+p)
				}
			}
			if len(labels) > 0 {
				set, remove, err := parseLabels(labels, true)
				if err != nil {
					return err
				}
				cur, err := envClient(c).GetEnvironment(c.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: id})
				if err != nil {
					return err
				}
				patch.Labels = map[string]string{}
				for k, v := range cur.Labels {
					patch.Labels[k] = v
				}
				for k, v := range set {
					patch.Labels[k] = v
				}
				for _, k := range remove {
					delete(patch.Labels, k)
				}
				paths = append(paths, "labels")
			}
			if len(paths) == 0 {
				return usagef("atoll env update: nothing to change; give --name, --description, --cpu, --memory, --storage, --ttl or --label")
			}
			e, err := envClient(c).UpdateEnvironment(c.ctx, &atollv1.UpdateEnvironmentRequest{
				EnvironmentId: id, Environment: patch, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
				ExpectedVersion: int32(*version),
			})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, e)
			}
			fmt.Fprintf(c.e.stdout, "updated environment %s (%s) to version %d: %s\n", e.Name, e.Id, e.Version, strings.Join(paths, ", "))
			return nil
		}
	})
}

func envDelete() *command {
	return leaf("env delete", "ID|NAME", "delete an environment (restorable with `env restore`; --purge --yes: permanently)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		force := fs.Bool("force", false, "accepted for compatibility: a delete always stops the apps first (undo with env restore)")
		purge := fs.Bool("purge", false, "delete permanently: the environment, its history, apps, volumes (and their data), variable sets and files; also for an already deleted one; cannot be undone (needs --yes)")
		yes := fs.Bool("yes", false, "confirm --purge")
		return func(c *call) error {
			if *purge && !*yes {
				return usagef("atoll env delete --purge cannot be undone: add --yes to confirm (without --purge, a delete can be restored)")
			}
			id, err := resolveEnv(c, c.args[0], *purge)
			if err != nil {
				return err
			}
			if _, err := envClient(c).DeleteEnvironment(c.ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: id, Force: *force, Purge: *purge}); err != nil {
				return err
			}
			if c.json() {
				fmt.Fprintf(c.e.stdout, "{\"environmentId\": %q, \"deleted\": true, \"purged\": %t}\n", id, *purge)
				return nil
			}
			if *purge {
				fmt.Fprintf(c.e.stdout, "purged environment %s (permanently deleted)\n", id)
				return nil
			}
			fmt.Fprintf(c.e.stdout, "deleted environment %s (undo: atoll env restore %s)\n", id, id)
			return nil
		}
	})
}

func envRestore() *command {
	return leaf("env restore", "ID|NAME", "undelete an environment, or roll it back to an earlier version", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		version := fs.Int("version", 0, "version to restore (see `env history`; default: undelete with the latest settings)")
		return func(c *call) error {
			id, err := resolveEnv(c, c.args[0], true)
			if err != nil {
				return err
			}
			e, err := envClient(c).RestoreEnvironment(c.ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: id, Version: int32(*version)})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, e)
			}
			fmt.Fprintf(c.e.stdout, "restored environment %s (%s), now version %d\n", e.Name, e.Id, e.Version)
			return nil
		}
	})
}

func envHistory() *command {
	return leaf("env history", "ID|NAME", "show who changed an environment, and what", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			id, err := resolveEnv(c, c.args[0], true)
			if err != nil {
				return err
			}
			resp, err := envClient(c).GetEnvironmentHistory(c.ctx, &atollv1.GetEnvironmentHistoryRequest{EnvironmentId: id})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				rows := make([][]string, len(resp.Versions))
				for i, v := range resp.Versions {
					when := "-"
					if v.ModifiedAt != nil {
						when = v.ModifiedAt.AsTime().Local().Format("2006-01-02 15:04:05")
					}
					rows[i] = []string{fmt.Sprint(v.Version), when, orDash(v.ModifiedBy), orDash(v.Action), orDash(strings.Join(v.ChangedFields, ","))}
				}
				table(w, []string{"VERSION", "WHEN", "WHO", "ACTION", "CHANGED"}, rows)
			})
		}
	})
}

func envUsage() *command {
	return leaf("env usage", "ID|NAME", "show an environment's quota, allocation and utilization", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			id, err := resolveEnv(c, c.args[0], false)
			if err != nil {
				return err
			}
			u, err := envClient(c).GetResourceUsage(c.ctx, &atollv1.GetResourceUsageRequest{EnvironmentId: id})
			if err != nil {
				return err
			}
			return c.print(u, func(w io.Writer) {
				q, used, av, p, m := u.GetQuota(), u.GetUsed(), u.GetAvailable(), u.GetUtilizationPercent(), u.GetMeasured()
				// MEASURED is the live usage the agents report ("-" before any report).
				measured := func(f func(int32) string, v int32) string {
					if m == nil {
						return "-"
					}
					return f(v)
				}
				table(w, []string{"RESOURCE", "QUOTA", "USED", "AVAILABLE", "UTIL", "MEASURED"}, [][]string{
					{"cpu", fmtCPU(q.GetCpu()), fmtCPU(used.GetCpu()), fmtCPU(av.GetCpu()), fmt.Sprintf("%.0f%%", p.GetCpu()), measured(fmtCPU, m.GetCpu())},
					{"memory", fmtMB(q.GetMemory()), fmtMB(used.GetMemory()), fmtMB(av.GetMemory()), fmt.Sprintf("%.0f%%", p.GetMemory()), measured(fmtMB, m.GetMemory())},
					{"storage", fmtMB(q.GetStorage()), fmtMB(used.GetStorage()), fmtMB(av.GetStorage()), fmt.Sprintf("%.0f%%", p.GetStorage()), measured(fmtMB, m.GetStorage())},
				})
			})
		}
	})
}

func envStart() *command {
	return leaf("env start", "ID|NAME", "start a stopped or hibernating environment", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			id, err := resolveEnv(c, c.args[0], false)
			if err != nil {
				return err
			}
			e, err := envClient(c).StartEnvironment(c.ctx, &atollv1.StartEnvironmentRequest{EnvironmentId: id})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, e)
			}
			fmt.Fprintf(c.e.stdout, "environment %s (%s): %s\n", e.Name, e.Id, e.Status)
			return nil
		}
	})
}

func envStop() *command {
	return leaf("env stop", "ID|NAME", "stop an environment's apps (the quota stays reserved)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		hib := fs.Bool("hibernate", false, "hibernate: also release the environment's allocation")
		return func(c *call) error {
			id, err := resolveEnv(c, c.args[0], false)
			if err != nil {
				return err
			}
			e, err := envClient(c).StopEnvironment(c.ctx, &atollv1.StopEnvironmentRequest{EnvironmentId: id, Hibernate: *hib})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, e)
			}
			fmt.Fprintf(c.e.stdout, "environment %s (%s): %s\n", e.Name, e.Id, e.Status)
			return nil
		}
	})
}

func envWatch() *command {
	return leaf("env watch", "[ID|NAME]", "print environment events as they happen (Ctrl-C stops)", 0, 1, func(fs *flag.FlagSet) func(*call) error {
		project := fs.String("project", "", "watch every environment of this project (id or name) instead of one")
		from := fs.Uint64("from-index", 0, "replay events after this raft index")
		return func(c *call) error {
			var err error
			if *project, err = optProject(c, *project); err != nil {
				return err
			}
			req := &atollv1.WatchEnvironmentRequest{ProjectId: *project, FromIndex: *from}
			if len(c.args) == 1 {
				id, err := resolveEnv(c, c.args[0], true)
				if err != nil {
					return err
				}
				req.EnvironmentId = id
			} else if *project == "" {
				return usagef("atoll env watch: give an environment (ID|NAME) or --project")
			}
			stream, err := envClient(c).WatchEnvironment(c.ctx, req)
			if err != nil {
				return err
			}
			for {
				ev, err := stream.Recv()
				if err != nil {
					if c.ctx.Err() != nil || errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
				if c.json() {
					b, err := jsonLine.Marshal(ev)
					if err != nil {
						return err
					}
					fmt.Fprintln(c.e.stdout, string(b))
					continue
				}
				e := ev.GetEnvironment()
				ts := time.Now()
				if ev.Timestamp != nil {
					ts = ev.Timestamp.AsTime()
				}
				line := fmt.Sprintf("%s  #%d  %-16s %s (%s)  %s", ts.Local().Format("15:04:05"), ev.Index, ev.EventType, e.GetName(), e.GetId(), e.GetStatus())
				if e.GetStatusMessage() != "" {
					line += ": " + e.GetStatusMessage()
				}
				fmt.Fprintln(c.e.stdout, line)
			}
		}
	})
}
