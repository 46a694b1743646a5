package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

func projectCommand() *command {
	return group("project", "manage projects",
		projectCreate(), projectGet(), projectList(), projectUpdate(), projectDelete())
}

func projectClient(c *call) atollv1.ProjectServiceClient {
	return atollv1.NewProjectServiceClient(c.conn)
}

// resolveProject turns an id or a name/slug into a project id.
func resolveProject(c *call, arg string) (string, error) {
	if strings.HasPrefix(arg, "prj_") {
		return arg, nil
	}
	req := &atollv1.ListProjectsRequest{PageSize: 100}
	var ids []string
	for {
		resp, err := projectClient(c).ListProjects(c.ctx, req)
		if err != nil {
			return "", err
		}
		for _, p := range resp.Projects {
			if p.Name == arg || p.Slug == arg {
				ids = append(ids, p.Id)
			}
		}
		if resp.NextPageToken == "" {
			break
		}
		req.PageToken = resp.NextPageToken
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("not found: no project named %q (run `atoll project list`)", arg)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("%q is ambiguous: it names %d projects (%s); use an id", arg, len(ids), strings.Join(ids, ", "))
}

// optProject resolves an optional --project value ("" stays "").
func optProject(c *call, arg string) (string, error) {
	if arg == "" {
		return "", nil
	}
	return resolveProject(c, arg)
}

func projectRow(p *atollv1.Project, now time.Time) []string {
	def := ""
	if p.IsDefault {
		def = "yes"
	}
	return []string{p.Id, p.Name, p.Slug, fmt.Sprint(p.EnvironmentCount), orDash(def), ago(p.GetCreatedAt().AsTime(), now)}
}

var projectHeader = []string{"ID", "NAME", "SLUG", "ENVS", "DEFAULT", "AGE"}

func printProject(c *call, p *atollv1.Project) error {
	return c.print(p, func(w io.Writer) {
		table(w, projectHeader, [][]string{projectRow(p, time.Now())})
		if p.Description != "" {
			fmt.Fprintf(w, "\n%s\n", p.Description)
		}
	})
}

func projectCreate() *command {
	return leaf("project create", "NAME", "create a project", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		desc := fs.String("description", "", "description")
		slug := fs.String("slug", "", "DNS label (default: derived from the name)")
		return func(c *call) error {
			p, err := projectClient(c).CreateProject(c.ctx, &atollv1.CreateProjectRequest{Name: c.args[0], Slug: *slug, Description: *desc})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, p)
			}
			fmt.Fprintf(c.e.stdout, "created project %s (%s)\n  atoll env create NAME --project %s\n", p.Name, p.Id, p.Id)
			return nil
		}
	})
}

func projectGet() *command {
	return leaf("project get", "ID|NAME", "show a project", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			id, err := resolveProject(c, c.args[0])
			if err != nil {
				return err
			}
			p, err := projectClient(c).GetProject(c.ctx, &atollv1.GetProjectRequest{ProjectId: id})
			if err != nil {
				return err
			}
			return printProject(c, p)
		}
	})
}

func projectList() *command {
	return leaf("project list", "", "list projects", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		limit := fs.Int("limit", 0, "page size")
		token := fs.String("page-token", "", "continue from a previous page")
		return func(c *call) error {
			resp, err := projectClient(c).ListProjects(c.ctx, &atollv1.ListProjectsRequest{PageSize: int32(*limit), PageToken: *token})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				now := time.Now()
				rows := make([][]string, len(resp.Projects))
				for i, p := range resp.Projects {
					rows[i] = projectRow(p, now)
				}
				table(w, projectHeader, rows)
				if resp.NextPageToken != "" {
					fmt.Fprintf(c.e.stderr, "\n%d of %d shown; next page: atoll project list --page-token %s\n", len(rows), resp.TotalCount, resp.NextPageToken)
				}
			})
		}
	})
}

func projectUpdate() *command {
	return leaf("project update", "ID|NAME", "rename a project or change its description", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		name := fs.String("name", "", "new name")
		desc := fs.String("description", "", "new description")
		return func(c *call) error {
			given := setFlags(fs)
			patch := &atollv1.Project{Name: *name, Description: *desc}
			var paths []string
			for _, f := range []string{"name", "description"} {
				if given[f] {
					paths = append(paths, f)
				}
			}
			if len(paths) == 0 {
				return usagef("atoll project update: nothing to change; give --name or --description")
			}
			id, err := resolveProject(c, c.args[0])
			if err != nil {
				return err
			}
			p, err := projectClient(c).UpdateProject(c.ctx, &atollv1.UpdateProjectRequest{ProjectId: id, Project: patch, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, p)
			}
			fmt.Fprintf(c.e.stdout, "updated project %s (%s): %s\n", p.Name, p.Id, strings.Join(paths, ", "))
			return nil
		}
	})
}

