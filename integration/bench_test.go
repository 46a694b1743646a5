package integration_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

// BenchmarkAppReplicas20 measures one API call for an app with 20 replicas
// until all 20 instances are RUNNING (reported back to the control plane),
// against BenchmarkDockerRun20: 20 parallel `docker run -d` of the same image.
//
//	go test ./integration/ -run '^$' -bench 'Replicas20|DockerRun20' -benchtime 5x
func BenchmarkAppReplicas20(b *testing.B) {
	h := newHost(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("bench%d", i)
		var env jsonObj
		h.rest("POST", "/v1/environments", h.token, jsonObj{"name": name, "resourceQuota": jsonObj{"cpu": 1900, "memory": 4096, "storage": 1024}}, &env)
		envID := env["id"].(string)
		repo, tag, _ := strings.Cut(h.image, ":")
		body := jsonObj{"name": "web", "replicas": 20, "source": jsonObj{"image": jsonObj{"name": repo, "tag": tag}},
			"resourceRequests": jsonObj{"cpu": "50m", "memory": "32Mi"}, "ports": []jsonObj{{"number": 8080}}}
		b.StartTimer()
		start := time.Now()
		if code := h.rest("POST", "/v1/environments/"+envID+"/apps", h.token, body, nil); code != 201 {
			b.Fatalf("create: %d", code)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			a := h.appState(envID, "web")
			if r, _ := get(a, "status", "running").(float64); r == 20 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("20 replicas not RUNNING within 2 minutes")
			}
			time.Sleep(5 * time.Millisecond) // polling interval of the measurement, not synchronization
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/20-replicas")
		b.StopTimer()
		h.rest("DELETE", "/v1/environments/"+envID+"?force=true", h.token, nil, nil)
		waitFor(b, time.Minute, "containers removed", func() bool { return len(h.containers()) == 0 })
		b.StartTimer()
	}
}

func BenchmarkDockerRun20(b *testing.B) {
	h := newHost(b)
	h.stopAgent()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for r := 0; r < 20; r++ {
			wg.Add(1)
			go func(r int) {
				defer wg.Done()
				out, err := exec.Command("docker", "run", "-d", "--label", "atoll.test="+h.scope,
					"--cpus", "0.05", "--memory", "32m", "-p", "127.0.0.1::8080", h.image).CombinedOutput()
				if err != nil {
					errs <- fmt.Errorf("docker run: %v: %s", err, out)
				}
			}(r)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/20-replicas")
		b.StopTimer()
		for _, c := range h.containers() {
			_ = h.docker.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		}
		b.StartTimer()
	}
}
