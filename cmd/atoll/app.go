package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func appCommand() *command {
	return group("app", "manage the apps of an environment",
		appCreate(), appGet(), appList(), appUpdate(), appDelete(), appRestart(), appLogs(),
	)
}

func appClient(c *call) atollv1.AppServiceClient { return atollv1.NewAppServiceClient(c.conn) }

// envFlag registers the --env flag every environment-scoped command takes.
func envFlag(fs *flag.FlagSet) *string {
	return fs.String("env", "", "environment name or id (required)")
}

// needEnv resolves --env to an environment id.
func needEnv(c *call, env string) (string, error) {
	if env == "" {
		return "", usagef("--env is required: an environment name or id (see `atoll env list`)")
	}
	return resolveEnv(c, env, false)
}

// ---- flags shared by create and update

// publicFlag is --public or --public=PORT (or --public=false).
type publicFlag struct {
	on   bool
	port int32
}

func (p *publicFlag) String() string {
	switch {
	case !p.on:
		return "false"
	case p.port > 0:
		return strconv.Itoa(int(p.port))
	}
	return "true"
}

func (p *publicFlag) Set(s string) error {
	switch s {
	case "true":
		p.on, p.port = true, 0
		return nil
	case "false":
		p.on, p.port = false, 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("want --public or --public=PORT (1-65535), not %q", s)
	}
	p.on, p.port = true, int32(n)
	return nil
}

func (p *publicFlag) IsBoolFlag() bool { return true }

type appFlags struct {
	image, cpu, memory, storage, command, args *string
	replicas                                   *int
	ports, volumes, varsets, files, labels     multiFlag
	public                                     publicFlag
	active                                     *bool
	healthPath                                 *string
	healthPort                                 *int
	healthInterval                             *time.Duration
}

func (f *appFlags) register(fs *flag.FlagSet, create bool) {
	f.image = fs.String("image", "", "container image name:tag (tag defaults to latest)")
	f.cpu = fs.String("cpu", "", "per replica (create default 100m). "+cpuHelp)
	f.memory = fs.String("memory", "", "memory per replica (create default 128Mi). "+memHelp)
	f.storage = fs.String("storage", "", "filesystem storage per replica (writable layer + volumes), e.g. 1Gi")
	f.replicas = fs.Int("replicas", 0, "number of replicas (default 1)")
	f.command = fs.String("command", "", `command, split like a shell would ("/bin/sh -c 'echo hi'")`)
	f.args = fs.String("args", "", `arguments, split like a shell would ("-c 'echo hi'")`)
	fs.Var(&f.ports, "port", "container port NUMBER[/udp][:name] (repeatable)")
	fs.Var(&f.public, "public", "publish on a public hostname through the router: --public (the first port) or --public=PORT")
	fs.Var(&f.volumes, "volume", "mount a volume NAME:/path (repeatable)")
	fs.Var(&f.varsets, "varset", "variable set NAME whose variables become env vars (repeatable)")
	fs.Var(&f.files, "file", "mount a file NAME:/path[:owner] read-only (repeatable)")
	fs.Var(&f.labels, "label", "label key=value (repeatable)")
	f.healthPath = fs.String("health-path", "", "HTTP health check: GET this path (e.g. /healthz); 2xx/3xx is healthy, and only healthy instances get traffic (update: --health-path= removes the check)")
	f.healthPort = fs.Int("health-port", 0, "container port of the health check (default: the public port, else the first port)")
	f.healthInterval = fs.Duration("health-interval", 0, "time between health checks, whole seconds (default 10s)")
	if create {
		f.active = fs.Bool("inactive", false, "create it without running any instance")
	} else {
		f.active = fs.Bool("active", true, "run (true) or stop (false) its instances")
	}
}

