package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func releaseCommand() *command {
	return group("release", "releases of a project's apps; deploy them to environments (create, list, get, deploy, undeploy, history)",
		releaseCreate(), releaseList(), releaseGet(), releaseDeploy(), releaseUndeploy(), releaseHistory())
}

func releaseClient(c *call) atollv1.ReleaseServiceClient {
	return atollv1.NewReleaseServiceClient(c.conn)
}

// releaseProject resolves --project; empty means the organization's default project.
func releaseProject(c *call, arg string) (string, error) {
	if arg != "" {
		return resolveProject(c, arg)
	}
	req := &atollv1.ListProjectsRequest{PageSize: 100}
	for {
		resp, err := projectClient(c).ListProjects(c.ctx, req)
		if err != nil {
			return "", err
		}
		for _, p := range resp.Projects {
			if p.IsDefault {
				return p.Id, nil
			}
		}
		if resp.NextPageToken == "" {
			return "", usagef("--project is required: the organization has no default project")
		}
		req.PageToken = resp.NextPageToken
	}
}

// resolveRelease turns rel_... or APP@VERSION (in project) into a release id.
func resolveRelease(c *call, arg, projectID string) (string, error) {
	if strings.HasPrefix(arg, "rel_") {
		return arg, nil
	}
	app, ver, ok := strings.Cut(arg, "@")
	if !ok || app == "" || ver == "" {
		return "", usagef("%q: want a release id (rel_...) or APP@VERSION", arg)
	}
	resp, err := releaseClient(c).ListReleases(c.ctx, &atollv1.ListReleasesRequest{ProjectId: projectID, AppName: app})
	if err != nil {
		return "", err
	}
	for _, r := range resp.Releases {
		if r.Version == ver {
			return r.Id, nil
		}
	}
	return "", fmt.Errorf("not found: no release %s of app %s in project %s (run `atoll release list --app %s`)", ver, app, projectID, app)
}

var releaseHeader = []string{"ID", "APP", "VERSION", "IMAGE", "CREATED BY", "AGE"}

func releaseRow(r *atollv1.Release, now time.Time) []string {
	img := r.GetSource().GetImage()
	return []string{r.Id, r.AppName, r.Version, img.GetName() + ":" + img.GetTag(), orDash(r.CreatedBy), ago(r.GetCreatedAt().AsTime(), now)}
}

func releaseCreate() *command {
	return leaf("release create", "APP", "create an immutable release VERSION of app APP: its image and the defaults used when a deploy creates the app", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		project := fs.String("project", "", "project name or id (default: the organization's default project)")
		version := fs.String("version", "", "release version, unique per app of the project, e.g. 1.4.2 (required)")
		image := fs.String("image", "", "container image name:tag (required)")
		desc := fs.String("description", "", "what changed")
		cpu := fs.String("cpu", "", "default per-replica CPU when a deploy creates the app (default 100m). "+cpuHelp)
		mem := fs.String("memory", "", "default per-replica memory when a deploy creates the app (default 128Mi). "+memHelp)
		var ports multiFlag
		fs.Var(&ports, "port", "container port NUMBER[/udp][:name] (repeatable)")
		var public publicFlag
		fs.Var(&public, "public", "publish on a public hostname: --public (the first port) or --public=PORT")
		return func(c *call) error {
			if *version == "" {
				return usagef("atoll release create: --version is required (e.g. --version 1.4.2)")
			}
			name, tag, err := parseImage(*image)
			if err != nil {
				return err
			}
			r := &atollv1.Release{AppName: c.args[0], Version: *version, Description: *desc,
				Source: &atollv1.AppSource{Image: &atollv1.ImageRef{Name: name, Tag: tag}}}
			if *cpu != "" || *mem != "" {
				r.ResourceRequests = &atollv1.ResourceRequests{Cpu: *cpu, Memory: *mem}
			}
			for _, p := range ports {
				pt, err := parsePort(p)
				if err != nil {
					return err
				}
				r.Ports = append(r.Ports, pt)
			}
			if public.on {
				port := public.port
				if port == 0 {
					if len(r.Ports) == 0 {
						return usagef("--public needs a --port (or --public=PORT)")
					}
					port = r.Ports[0].Number
				}
				r.PublicEndpoint = &atollv1.PublicEndpoint{AppPort: port}
			}
			prj, err := releaseProject(c, *project)
			if err != nil {
				return err
			}
			out, err := releaseClient(c).CreateRelease(c.ctx, &atollv1.CreateReleaseRequest{ProjectId: prj, Release: r})
			if err != nil {
				return err
			}
			return c.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "created release %s of %s (%s): %s:%s\n", out.Version, out.AppName, out.Id, name, tag)
			})
		}
	})
}

