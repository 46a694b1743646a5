package multihost

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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// DefaultTag is the tag of the server image.
const DefaultTag = "atoll-server:test"

// HashLabel is the image label holding the hash of the binary and Dockerfile.
const HashLabel = "atoll.multihost.hash"

// KeepImageEnv, set to 1, keeps the image after the tests so that the next
// run with an unchanged binary skips the image build.
const KeepImageEnv = "ATOLL_MULTIHOST_KEEP_IMAGE"

const dockerfile = `FROM scratch
COPY atoll /atoll
ENTRYPOINT ["/atoll"]
`

// BuildImage compiles cmd/atoll statically for the engine's architecture and
// builds it into a FROM scratch image tagged tag, unless an image with that
// tag and the same content hash (of the binary and the Dockerfile) exists.
// It reports whether it built a new image.
func BuildImage(ctx context.Context, cli client.APIClient, tag string) (bool, error) {
	ver, err := cli.ServerVersion(ctx)
	if err != nil {
		return false, fmt.Errorf("multihost: docker version: %w", err)
	}
	root, err := moduleRoot()
	if err != nil {
		return false, err
	}
	tmp, err := os.MkdirTemp("", "atoll-multihost-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "atoll")
	gobin := "go"
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	} else {
		gobin = filepath.Join(goruntime.GOROOT(), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/atoll")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+ver.Arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return false, fmt.Errorf("multihost: go build ./cmd/atoll: %w\n%s", err, out)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return false, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00", dockerfile)
	h.Write(binary)
	hash := hex.EncodeToString(h.Sum(nil))[:32]

	old, err := cli.ImageInspect(ctx, tag)
	if err == nil && old.Config != nil && old.Config.Labels[HashLabel] == hash {
		return false, nil
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{"atoll", 0o755, binary},
	} {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return false, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return false, err
		}
	}
	if err := tw.Close(); err != nil {
		return false, err
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      map[string]string{HashLabel: hash},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return false, fmt.Errorf("multihost: image build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if err := readBuildStream(resp.Body); err != nil {
		return false, fmt.Errorf("multihost: image build %s: %w", tag, err)
	}
	img, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		return false, fmt.Errorf("multihost: built %s but cannot inspect it: %w", tag, err)
	}
	if img.Config == nil || img.Config.Labels[HashLabel] != hash {
		return false, fmt.Errorf("multihost: built %s but its hash label is not %s", tag, hash)
	}
	if old.ID != "" && old.ID != img.ID {
		_, _ = cli.ImageRemove(ctx, old.ID, image.RemoveOptions{PruneChildren: true})
	}
	return true, nil
}

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

// moduleRoot is the directory holding go.mod: two levels above this file.
func moduleRoot() (string, error) {
	if _, file, _, ok := goruntime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return "", fmt.Errorf("multihost: cannot find the module root")
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// The image is built once per process and shared by the clusters of that
// process; the last cluster to finish removes it (unless KeepImageEnv is set).
var (
	imageMu    sync.Mutex
	imageBuilt bool
	imageUsers int
)

// acquireImage builds the image if this process has not yet, and registers
// a cleanup on t that releases it.
func acquireImage(t testing.TB, cli client.APIClient, tag string) {
	t.Helper()
	imageMu.Lock()
	defer imageMu.Unlock()
	if !imageBuilt {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		built, err := BuildImage(ctx, cli, tag)
		cancel()
		if err != nil {
			t.Fatalf("building %s: %v", tag, err)
		}
		imageBuilt = true
		t.Logf("multihost: image %s ready in %v (built: %v)", tag, time.Since(start).Round(time.Millisecond), built)
	}
	imageUsers++
	t.Cleanup(func() {
		imageMu.Lock()
		defer imageMu.Unlock()
		imageUsers--
		if imageUsers > 0 || os.Getenv(KeepImageEnv) == "1" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{PruneChildren: true}); err != nil {
			t.Logf("multihost: removing image %s: %v", tag, err)
		}
		imageBuilt = false
	})
}