// apply sets the fields of the flags given on app and returns their update-mask paths.
func (f *appFlags) apply(app *atollv1.App, set map[string]bool, create bool) ([]string, error) {
	var paths []string
	add := func(p string) {
		for _, q := range paths {
			if q == p {
				return
			}
		}
		paths = append(paths, p)
	}
	if set["image"] {
		name, tag, err := parseImage(*f.image)
		if err != nil {
			return nil, err
		}
		app.Source = &atollv1.AppSource{Image: &atollv1.ImageRef{Name: name, Tag: tag}}
		add("source")
	}
	if set["cpu"] || set["memory"] || set["storage"] {
		rr := proto.Clone(app.GetResourceRequests()).(*atollv1.ResourceRequests)
		if rr == nil {
			rr = &atollv1.ResourceRequests{}
		}
		if set["cpu"] {
			m, err := parseCPU(*f.cpu)
			if err != nil {
				return nil, usagef("--cpu: %v", err)
			}
			rr.Cpu = fmt.Sprintf("%dm", m)
		}
		if set["memory"] {
			mb, err := parseMB("memory", *f.memory)
			if err != nil {
				return nil, usagef("--memory: %v", err)
			}
			rr.Memory = fmt.Sprintf("%dMi", mb)
		}
		if set["storage"] {
			mb, err := parseMB("storage", *f.storage)
			if err != nil {
				return nil, usagef("--storage: %v", err)
			}
			rr.FilesystemStorage = fmt.Sprintf("%dMi", mb)
		}
		app.ResourceRequests = rr
		add("resourceRequests")
	}
	if set["replicas"] {
		if *f.replicas < 1 {
			return nil, usagef("--replicas must be at least 1 (use --inactive / --active=false to stop an app)")
		}
		app.Replicas = int32(*f.replicas)
		add("replicas")
	}
	if set["command"] {
		app.Command = structpb.NewStringValue(*f.command)
		add("command")
	}
	if set["args"] {
		app.Args = structpb.NewStringValue(*f.args)
		add("args")
	}
	if set["port"] {
		app.Ports = nil
		for _, s := range f.ports {
			p, err := parsePort(s)
			if err != nil {
				return nil, err
			}
			app.Ports = append(app.Ports, p)
		}
		add("ports")
	}
	if set["public"] {
		if !f.public.on {
			app.PublicEndpoint = nil
		} else {
			port := f.public.port
			if port == 0 {
				if len(app.Ports) == 0 {
					return nil, usagef("--public: give a --port, or the port to publish with --public=PORT")
				}
				port = app.Ports[0].Number
			}
			pe := proto.Clone(app.GetPublicEndpoint()).(*atollv1.PublicEndpoint)
			if pe == nil {
				pe = &atollv1.PublicEndpoint{}
			}
			pe.AppPort, pe.Hostname, pe.Url = port, "", ""
			app.PublicEndpoint = pe
		}
		add("publicEndpoint")
	} else if set["port"] && app.PublicEndpoint != nil && len(app.Ports) > 0 {
		// keep the public endpoint on a port that still exists
		found := false
		for _, p := range app.Ports {
			found = found || p.Number == app.PublicEndpoint.AppPort
		}
		if !found {
			app.PublicEndpoint.AppPort = app.Ports[0].Number
			add("publicEndpoint")
		}
	}
	if set["volume"] {
		app.VolumeMounts = nil
		for _, s := range f.volumes {
			name, path, ok := strings.Cut(s, ":")
			if !ok || name == "" || path == "" {
				return nil, usagef("--volume %q: want NAME:/path", s)
			}
			m := &atollv1.VolumeMount{Path: path}
			if strings.HasPrefix(name, "vol_") {
				m.VolIdRef = name
			} else {
				m.VolNameRef = name
			}
			app.VolumeMounts = append(app.VolumeMounts, m)
		}
		add("volumeMounts")
	}
	if set["varset"] {
		app.VariableSetMounts = nil
		for _, s := range f.varsets {
			if s == "" {
				return nil, usagef("--varset: empty name")
			}
			m := &atollv1.VariableSetMount{}
			if strings.HasPrefix(s, "vset_") {
				m.VarSetIdRef = s
			} else {
				m.VarSetNameRef = s
			}
			app.VariableSetMounts = append(app.VariableSetMounts, m)
		}
		add("variableSetMounts")
	}
	if set["file"] {
		app.FileMounts = nil
		for _, s := range f.files {
			parts := strings.SplitN(s, ":", 3)
			if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
				return nil, usagef("--file %q: want NAME:/path or NAME:/path:owner", s)
			}
			m := &atollv1.FileMount{MountPath: parts[1]}
			if len(parts) == 3 {
				m.FileOwner = parts[2]
			}
			if strings.HasPrefix(parts[0], "file_") {
				m.FileIdRef = parts[0]
			} else {
				m.FileNameRef = parts[0]
			}
			app.FileMounts = append(app.FileMounts, m)
		}
		add("fileMounts")
	}
	if set["health-path"] || set["health-port"] || set["health-interval"] {
		hc := proto.Clone(app.GetHealthCheck()).(*atollv1.HealthCheck)
		if hc == nil {
			hc = &atollv1.HealthCheck{}
		}
		if set["health-path"] {
			hc.HttpPath = *f.healthPath
		}
		if set["health-port"] {
			hc.Port = int32(*f.healthPort)
		}
		if set["health-interval"] {
			d := *f.healthInterval
			if d < time.Second || d%time.Second != 0 {
				return nil, usagef("--health-interval %s: want whole seconds, e.g. 10s", d)
			}
			hc.IntervalSeconds = int32(d / time.Second)
			if hc.TimeoutSeconds >= hc.IntervalSeconds {
				hc.TimeoutSeconds = 0 // the default again (less than the interval)
			}
		}
		app.HealthCheck = hc
		if set["health-path"] && *f.healthPath == "" && !set["health-port"] && !set["health-interval"] {
			app.HealthCheck = nil // --health-path= removes the check
		}
		add("healthCheck")
	}
	if set["label"] {
		lbl, _, err := parseLabels(f.labels, false)
		if err != nil {
			return nil, err
		}
		app.Labels = lbl
		add("labels")
	}
	if create && set["inactive"] {
		app.IsActive = proto.Bool(!*f.active)
		add("isActive")
	}
	if !create && set["active"] {
		app.IsActive = proto.Bool(*f.active)
		add("isActive")
	}
	return paths, nil
}

