package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/atollhq/atoll/runtime"
)

// cpuSample is one reading of a container's cumulative CPU time.
type cpuSample struct {
	read    time.Time // engine's timestamp of the reading
	usageNS uint64    // cumulative CPU time of the container
	started string    // the container's StartedAt: a restart resets usage
}

// cpuSampleMaxAge is how long a remembered sample stays usable; older ones
// are dropped, so containers removed behind the runtime's back do not leak.
const cpuSampleMaxAge = 10 * time.Minute

// Stats measures the container once. CPU is averaged since the previous
// Stats call for the same container (if recent), or else over
// Config.StatsSampleInterval between two one-shot samples. CPU, memory and
// pids are zero for a container that is not running; storage is always
// measured.
func (r *Runtime) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	c, st, err := r.storage(ctx, id)
	if err != nil {
		return runtime.Stats{}, err
	}
	st.Time = time.Now().UTC()
	if c.State == nil || !c.State.Running {
		return st, nil
	}

	cur, raw, err := r.sample(ctx, c.ID, c.State.StartedAt)
	if err != nil {
		return runtime.Stats{}, err
	}
	r.mu.Lock()
	prev, ok := r.cpu[c.ID]
	r.mu.Unlock()
	if !ok || prev.started != cur.started || !prev.read.Before(cur.read) || cur.read.Sub(prev.read) > cpuSampleMaxAge {
		// No usable earlier sample: take a second one after a short pause.
		select {
		case <-ctx.Done():
			return runtime.Stats{}, ctx.Err()
		case <-time.After(r.cfg.StatsSampleInterval):
		}
		prev = cur
		if cur, raw, err = r.sample(ctx, c.ID, c.State.StartedAt); err != nil {
			return runtime.Stats{}, err
		}
	}
	st.CPUMillicores = cpuMillicores(prev, cur)
	r.remember(c.ID, cur)

	st.MemoryMB = float64(workingSet(raw.MemoryStats)) / runtime.MB
	st.MemoryLimitMB = float64(raw.MemoryStats.Limit) / runtime.MB
	st.Pids = raw.PidsStats.Current
	if !raw.Read.IsZero() {
		st.Time = raw.Read.UTC()
	}
	return st, nil
}

// StorageUsedMB measures the writable layer and the named volumes.
func (r *Runtime) StorageUsedMB(ctx context.Context, id string) (float64, error) {
	_, st, err := r.storage(ctx, id)
	return st.StorageMB, err
}

// storage inspects the container with its size and measures its volumes.
func (r *Runtime) storage(ctx context.Context, id string) (container.InspectResponse, runtime.Stats, error) {
	c, _, err := r.cli.ContainerInspectWithRaw(ctx, id, true)
	if err != nil {
		return c, runtime.Stats{}, containerErr("stats", id, err)
	}
	st := runtime.Stats{VolumesMB: map[string]float64{}}
	if c.SizeRw != nil {
		st.WritableLayerMB = float64(*c.SizeRw) / runtime.MB
	}
	st.StorageMB = st.WritableLayerMB
	for _, m := range c.Mounts {
		if m.Type != mount.TypeVolume || m.Name == "" {
			continue
		}
		// Anonymous volumes (from an image's VOLUME) count too: they are
		// removed with the container and belong to it.
		mb, err := r.VolumeSizeMB(ctx, m.Name)
		if err != nil {
			return c, runtime.Stats{}, fmt.Errorf("storage of %s: %w", id, err)
		}
		st.VolumesMB[m.Name] = mb
		st.StorageMB += mb
	}
	return c, st, nil
}

func (r *Runtime) sample(ctx context.Context, id, started string) (cpuSample, container.StatsResponse, error) {
	resp, err := r.cli.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return cpuSample{}, container.StatsResponse{}, containerErr("stats", id, err)
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return cpuSample{}, container.StatsResponse{}, fmt.Errorf("stats %s: decode: %w", id, err)
	}
	return cpuSample{read: s.Read, usageNS: s.CPUStats.CPUUsage.TotalUsage, started: started}, s, nil
}

func (r *Runtime) remember(id string, s cpuSample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cpu[id] = s
	for k, v := range r.cpu {
		if s.read.Sub(v.read) > cpuSampleMaxAge {
			delete(r.cpu, k)
		}
	}
}

// cpuMillicores is the average CPU use between two samples: CPU nanoseconds
// per wall nanosecond, times 1000.
func cpuMillicores(prev, cur cpuSample) float64 {
	wall := cur.read.Sub(prev.read)
	if wall <= 0 || cur.usageNS < prev.usageNS {
		return 0
	}
	return float64(cur.usageNS-prev.usageNS) / float64(wall.Nanoseconds()) * 1000
}

// workingSet is memory use without reclaimable page cache, as docker stats
// and the kubelet compute it: cgroup v1 reports total_inactive_file, v2
// inactive_file.
func workingSet(m container.MemoryStats) uint64 {
	inactive, ok := m.Stats["total_inactive_file"]
	if !ok {
		inactive = m.Stats["inactive_file"]
	}
	if inactive < m.Usage {
		return m.Usage - inactive
	}
	return m.Usage
}