func projectDelete() *command {
	return leaf("project delete", "ID|NAME", "delete a project", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			id, err := resolveProject(c, c.args[0])
			if err != nil {
				return err
			}
			if _, err := projectClient(c).DeleteProject(c.ctx, &atollv1.DeleteProjectRequest{ProjectId: id}); err != nil {
				return err
			}
			if c.json() {
				fmt.Fprintf(c.e.stdout, "{\"projectId\": %q, \"deleted\": true}\n", id)
				return nil
			}
			fmt.Fprintf(c.e.stdout, "deleted project %s\n", id)
			return nil
		}
	})
}

// --- organization ---

func orgCommand() *command {
	return group("org", "show and change the organization", orgGet(), orgUpdate(), orgCreate())
}

func orgClient(c *call) atollv1.OrganizationServiceClient {
	return atollv1.NewOrganizationServiceClient(c.conn)
}

func printOrg(c *call, o *atollv1.Organization) error {
	return c.print(o, func(w io.Writer) {
		fmt.Fprintf(w, "%s (%s)  %d environments\n\n", o.Name, o.Id, o.EnvironmentCount)
		q, a, av, p, d := o.GetQuota(), o.GetAllocated(), o.GetAvailable(), o.GetUtilizationPercent(), o.GetDefaultEnvironmentQuota()
		table(w, []string{"RESOURCE", "QUOTA", "ALLOCATED", "AVAILABLE", "UTIL", "ENV DEFAULT"}, [][]string{
			{"cpu", fmtCPU(q.GetCpu()), fmtCPU(a.GetCpu()), fmtCPU(av.GetCpu()), fmt.Sprintf("%.0f%%", p.GetCpu()), fmtCPU(d.GetCpu())},
			{"memory", fmtMB(q.GetMemory()), fmtMB(a.GetMemory()), fmtMB(av.GetMemory()), fmt.Sprintf("%.0f%%", p.GetMemory()), fmtMB(d.GetMemory())},
			{"storage", fmtMB(q.GetStorage()), fmtMB(a.GetStorage()), fmtMB(av.GetStorage()), fmt.Sprintf("%.0f%%", p.GetStorage()), fmtMB(d.GetStorage())},
		})
	})
}

func orgGet() *command {
	return leaf("org get", "", "show the organization: quota, allocation, defaults", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			o, err := orgClient(c).GetOrganization(c.ctx, &atollv1.GetOrganizationRequest{})
			if err != nil {
				return err
			}
			return printOrg(c, o)
		}
	})
}

func orgUpdate() *command {
	return leaf("org update", "", "rename the organization or change its quota", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		name := fs.String("name", "", "new name")
		var q, d quotaFlags
		q.register(fs, "organization quota:")
		fs.StringVar(&d.cpu, "default-cpu", "", "default environment quota: "+cpuHelp)
		fs.StringVar(&d.memory, "default-memory", "", "default environment quota: memory in "+memHelp)
		fs.StringVar(&d.storage, "default-storage", "", "default environment quota: storage in "+memHelp)
		return func(c *call) error {
			patch := &atollv1.Organization{}
			var paths []string
			if setFlags(fs)["name"] {
				patch.Name, paths = *name, append(paths, "name")
			}
			quota, qp, err := q.resources()
			if err != nil {
				return err
			}
			if quota != nil {
				patch.Quota = quota
				for _, p := range qp {
					paths = append(paths, "quota."+p)
				}
			}
			def, dp, err := d.resources()
			if err != nil {
				return err
			}
			if def != nil {
				if len(dp) != 3 {
					// the server replaces the default quota as a whole: keep the other dimensions
					cur, err := orgClient(c).GetOrganization(c.ctx, &atollv1.GetOrganizationRequest{})
					if err != nil {
						return err
					}
					old := cur.GetDefaultEnvironmentQuota()
					if def.Cpu == 0 {
						def.Cpu = old.GetCpu()
					}
					if def.Memory == 0 {
						def.Memory = old.GetMemory()
					}
					if def.Storage == 0 {
						def.Storage = old.GetStorage()
					}
				}
				patch.DefaultEnvironmentQuota, paths = def, append(paths, "defaultEnvironmentQuota")
			}
			if len(paths) == 0 {
				return usagef("atoll org update: nothing to change; give --name, --cpu, --memory, --storage or --default-cpu/--default-memory/--default-storage")
			}
			o, err := orgClient(c).UpdateOrganization(c.ctx, &atollv1.UpdateOrganizationRequest{Organization: patch, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
			if err != nil {
				return err
			}
			return printOrg(c, o)
		}
	})
}

func orgCreate() *command {
	return leaf("org create", "NAME", "create an organization (cluster admin); prints its admin token once", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		var q quotaFlags
		q.register(fs, "quota:")
		return func(c *call) error {
			quota, _, err := q.resources()
			if err != nil {
				return err
			}
			resp, err := orgClient(c).CreateOrganization(c.ctx, &atollv1.CreateOrganizationRequest{Name: c.args[0], Quota: quota})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, resp)
			}
			o := resp.GetOrganization()
			fmt.Fprintf(c.e.stdout, "created organization %s (%s)\nadmin token (shown once, store it now):\n\n  %s\n\n", o.GetName(), o.GetId(), resp.AdminToken)
			return nil
		}
	})
}