// parseImage splits name:tag; a colon before the last slash is a registry port.
func parseImage(s string) (name, tag string, err error) {
	if s == "" {
		return "", "", usagef("--image: empty (want name:tag, e.g. nginx:1.27)")
	}
	name, tag = s, "latest"
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		name, tag = s[:i], s[i+1:]
	}
	if name == "" || tag == "" {
		return "", "", usagef("--image %q: want name:tag, e.g. nginx:1.27", s)
	}
	return name, tag, nil
}

// parsePort reads NUMBER[/tcp|/udp][:name].
func parsePort(s string) (*atollv1.Port, error) {
	spec, name, _ := strings.Cut(s, ":")
	num, proto, _ := strings.Cut(spec, "/")
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 {
		return nil, usagef("--port %q: want NUMBER[/udp][:name] with a number 1-65535", s)
	}
	proto = strings.ToUpper(proto)
	if proto != "" && proto != "TCP" && proto != "UDP" {
		return nil, usagef("--port %q: protocol must be tcp or udp", s)
	}
	return &atollv1.Port{Number: int32(n), Protocol: proto, Name: name}, nil
}

// ---- commands

func appCreate() *command {
	return leaf("app create", "NAME", "create an app: containers of an image, with requests, ports and mounts", 0, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		file := fs.String("f", "", "read the app from a JSON file (the API's body; flags override it)")
		var af appFlags
		af.register(fs, true)
		wait := fs.Bool("wait", false, "wait until every replica runs (or fails) and print the progress")
		timeout := fs.Duration("timeout", 2*time.Minute, "with --wait: how long to wait")
		return func(c *call) error {
			app := &atollv1.App{}
			if *file != "" {
				b, err := os.ReadFile(*file)
				if err != nil {
					return err
				}
				if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, app); err != nil {
					return usagef("-f %s: not an app in JSON: %v", *file, err)
				}
			}
			if len(c.args) == 1 {
				app.Name = c.args[0]
			}
			if app.Name == "" {
				return usagef("usage: atoll app create NAME --env ENV --image name:tag [flags] (or -f app.json with a name)")
			}
			set := setFlags(fs)
			if *file == "" && !set["image"] {
				return usagef("atoll app create: --image is required (e.g. --image nginx:1.27)")
			}
			if _, err := af.apply(app, set, true); err != nil {
				return err
			}
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			if app.GetResourceRequests().GetCpu() == "" || app.GetResourceRequests().GetMemory() == "" {
				// sensible defaults for a first try
				rr := proto.Clone(app.GetResourceRequests()).(*atollv1.ResourceRequests)
				if rr == nil {
					rr = &atollv1.ResourceRequests{}
				}
				if rr.Cpu == "" {
					rr.Cpu = "100m"
				}
				if rr.Memory == "" {
					rr.Memory = "128Mi"
				}
				app.ResourceRequests = rr
			}
			start := time.Now()
			out, err := appClient(c).CreateApp(c.ctx, &atollv1.CreateAppRequest{EnvId: envID, App: app})
			if err != nil {
				return err
			}
			if !*wait {
				if c.json() {
					return printJSON(c.e.stdout, out)
				}
				fmt.Fprintf(c.e.stdout, "created app %s (%s) version %d: %s, %d replica(s)\n", out.Name, out.Id, out.Version, imageOf(out), out.Replicas)
				if u := out.GetPublicEndpoint().GetUrl(); u != "" {
					fmt.Fprintf(c.e.stdout, "  %s\n", u)
				}
				return nil
			}
			if !c.json() {
				fmt.Fprintf(c.e.stdout, "created app %s (%s) version %d\n", out.Name, out.Id, out.Version)
			}
			return waitApp(c, envID, *env, out, start, *timeout)
		}
	})
}

