// Package testimage builds the container image that atoll's runtime and
// integration tests run: integration/testapp compiled statically
// (CGO_ENABLED=0) into a FROM scratch image, through the Engine API's
// ImageBuild with a tar context. It needs the go toolchain and a Docker
// Engine, but no docker CLI and no registry.
//
// The image carries a label with a hash of everything that goes into it, so
// Ensure skips the build when an identical image is already there.
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// DefaultTag is the tag Ensure uses when given "".
const DefaultTag = "atoll-testapp:dev"

// HashLabel is the image label holding the content hash.
const HashLabel = "atoll.testimage.hash"

// Users in the image's /etc/passwd and /etc/group, for owner lookups.
const (
	AppUser  = "app"   // uid 1000, primary group app (1000)
	AppUID   = 1000    //
	AppGID   = 1000    //
	StaffGrp = "staff" // gid 50
	StaffGID = 50      //
)

const passwd = `root:x:0:0:root:/root:/sbin/nologin
app:x:1000:1000:app:/home/app:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
`

const group = `root:x:0:
staff:x:50:app
app:x:1000:
nogroup:x:65534:
`

// dockerfile is completed with the hash label.
const dockerfile = `FROM scratch
COPY etc/ /etc/
COPY testapp /testapp
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["/testapp"]
`

// Build compiles integration/testapp for the engine's architecture and
// builds it into an image tagged tag, unless an image with that tag and the
// same content hash exists already.
func Build(ctx context.Context, cli client.APIClient, tag string) error {
	if tag == "" {
		tag = DefaultTag
	}
	ver, err := cli.ServerVersion(ctx)
	if err != nil {
		return fmt.Errorf("testimage: docker version: %w", err)
	}
	src, err := sourceDir()
	if err != nil {
		return err
	}
	hash, err := contentHash(src, ver.Arch)
	if err != nil {
		return err
	}
	old, err := cli.ImageInspect(ctx, tag)
	if err == nil && old.Config != nil && old.Config.Labels[HashLabel] == hash {
		return nil
	}

	tmp, err := os.MkdirTemp("", "atoll-testimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "testapp")
	gobin, err := goTool()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+ver.Arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testimage: go build %s: %w\n%s", src, err, out)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{"etc/passwd", 0o644, []byte(passwd)},
		{"etc/group", 0o644, []byte(group)},
		{"testapp", 0o755, binary},
	} {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}

	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      map[string]string{HashLabel: hash},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("testimage: image build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if err := readBuildStream(resp.Body); err != nil {
		return fmt.Errorf("testimage: image build %s: %w", tag, err)
	}
	img, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		return fmt.Errorf("testimage: built %s but cannot inspect it: %w", tag, err)
	}
	if img.Config == nil || img.Config.Labels[HashLabel] != hash {
		return fmt.Errorf("testimage: built %s but its hash label is not %s", tag, hash)
	}
	// The image the tag pointed to before is now untagged: remove it
	// unless a container still uses it (or another build already did).
	if old.ID != "" && old.ID != img.ID {
		cli.ImageRemove(ctx, old.ID, image.RemoveOptions{PruneChildren: true})
	}
	return nil
}

// readBuildStream consumes the JSON message stream of a build and returns
// the first error it reports.
func readBuildStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	var log strings.Builder
	for {
		var m struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading build output: %w", err)
		}
		log.WriteString(m.Stream)
		if m.Error != "" || m.ErrorDetail.Message != "" {
			msg := m.ErrorDetail.Message
			if msg == "" {
				msg = m.Error
			}
			return fmt.Errorf("%s\n%s", msg, log.String())
		}
	}
}

// sourceDir finds integration/testapp: beside this file when the sources are
// there, else through go list.
func sourceDir() (string, error) {
	if _, file, _, ok := goruntime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "testapp")
		if _, err := os.Stat(filepath.Join(dir, "main.go")); err == nil {
			return filepath.Clean(dir), nil
		}
	}
	gobin, err := goTool()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(gobin, "list", "-f", "{{.Dir}}", "github.com/atollhq/atoll/integration/testapp").Output()
	if err != nil {
		return "", fmt.Errorf("testimage: cannot find integration/testapp: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(goruntime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("testimage: no go toolchain in PATH or GOROOT")
	}
	return p, nil
}

// contentHash covers everything that goes into the image: the app's source
// files, the toolchain version, the target architecture and the image's
// fixed files.
func contentHash(src, arch string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00%s\x00%s\x00%s\x00%s\x00", goruntime.Version(), arch, dockerfile, passwd, group)
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", fmt.Errorf("testimage: %w", err)
	}
	names := []string{}
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			return "", fmt.Errorf("testimage: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

var (
	ensureMu sync.Mutex
	ensured  = map[string]*ensureOnce{}
)

type ensureOnce struct {
	once sync.Once
	err  error
}

// Ensure builds the test image (tag "" means DefaultTag) once per process and
// returns its tag; later calls wait for the first and share its result. It
// fails the test if the image cannot be built.
func Ensure(t testing.TB, tag string) string {
	t.Helper()
	if tag == "" {
		tag = DefaultTag
	}
	ensureMu.Lock()
	e, ok := ensured[tag]
	if !ok {
		e = &ensureOnce{}
		ensured[tag] = e
	}
	ensureMu.Unlock()
	e.once.Do(func() {
		start := time.Now()
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			e.err = err
			return
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		e.err = Build(ctx, cli, tag)
		t.Logf("testimage: %s ready in %v", tag, time.Since(start).Round(time.Millisecond))
	})
	if e.err != nil {
		t.Fatalf("building test image %s: %v", tag, e.err)
	}
	return tag
}