func releaseList() *command {
	return leaf("release list", "", "list a project's releases, newest first", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		project := fs.String("project", "", "project name or id (default: the organization's default project)")
		app := fs.String("app", "", "only the releases of this app")
		return func(c *call) error {
			prj, err := releaseProject(c, *project)
			if err != nil {
				return err
			}
			resp, err := releaseClient(c).ListReleases(c.ctx, &atollv1.ListReleasesRequest{ProjectId: prj, AppName: *app})
			if err != nil {
				return err
			}
			return c.print(resp, func(w io.Writer) {
				now := time.Now()
				rows := make([][]string, len(resp.Releases))
				for i, r := range resp.Releases {
					rows[i] = releaseRow(r, now)
				}
				table(w, releaseHeader, rows)
			})
		}
	})
}

func releaseGet() *command {
	return leaf("release get", "RELEASE_ID", "show a release", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		return func(c *call) error {
			r, err := releaseClient(c).GetRelease(c.ctx, &atollv1.GetReleaseRequest{ReleaseId: c.args[0]})
			if err != nil {
				return err
			}
			return c.print(r, func(w io.Writer) {
				table(w, releaseHeader, [][]string{releaseRow(r, time.Now())})
				if rr := r.GetResourceRequests(); rr != nil {
					fmt.Fprintf(w, "\ndefault requests: cpu %s, memory %s\n", orDash(rr.Cpu), orDash(rr.Memory))
				}
				if r.Description != "" {
					fmt.Fprintf(w, "\n%s\n", r.Description)
				}
			})
		}
	})
}

// envProject returns the project of an environment.
func envProject(c *call, envID string) (string, error) {
	e, err := envClient(c).GetEnvironment(c.ctx, &atollv1.GetEnvironmentRequest{EnvironmentId: envID})
	if err != nil {
		return "", err
	}
	return e.ProjectId, nil
}

func releaseDeploy() *command {
	return leaf("release deploy", "RELEASE", "deploy a release (rel_... or APP@VERSION) to an environment: creates the app, or rolls the existing one to the release's image", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		app := fs.String("app", "", "the app (name or id) to deploy to (default: the release's app name)")
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			relID := c.args[0]
			if !strings.HasPrefix(relID, "rel_") {
				prj, err := envProject(c, envID)
				if err != nil {
					return err
				}
				if relID, err = resolveRelease(c, relID, prj); err != nil {
					return err
				}
			}
			out, err := releaseClient(c).DeployRelease(c.ctx, &atollv1.DeployReleaseRequest{EnvironmentId: envID, ReleaseId: relID, AppId: *app})
			if err != nil {
				return err
			}
			return c.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "%s\n  deployment %s, app %s\n", out.Message, out.DeploymentId, out.AppId)
				if p := out.GetDeployment().GetPreviousReleaseId(); p != "" {
					fmt.Fprintf(w, "  previous release %s\n", p)
				}
			})
		}
	})
}

func releaseUndeploy() *command {
	return leaf("release undeploy", "APP", "remove a deployed app (name or id) from an environment: its instances stop and go", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			out, err := releaseClient(c).UndeployApp(c.ctx, &atollv1.UndeployAppRequest{EnvironmentId: envID, AppId: c.args[0]})
			if err != nil {
				return err
			}
			return c.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "%s\n  deployment %s\n", out.Message, out.DeploymentId)
			})
		}
	})
}

func releaseHistory() *command {
	return leaf("release history", "", "the deployments of an environment, newest first (WHEN WHO ACTION APP RELEASE PREVIOUS)", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		app := fs.String("app", "", "only the deployments of this app (name)")
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			resp, err := releaseClient(c).ListDeployments(c.ctx, &atollv1.ListDeploymentsRequest{EnvironmentId: envID})
			if err != nil {
				return err
			}
			if *app != "" {
				var keep []*atollv1.Deployment
				for _, d := range resp.Deployments {
					if d.AppName == *app || d.AppId == *app {
						keep = append(keep, d)
					}
				}
				resp.Deployments, resp.TotalCount = keep, int32(len(keep))
			}
			// Show versions rather than ids when the releases can be read.
			names := map[string]string{}
			if prj, err := envProject(c, envID); err == nil {
				if rs, err := releaseClient(c).ListReleases(c.ctx, &atollv1.ListReleasesRequest{ProjectId: prj}); err == nil {
					for _, r := range rs.Releases {
						names[r.Id] = r.Version + " (" + r.Id + ")"
					}
				}
			}
			rel := func(id string) string {
				if n, ok := names[id]; ok {
					return n
				}
				return orDash(id)
			}
			return c.print(resp, func(w io.Writer) {
				rows := make([][]string, len(resp.Deployments))
				for i, d := range resp.Deployments {
					rows[i] = []string{d.GetDeployedAt().AsTime().UTC().Format(time.RFC3339), orDash(d.DeployedBy), d.Action, d.AppName,
						rel(d.ReleaseId), rel(d.PreviousReleaseId)}
				}
				table(w, []string{"WHEN", "WHO", "ACTION", "APP", "RELEASE", "PREVIOUS"}, rows)
			})
		}
	})
}
