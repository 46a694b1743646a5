package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
	"github.com/atollhq/atoll/runtime"
)

// healthProbe is the goroutine checking one running container.
type healthProbe struct {
	key    string // container id and start time: a restart gets a new probe
	cancel context.CancelFunc
	done   chan struct{}
}

// startHealth starts checking a container that runs, when the assignment
// has a health check. A probe already checking the same container (same
// id, same start) goes on; any other is replaced and the health starts
// again from "pending". Called from the run goroutine.
func (w *worker) startHealth(spec *atollv1.Assignment, info runtime.ContainerInfo) {
	hc := spec.GetHealthCheck()
	key := info.ID + "@" + info.StartedAt.String()
	if w.probe != nil && w.probe.key == key && hc != nil {
		return
	}
	w.stopHealth()
	w.mu.Lock()
	w.healthy, w.healthMsg = false, ""
	w.mu.Unlock()
	if hc == nil {
		return
	}
	target := ""
	for _, p := range info.Ports {
		if p.ContainerPort == int(hc.Port) && p.HostPort != 0 && p.Protocol != runtime.UDP {
			target = "http://" + net.JoinHostPort(w.a.cfg.Address, strconv.Itoa(p.HostPort)) + hc.HttpPath
			break
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &healthProbe{key: key, cancel: cancel, done: make(chan struct{})}
	w.probe = p
	go func() {
		defer close(p.done)
		w.probeLoop(ctx, hc, target)
	}()
}

// stopHealth stops the probe, if any, and waits for it. Called from the
// run goroutine without w.mu held.
func (w *worker) stopHealth() {
	if w.probe == nil {
		return
	}
	w.probe.cancel()
	<-w.probe.done
	w.probe = nil
}

// probeLoop checks every interval after the initial delay, and reports a
// change of health: healthy after a passing check, unhealthy after
// failure_threshold failures in a row.
func (w *worker) probeLoop(ctx context.Context, hc *atollv1.HealthCheck, target string) {
	timeout := time.Duration(max(hc.TimeoutSeconds, 1)) * time.Second
	interval := time.Duration(max(hc.IntervalSeconds, 1)) * time.Second
	threshold := int(max(hc.FailureThreshold, 1))
	client := &http.Client{
		Timeout: timeout,
		// A redirect is an answer (3xx is healthy): never follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	defer client.CloseIdleConnections()
	t := time.NewTimer(time.Duration(hc.InitialDelaySeconds) * time.Second)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var ok bool
		var msg string
		if target == "" {
			msg = fmt.Sprintf("GET %s: port %d is not published", hc.HttpPath, hc.Port)
		} else {
			ok, msg = probeHTTP(ctx, client, target, hc.HttpPath)
		}
		if ctx.Err() != nil {
			return
		}
		if ok {
			fails = 0
			w.setHealth(true, "")
		} else if fails++; fails >= threshold {
			w.setHealth(false, msg)
		}
		t.Reset(interval)
	}
}

// probeHTTP sends one check: a 2xx or 3xx answer is healthy; otherwise the
// message says what went wrong ("GET /healthz: 503", "GET /healthz:
// connection refused").
func probeHTTP(ctx context.Context, client *http.Client, target, path string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false, fmt.Sprintf("GET %s: %v", path, err)
	}
	req.Header.Set("User-Agent", "atoll-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return false, "GET " + path + ": " + probeError(err, client.Timeout)
	}
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, ""
	}
	return false, fmt.Sprintf("GET %s: %d", path, resp.StatusCode)
}

func probeError(err error, timeout time.Duration) string {
	var ue *url.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &ue) && ue.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.As(err, &ue):
		return ue.Err.Error()
	}
	return err.Error()
}

// setHealth records the probe's result and reports it when it changed.
// Called from the probe goroutine.
func (w *worker) setHealth(ok bool, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.healthy == ok && w.healthMsg == msg {
		return
	}
	w.healthy, w.healthMsg = ok, msg
	if ok {
		w.a.log.Info("instance healthy", "instance", w.id)
	} else {
		w.a.log.Warn("instance unhealthy", "instance", w.id, "check", msg)
	}
	if w.last == nil || w.last.State != atollv1.InstanceState_INSTANCE_RUNNING {
		return
	}
	st := proto.Clone(w.last).(*atollv1.InstanceStatus)
	st.Healthy, st.HealthMessage = ok, msg
	w.last = st
	w.a.report(st)
}