func imageOf(a *atollv1.App) string {
	img := a.GetSource().GetImage()
	return img.GetName() + ":" + img.GetTag()
}

// nodeNames maps node ids to names (ids stay as they are if nodes cannot be listed).
func nodeNames(c *call) map[string]string {
	m := map[string]string{}
	resp, err := nodeClient(c).ListNodes(c.ctx, &atollv1.ListNodesRequest{})
	if err != nil {
		return m
	}
	for _, n := range resp.Nodes {
		m[n.Id] = n.Name
	}
	return m
}

func nodeName(names map[string]string, id string) string {
	if id == "" {
		return "-"
	}
	if n, ok := names[id]; ok && n != "" {
		return n
	}
	return id
}

func shortID(id string) string {
	if _, rest, ok := strings.Cut(id, "_"); ok && len(rest) > 8 {
		return rest[:8]
	}
	return id
}

// waitApp polls the app until all its replicas of the current version run,
// an instance cannot run, or the timeout ends, printing each step once.
// envRef is the environment as the user named it, for the hints.
func waitApp(c *call, envID, envRef string, app *atollv1.App, start time.Time, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	w := c.e.stdout
	if c.json() {
		w = io.Discard
	}
	names := nodeNames(c)
	seen := map[string]bool{}
	say := func(key, format string, args ...any) {
		if !seen[key] {
			seen[key] = true
			fmt.Fprintf(w, "  "+format+"\n", args...)
		}
	}
	lastRunning := int32(-1)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		a, err := appClient(c).GetApp(ctx, &atollv1.GetAppRequest{EnvId: envID, AppId: app.Id})
		if err != nil {
			if ctx.Err() != nil && c.ctx.Err() == nil {
				return waitTimeout(app, envRef, timeout)
			}
			return err
		}
		app = a
		st := a.GetStatus()
		// running counts the instances of the new version only: during a
		// rollout the old ones run too, and are no news.
		running, healthy := int32(0), int32(0)
		for _, in := range st.GetInstances() {
			if in.AppVersion != specVersion(a) {
				continue
			}
			if in.State == atollv1.InstanceState_INSTANCE_RUNNING {
				running++
				if in.Healthy {
					healthy++
				} else if in.HealthMessage != "" {
					say("unhealthy/"+in.Id+"/"+in.HealthMessage, "✗ %s unhealthy: %s", shortID(in.Id), in.HealthMessage)
				}
			}
			if in.NodeId != "" {
				if _, ok := names[in.NodeId]; !ok {
					names = nodeNames(c)
				}
				say("sched/"+in.Id, "✓ scheduled %s on %s", shortID(in.Id), nodeName(names, in.NodeId))
			}
			switch in.State {
			case atollv1.InstanceState_INSTANCE_ERROR, atollv1.InstanceState_INSTANCE_FAILED:
				if in.LastError != "" {
					say("err/"+in.Id+"/"+in.LastError, "✗ %s on %s: %s", shortID(in.Id), nodeName(names, in.NodeId), in.LastError)
				}
			}
		}
		if running != lastRunning && running > 0 {
			lastRunning = running
			fmt.Fprintf(w, "  ✓ started (%d/%d running)\n", running, st.GetDesired())
		}
		checked := a.GetHealthCheck() != nil
		if checked && running > 0 && healthy == running && running >= st.GetDesired() {
			say("healthy", "✓ healthy (%d/%d)", healthy, st.GetDesired())
		}
		if st.GetState() == "PENDING" && st.GetMessage() != "" {
			say("pending/"+st.GetMessage(), "… pending: %s", st.GetMessage())
		}
		if ro := st.GetRollout(); ro.GetState() == "FAILED" {
			return fmt.Errorf("app %s: %s\n  see `atoll app get %s --env %s`; a new update supersedes the failed rollout", a.Name, ro.GetMessage(), a.Name, envRef)
		}
		state := st.GetState()
		if state == "RUNNING" && checked && healthy < st.GetDesired() {
			state = "" // running, not yet healthy: wait for the checks
		}
		switch state {
		case "RUNNING", "STOPPED":
			if c.json() {
				return printJSON(c.e.stdout, a)
			}
			fmt.Fprintf(w, "  %s (%.1f s)\n", st.GetState(), time.Since(start).Seconds())
			if u := a.GetPublicEndpoint().GetUrl(); u != "" {
				fmt.Fprintf(w, "  %s\n", u)
			}
			return nil
		case "FAILED":
			for _, in := range st.GetInstances() {
				if in.State == atollv1.InstanceState_INSTANCE_ERROR && in.AppVersion == specVersion(a) {
					return fmt.Errorf("app %s failed: %s\n  see `atoll app get %s --env %s`", a.Name, orDash(in.LastError), a.Name, envRef)
				}
			}
		}
		select {
		case <-ctx.Done():
			if c.ctx.Err() != nil {
				return c.ctx.Err()
			}
			return waitTimeout(app, envRef, timeout)
		case <-tick.C:
		}
	}
}

