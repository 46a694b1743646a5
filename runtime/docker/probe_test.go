package docker_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/atollhq/atoll/integration/testimage"
	"github.com/atollhq/atoll/runtime"
	"github.com/atollhq/atoll/runtime/docker"
)

// probeLabel is the label of the Docker runtime's probe containers (the
// ones that read an image's /etc/passwd to resolve file owners).
const probeLabel = "atoll.runtime.probe"

// probesOf lists, straight from the engine, the probe containers of a test scope.
func probesOf(t *testing.T, scope string) []container.Summary {
	t.Helper()
	cs, err := cli(t).ContainerList(ctxT(t), container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", probeLabel), filters.Arg("label", docker.TestLabel+"="+scope))})
	must(t, "ContainerList", err)
	return cs
}

// ownerSpec needs an owner lookup: its file belongs to a user named in the
// image's /etc/passwd.
func ownerSpec(t *testing.T, name, scope, image string) runtime.ContainerSpec {
	spec := docker.TestSpec(scope+"-"+name, image, scope)
	spec.Labels[runtime.LabelAlloc] = name
	spec.Files = []runtime.FileMount{{Content: []byte("x"), MountPath: "/etc/x.conf", Owner: testimage.AppUser}}
	return spec
}

// stallingCopy is the engine, except that reading a file out of a container
// announces the container and then waits for the context: an owner lookup
// stops half way, with its probe container created.
type stallingCopy struct {
	client.APIClient
	copying chan<- string
}

func (s stallingCopy) CopyFromContainer(ctx context.Context, id, _ string) (io.ReadCloser, container.PathStat, error) {
	select {
	case s.copying <- id:
	case <-ctx.Done():
	}
	<-ctx.Done()
	return nil, container.PathStat{}, ctx.Err()
}

func stallingRuntime(t *testing.T) (*docker.Runtime, <-chan string) {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	must(t, "docker client", err)
	copying := make(chan string, 1)
	cfg := docker.DefaultConfig()
	cfg.FilesDir = t.TempDir()
	rt, err := docker.NewWithClient(stallingCopy{APIClient: c, copying: copying}, cfg)
	must(t, "NewWithClient", err)
	t.Cleanup(func() { rt.Close() })
	return rt, copying
}

// A lookup that succeeds leaves no probe; one whose context ends half way
// removes its probe too; and RemoveStaleProbes leaves a probe in use alone.
func TestProbeGoneAfterLookupEvenWhenCancelled(t *testing.T) {
	t.Parallel()
	img := testimage.Ensure(t, "")
	rt, scope := docker.NewTestRuntime(t)
	id, err := rt.Create(ctxT(t), ownerSpec(t, "ok", scope, img))
	must(t, "Create", err)
	must(t, "Remove", rt.Remove(ctxT(t), id))
	if ps := probesOf(t, scope); len(ps) != 0 {
		t.Fatalf("probes left after a lookup: %+v", ps)
	}

	stalled, copying := stallingRuntime(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := stalled.Create(ctx, ownerSpec(t, "cancelled", scope, img))
		done <- err
	}()
	select {
	case <-copying:
	case err := <-done:
		t.Fatalf("Create returned before its lookup: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no lookup within 30s")
	}
	ps := probesOf(t, scope)
	if len(ps) != 1 {
		t.Fatalf("%d probes during the lookup, want 1", len(ps))
	}
	if ps[0].Labels[runtime.LabelAlloc] != "" || ps[0].State != "created" {
		t.Errorf("probe: labels %v, state %s (want no %s label, never started)", ps[0].Labels, ps[0].State, runtime.LabelAlloc)
	}
	if n, err := stalled.RemoveStaleProbes(ctxT(t), map[string]string{docker.TestLabel: scope}); n != 0 || err != nil {
		t.Fatalf("RemoveStaleProbes took a probe in use: %d %v", n, err)
	}
	if len(probesOf(t, scope)) != 1 {
		t.Fatal("the probe in use is gone")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Create: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Create did not return within 30s of its cancel")
	}
	if ps := probesOf(t, scope); len(ps) != 0 {
		t.Fatalf("probe left after a cancelled lookup: %+v", ps)
	}
	if cs, _ := rt.List(ctxT(t), map[string]string{docker.TestLabel: scope}); len(cs) != 0 {
		t.Fatalf("containers left: %+v", cs)
	}
}

// An agent process that dies (SIGKILL) during an owner lookup leaves its
// probe container behind; the next one removes it with RemoveStaleProbes,
// and only within its selector.
func TestStaleProbeOfKilledProcessRemoved(t *testing.T) {
	t.Parallel()
	img := testimage.Ensure(t, "")
	rt, scope := docker.NewTestRuntime(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestProbeHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "ATOLL_PROBE_HELPER=1", "ATOLL_PROBE_IMAGE="+img, "ATOLL_PROBE_SCOPE="+scope)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, "StdoutPipe", err)
	must(t, "start helper", cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(60 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("helper ended before its lookup")
			}
			if strings.HasPrefix(l, "PROBE-COPYING ") {
				break wait
			}
		case <-timeout:
			t.Fatal("helper: no lookup within 60s")
		}
	}
	must(t, "kill helper", cmd.Process.Kill())
	cmd.Wait()
	go func() {
		for range lines {
		}
	}()

	if ps := probesOf(t, scope); len(ps) != 1 {
		t.Fatalf("%d probes after the helper was killed, want the 1 it left", len(ps))
	}
	if n, err := rt.RemoveStaleProbes(ctxT(t), map[string]string{docker.TestLabel: scope + "-other"}); n != 0 || err != nil {
		t.Fatalf("RemoveStaleProbes of another selector: %d %v", n, err)
	}
	if n, err := rt.RemoveStaleProbes(ctxT(t), map[string]string{docker.TestLabel: scope}); n != 1 || err != nil {
		t.Fatalf("RemoveStaleProbes: %d %v, want 1 removed", n, err)
	}
	if ps := probesOf(t, scope); len(ps) != 0 {
		t.Fatalf("probes left: %+v", ps)
	}
}

// TestProbeHelperProcess is the agent process TestStaleProbeOfKilledProcessRemoved
// kills: it starts a Create that needs an owner lookup and stalls in it.
func TestProbeHelperProcess(t *testing.T) {
	if os.Getenv("ATOLL_PROBE_HELPER") != "1" {
		t.Skip("helper process of TestStaleProbeOfKilledProcessRemoved")
	}
	rt, copying := stallingRuntime(t)
	go func() {
		_, err := rt.Create(context.Background(), ownerSpec(t, "killed", os.Getenv("ATOLL_PROBE_SCOPE"), os.Getenv("ATOLL_PROBE_IMAGE")))
		t.Errorf("Create returned: %v", err)
	}()
	os.Stdout.WriteString("PROBE-COPYING " + <-copying + "\n")
	time.Sleep(time.Hour) // killed here
}
