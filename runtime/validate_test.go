package runtime

import (
	"errors"
	"strings"
	"testing"
)

func validSpec() ContainerSpec {
	return ContainerSpec{
		Name:    "alloc-1",
		Image:   "hello:1",
		Command: []string{"/app"},
		Args:    []string{"-v"},
		Env:     map[string]string{"A": "1"},
		Files:   []FileMount{{Content: []byte("x"), MountPath: "/etc/app.conf", Owner: "app", Mode: 0o400}},
		Volumes: []VolumeMount{{VolumeName: "vol_1", Path: "/data"}},
		Ports:   []Port{{Name: "http", Number: 8080, Publish: true}, {Number: 53, Protocol: UDP}},
		Limits:  Limits{MilliCPU: 250, MemoryBytes: 64 * MB, PidsLimit: 100, StorageMB: 10},
		Labels:  map[string]string{LabelAlloc: "a1"},
	}
}

func TestValidateAcceptsValidSpec(t *testing.T) {
	if err := validSpec().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (ContainerSpec{Image: "x"}).Validate(); err != nil {
		t.Fatalf("minimal spec: %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	s := validSpec()
	s.Name = "-bad"
	s.Image = ""
	s.Env = map[string]string{"A=B": "x"}
	s.Files = append(s.Files,
		FileMount{MountPath: "relative"},
		FileMount{MountPath: "/etc/app.conf", HostPath: "/x", Content: []byte("y")},
		FileMount{MountPath: "/f", Owner: "a:"},
		FileMount{MountPath: "/g", Mode: 0o10000},
	)
	s.Volumes = append(s.Volumes, VolumeMount{VolumeName: "", Path: "/data"})
	s.Ports = append(s.Ports, Port{Number: 0}, Port{Number: 8080}, Port{Number: 1, Protocol: "sctp"},
		Port{Number: 2, HostPort: 80}, Port{Number: 3, Publish: true, HostIP: "nope"},
		Port{Number: 4, Publish: true, HostPort: 9000}, Port{Number: 5, Publish: true, HostPort: 9000, HostIP: "127.0.0.1"})
	s.Limits = Limits{MilliCPU: -1, MemoryBytes: 1024, PidsLimit: -1, StorageMB: -1}
	err := s.Validate()
	if !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("err %v does not wrap ErrInvalidSpec", err)
	}
	for _, want := range []string{
		`name "-bad"`, "image is required", `env name "A=B"`,
		`files[1]: mount path "relative" must be absolute`,
		`files[2]: mount path "/etc/app.conf" is used twice`, "files[2]: set HostPath or Content, not both",
		`files[3]: invalid container spec: owner "a:"`, "files[4]: mode",
		`volumes[1]: volume name ""`, `volumes[1]: mount path "/data" is used twice`,
		"ports[2]: port 0 out of range", "ports[3]: port 8080/tcp is listed twice", `ports[4]: protocol "sctp"`,
		"ports[5]: host port or IP given without Publish", `ports[6]: host IP "nope"`,
		"ports[8]: host port 9000/tcp is published twice",
		"cpu -1m is negative", "memory 1024 bytes", "pids -1 is negative", "storage -1 MB is negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestMatchLabels(t *testing.T) {
	l := map[string]string{"a": "1", "b": "2"}
	for _, tc := range []struct {
		sel  map[string]string
		want bool
	}{
		{nil, true}, {map[string]string{"a": "1"}, true}, {map[string]string{"a": "1", "b": "2"}, true},
		{map[string]string{"a": "2"}, false}, {map[string]string{"c": ""}, false},
	} {
		if got := MatchLabels(l, tc.sel); got != tc.want {
			t.Errorf("MatchLabels(%v) = %v", tc.sel, got)
		}
	}
}

func TestImageNotFoundError(t *testing.T) {
	cause := errors.New("dial tcp: no such host")
	err := ImageNotFound("hello:2", cause)
	if !errors.Is(err, ErrImageNotFound) || !errors.Is(err, cause) {
		t.Fatalf("%v does not wrap both", err)
	}
	if want := `image "hello:2" not found on this host and could not be pulled: dial tcp: no such host`; err.Error() != want {
		t.Fatalf("got %q", err)
	}
	if NewLimitsNano := (Limits{MilliCPU: 250}).NanoCPUs(); NewLimitsNano != 250_000_000 {
		t.Fatalf("NanoCPUs = %d", NewLimitsNano)
	}
}