func waitTimeout(a *atollv1.App, envRef string, timeout time.Duration) error {
	st := a.GetStatus()
	msg := fmt.Sprintf("app %s not running after %s: %s, %d/%d running", a.Name, timeout, orDash(st.GetState()), st.GetRunning(), st.GetDesired())
	if st.GetMessage() != "" {
		msg += ": " + st.GetMessage()
	}
	return errors.New(msg + "\n  see `atoll app get " + a.Name + " --env " + envRef + "`")
}

func appGet() *command {
	return leaf("app get", "NAME|ID", "show an app and each of its instances: node, state, restarts, last error", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			a, err := appClient(c).GetApp(c.ctx, &atollv1.GetAppRequest{EnvId: envID, AppId: c.args[0]})
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(c.e.stdout, a)
			}
			envName := a.EnvIdRef
			if *env != envID {
				envName = *env + " (" + envID + ")"
			}
			printApp(c.e.stdout, a, envName, nodeNames(c))
			return nil
		}
	})
}

func printApp(w io.Writer, a *atollv1.App, envName string, names map[string]string) {
	now := time.Now()
	st := a.GetStatus()
	rq := a.GetRequests()
	state := fmt.Sprintf("%s (%d/%d running)", orDash(st.GetState()), st.GetRunning(), st.GetDesired())
	if st.GetMessage() != "" {
		state += ": " + st.GetMessage()
	}
	rows := [][]string{
		{"ID:", a.Id},
		{"Name:", a.Name},
		{"Environment:", envName},
		{"Image:", imageOf(a)},
		{"Replicas:", strconv.Itoa(int(a.Replicas))},
		{"Requests:", fmt.Sprintf("cpu %s  memory %s  storage %s (per replica)", fmtCPU(rq.GetCpu()), fmtMB(rq.GetMemory()), fmtMB(rq.GetStorage()))},
		{"Status:", state},
	}
	if ro := st.GetRollout(); ro != nil {
		rows = append(rows, []string{"Rollout:", fmt.Sprintf("to version %d %s (%s): %d updated, %d outdated",
			ro.Version, ro.State, ro.Strategy, ro.Updated, ro.Outdated)})
	}
	if a.IsActive != nil && !*a.IsActive {
		rows = append(rows, []string{"Active:", "no"})
	}
	if len(a.Ports) > 0 {
		ps := make([]string, len(a.Ports))
		for i, p := range a.Ports {
			ps[i] = fmt.Sprintf("%d/%s", p.Number, orDash(p.Protocol))
			if p.Name != "" {
				ps[i] += " (" + p.Name + ")"
			}
		}
		rows = append(rows, []string{"Ports:", strings.Join(ps, ", ")})
	}
	if pe := a.PublicEndpoint; pe != nil {
		rows = append(rows, []string{"Public:", fmt.Sprintf("%s -> port %d", orDash(pe.Url), pe.AppPort)})
	}
	if len(a.ResolvedCommand) > 0 {
		rows = append(rows, []string{"Command:", strings.Join(a.ResolvedCommand, " ")})
	}
	if len(a.ResolvedArgs) > 0 {
		rows = append(rows, []string{"Args:", strings.Join(a.ResolvedArgs, " ")})
	}
	for _, m := range a.VolumeMounts {
		rows = append(rows, []string{"Volume:", orDash(m.VolNameRef) + " at " + m.Path})
	}
	for _, m := range a.VariableSetMounts {
		rows = append(rows, []string{"Variables:", orDash(m.VarSetNameRef)})
	}
	for _, m := range a.FileMounts {
		s := orDash(m.FileNameRef) + " at " + m.MountPath
		if m.FileOwner != "" {
			s += " (owner " + m.FileOwner + ")"
		}
		rows = append(rows, []string{"File:", s})
	}
	if len(a.Labels) > 0 {
		rows = append(rows, []string{"Labels:", fmtMap(a.Labels)})
	}
	rows = append(rows,
		[]string{"Created:", fmt.Sprintf("%s ago by %s", ago(a.GetCreatedAt().AsTime(), now), orDash(a.CreatedBy))},
		[]string{"Version:", fmt.Sprintf("%d (last change by %s, %s ago)", a.Version, orDash(a.ModifiedBy), ago(a.GetUpdatedAt().AsTime(), now))},
	)
	tw := tableWriter(w)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	fmt.Fprintln(w)
	if len(st.GetInstances()) == 0 {
		fmt.Fprintln(w, "no instances")
		return
	}
	var irows [][]string
	for _, in := range st.GetInstances() {
		started := in.GetCreatedAt().AsTime()
		if in.StartedAt != nil {
			started = in.StartedAt.AsTime()
		}
		state := strings.TrimPrefix(in.State.String(), "INSTANCE_")
		if in.AppVersion != specVersion(a) {
			state += fmt.Sprintf(" (v%d)", in.AppVersion)
		}
		irows = append(irows, []string{in.Id, nodeName(names, in.NodeId), state, instanceHealth(a, in), strconv.Itoa(int(in.Restarts)),
			orDash(oneLine(in.LastError)), ago(started, now)})
	}
	table(w, []string{"INSTANCE", "NODE", "STATE", "HEALTH", "RESTARTS", "LAST ERROR", "AGE"}, irows)
}

