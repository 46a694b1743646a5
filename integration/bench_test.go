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
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// BenchmarkAppReplicas20 measures one API call for an app with 20 replicas
// until all 20 instances are RUNNING (reported back to the control plane),
// against BenchmarkDockerRun20 (20 parallel `docker run -d` of the same
// image) and BenchmarkSwarmService20 (a 20-replica Docker Swarm service).
//
//	go test ./integration/ -run '^$' -bench 'Replicas20|DockerRun20|SwarmService20' -benchtime 5x
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

// BenchmarkSwarmService20 is the same job for Docker Swarm, the tool an
// operator of one host would pick instead: `docker service create
// --replicas 20` of the same image with the same limits and a host-mode
// published port per task, timed until the 20 tasks are running. The engine
// joins a one-node swarm for the benchmark (and leaves it after, unless it
// was in one already).
//
//	go test ./integration/ -run '^$' -bench 'Replicas20|DockerRun20|SwarmService20' -benchtime 5x
func BenchmarkSwarmService20(b *testing.B) {
	h := newHost(b)
	h.stopAgent()
	ctx := context.Background()
	info, err := h.docker.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive {
		if _, err := h.docker.SwarmInit(ctx, swarm.InitRequest{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"}); err != nil {
			b.Fatalf("swarm init: %v", err)
		}
		b.Cleanup(func() { _ = h.docker.SwarmLeave(context.Background(), true) })
	}
	replicas := uint64(20)
	for i := 0; i < b.N; i++ {
		spec := swarm.ServiceSpec{
			Annotations: swarm.Annotations{Name: fmt.Sprintf("atoll-bench-%s-%d", h.scope, i)},
			TaskTemplate: swarm.TaskSpec{
				ContainerSpec: &swarm.ContainerSpec{Image: h.image, Labels: map[string]string{"atoll.test": h.scope}},
				Resources:     &swarm.ResourceRequirements{Limits: &swarm.Limit{NanoCPUs: 5e7, MemoryBytes: 32 << 20}},
			},
			Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
			EndpointSpec: &swarm.EndpointSpec{Ports: []swarm.PortConfig{{TargetPort: 8080, PublishMode: swarm.PortConfigPublishModeHost}}},
		}
		start := time.Now()
		svc, err := h.docker.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{}) // QueryRegistry false: the local image
		if err != nil {
			b.Fatalf("service create: %v", err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			tasks, err := h.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svc.ID), filters.Arg("desired-state", "running"))})
			if err != nil {
				b.Fatal(err)
			}
			running := 0
			for _, t := range tasks {
				if t.Status.State == swarm.TaskStateRunning {
					running++
				}
			}
			if running == 20 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("20 swarm tasks not running within 2 minutes (%d running)", running)
			}
			time.Sleep(5 * time.Millisecond) // polling interval of the measurement, as for atoll
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/20-replicas")
		b.StopTimer()
		if err := h.docker.ServiceRemove(ctx, svc.ID); err != nil {
			b.Fatal(err)
		}
		waitFor(b, time.Minute, "swarm containers removed", func() bool { return len(h.containers()) == 0 })
		b.StartTimer()
	}
}
