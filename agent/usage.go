package agent

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime"
)

// usageLoop measures every instance's container each usage period, enforces
// storage requests, and hands the report to the session (the latest one
// wins while disconnected).
func (a *Agent) usageLoop(ctx context.Context) {
	for {
		t := time.NewTimer(time.Duration(a.usagePeriod.Load()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.usageKick:
			t.Stop()
			continue
		case <-t.C:
		}
		rep := a.collectUsage(ctx)
		if rep == nil {
			continue
		}
		a.usageMu.Lock()
		a.usage = rep
		a.usageMu.Unlock()
		select {
		case a.usageReady <- struct{}{}:
		default:
		}
	}
}

// collectUsage takes Stats of every instance's container, a few at a time.
func (a *Agent) collectUsage(ctx context.Context) *atollv1.UsageReport {
	a.mu.Lock()
	ws := make([]*worker, 0, len(a.workers))
	for _, w := range a.workers {
		ws = append(ws, w)
	}
	a.mu.Unlock()
	if len(ws) == 0 {
		return &atollv1.UsageReport{NodeUsed: &atollv1.Resources{}}
	}
	type result struct {
		id string
		st runtime.Stats
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 8)
	)
	for _, w := range ws {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			sctx, cancel := context.WithTimeout(ctx, a.cfg.RuntimeTimeout)
			st, err := a.rt.Stats(sctx, w.name)
			cancel()
			if err != nil {
				if !errors.Is(err, runtime.ErrNotFound) && ctx.Err() == nil {
					a.log.Debug("stats failed", "instance", w.id, "err", err)
				}
				return
			}
			w.mu.Lock()
			spec := w.spec
			w.mu.Unlock()
			if msg := storageMessage(st.StorageMB, spec.GetResources().GetStorage()); msg != "" && spec.GetRunning() && w.believedRunning.Load() {
				w.storageExceeded(msg)
			}
			mu.Lock()
			results = append(results, result{w.id, st})
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	rep := &atollv1.UsageReport{NodeUsed: &atollv1.Resources{}}
	for _, r := range results {
		u := &atollv1.Resources{
			Cpu:     int32(math.Round(r.st.CPUMillicores)),
			Memory:  int32(math.Round(r.st.MemoryMB)),
			Storage: int32(math.Round(r.st.StorageMB)),
		}
		rep.Instances = append(rep.Instances, &atollv1.InstanceUsage{InstanceId: r.id, Used: u})
		rep.NodeUsed.Cpu += u.Cpu
		rep.NodeUsed.Memory += u.Memory
		rep.NodeUsed.Storage += u.Storage
	}
	return rep
}