// instanceHealth is the HEALTH column: healthy, unhealthy (why), pending
// (running, not checked yet) or - (no health check, or not running).
func instanceHealth(a *atollv1.App, in *atollv1.Instance) string {
	switch {
	case in.State != atollv1.InstanceState_INSTANCE_RUNNING:
		return "-"
	case in.Healthy:
		return "healthy"
	case in.HealthMessage != "":
		return "unhealthy: " + oneLine(in.HealthMessage)
	case a.GetHealthCheck() != nil && in.AppVersion == specVersion(a):
		return "pending"
	}
	return "-"
}

// specVersion is the version of the app's container spec: instances of
// another version are being replaced by a rollout.
func specVersion(a *atollv1.App) int64 {
	if a.SpecVersion > 0 {
		return a.SpecVersion
	}
	return a.Version
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

func appList() *command {
	return leaf("app list", "", "list the apps of an environment", 0, 0, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		all := fs.Bool("all", false, "include deleted apps")
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			full := &atollv1.ListAppsResponse{}
			req := &atollv1.ListAppsRequest{EnvId: envID, PageSize: 100, IncludeDeleted: *all}
			for {
				resp, err := appClient(c).ListApps(c.ctx, req)
				if err != nil {
					return err
				}
				full.Apps = append(full.Apps, resp.Apps...)
				full.TotalCount = resp.TotalCount
				if resp.NextPageToken == "" {
					break
				}
				req.PageToken = resp.NextPageToken
			}
			return c.print(full, func(w io.Writer) {
				rows := make([][]string, len(full.Apps))
				for i, a := range full.Apps {
					st := a.GetStatus()
					state := orDash(st.GetState())
					if ro := st.GetRollout(); ro.GetState() == "FAILED" {
						state += fmt.Sprintf(" (rollout to v%d failed)", ro.Version)
					}
					rows[i] = []string{a.Name, imageOf(a), strconv.Itoa(int(a.Replicas)),
						fmt.Sprintf("%d/%d", st.GetRunning(), st.GetDesired()), state, orDash(a.GetPublicEndpoint().GetUrl())}
				}
				table(w, []string{"NAME", "IMAGE", "REPLICAS", "RUNNING", "STATE", "URL"}, rows)
			})
		}
	})
}

func appUpdate() *command {
	return leaf("app update", "NAME|ID", "change an app (a new version; instances are replaced one at a time)", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		var af appFlags
		af.register(fs, false)
		wait := fs.Bool("wait", false, "wait until every replica of the new version runs (or fails)")
		timeout := fs.Duration("timeout", 2*time.Minute, "with --wait: how long to wait")
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			start := time.Now()
			var out *atollv1.App
			var paths []string
			// Another change in between (ABORTED: version moved): re-read and re-apply the flags.
			for attempt := 0; ; attempt++ {
				cur, err := appClient(c).GetApp(c.ctx, &atollv1.GetAppRequest{EnvId: envID, AppId: c.args[0]})
				if err != nil {
					return err
				}
				next := proto.Clone(cur).(*atollv1.App)
				paths, err = af.apply(next, setFlags(fs), false)
				if err != nil {
					return err
				}
				if len(paths) == 0 {
					return usagef("atoll app update: nothing to change (give e.g. --image, --replicas, --cpu; see --help)")
				}
				out, err = appClient(c).UpdateApp(c.ctx, &atollv1.UpdateAppRequest{EnvId: envID, AppId: cur.Id, App: next,
					UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
				if status.Code(err) == codes.Aborted && attempt < 3 {
					continue
				}
				if err != nil {
					return err
				}
				break
			}
			if *wait {
				if !c.json() {
					fmt.Fprintf(c.e.stdout, "updated app %s to version %d (%s)\n", out.Name, out.Version, changedWhat(paths))
				}
				return waitApp(c, envID, *env, out, start, *timeout)
			}
			if c.json() {
				return printJSON(c.e.stdout, out)
			}
			fmt.Fprintf(c.e.stdout, "updated app %s to version %d (%s)\n", out.Name, out.Version, changedWhat(paths))
			return nil
		}
	})
}

func appDelete() *command {
	return leaf("app delete", "NAME|ID", "delete an app and stop its instances", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			if _, err := appClient(c).DeleteApp(c.ctx, &atollv1.DeleteAppRequest{EnvId: envID, AppId: c.args[0]}); err != nil {
				return err
			}
			if c.json() {
				fmt.Fprintf(c.e.stdout, "{\"app\": %q, \"deleted\": true}\n", c.args[0])
				return nil
			}
			fmt.Fprintf(c.e.stdout, "deleted app %s\n", c.args[0])
			return nil
		}
	})
}

func appRestart() *command {
	return leaf("app restart", "NAME|ID", "replace every instance of an app, one at a time", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		wait := fs.Bool("wait", false, "wait until every replica runs again (or fails)")
		timeout := fs.Duration("timeout", 2*time.Minute, "with --wait: how long to wait")
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			start := time.Now()
			out, err := appClient(c).RestartApp(c.ctx, &atollv1.RestartAppRequest{EnvId: envID, AppId: c.args[0]})
			if err != nil {
				return err
			}
			if *wait {
				if !c.json() {
					fmt.Fprintf(c.e.stdout, "restarting app %s (version %d)\n", out.Name, out.Version)
				}
				return waitApp(c, envID, *env, out, start, *timeout)
			}
			if c.json() {
				return printJSON(c.e.stdout, out)
			}
			fmt.Fprintf(c.e.stdout, "restarting app %s (version %d)\n", out.Name, out.Version)
			return nil
		}
	})
}

func appLogs() *command {
	return leaf("app logs", "NAME|ID", "print an app's logs, every replica merged by time; -f follows", 1, 1, func(fs *flag.FlagSet) func(*call) error {
		env := envFlag(fs)
		follow := fs.Bool("f", false, "follow: keep printing new lines (each once; new instances of the app join) until Ctrl-C")
		since := fs.String("since", "", "only lines newer than this, e.g. 10m, 2h")
		lines := fs.Int("lines", -1, "the newest lines first, over all replicas (default 100, at most 1000); with -f, 0 prints only new lines")
		fs.IntVar(lines, "tail", -1, "same as --lines")
		inst := fs.String("instance", "", "one instance (its id) instead of all")
		return func(c *call) error {
			envID, err := needEnv(c, *env)
			if err != nil {
				return err
			}
			n := *lines
			switch {
			case n == 0 && !*follow:
				return usagef("--lines 0 prints nothing without -f (with -f: only new lines)")
			case n < 0:
				n = 100 // the server's default; sent, since 0 with follow means no history
			}
			stream, err := appClient(c).GetAppLogs(c.ctx, &atollv1.GetAppLogsRequest{EnvId: envID, AppId: c.args[0],
				Lines: int32(n), Since: *since, Follow: *follow, InstanceId: *inst})
			if err != nil {
				return err
			}
			for {
				l, err := stream.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					if c.ctx.Err() != nil || status.Code(err) == codes.Canceled {
						return nil // Ctrl-C
					}
					return err
				}
				if c.json() {
					b, _ := jsonLine.Marshal(l)
					fmt.Fprintln(c.e.stdout, string(b))
					continue
				}
				if l.Stream == "atoll" { // a notice (an instance's stream ended, ...), not the app's output
					fmt.Fprintf(c.e.stderr, "atoll: %s\n", l.Message)
					continue
				}
				ts := "-"
				if l.Timestamp != nil {
					ts = l.Timestamp.AsTime().Local().Format(logTime)
				}
				fmt.Fprintf(c.e.stdout, "%s %s %s\n", ts, shortID(l.InstanceId), strings.TrimRight(l.Message, "\n"))
			}
		}
	})
}

// logTime is the timestamp of a log line: fixed width, milliseconds.
const logTime = "2006-01-02T15:04:05.000Z07:00"

// changedWhat names an update's mask paths as the flags that set them.
func changedWhat(paths []string) string {
	names := map[string]string{
		"source": "image", "resourceRequests": "resources", "publicEndpoint": "public endpoint",
		"volumeMounts": "volumes", "variableSetMounts": "variable sets", "fileMounts": "files", "isActive": "active",
		"healthCheck": "health check",
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = p
		if n, ok := names[p]; ok {
			out[i] = n
		}
	}
	return strings.Join(out, ", ")
}
