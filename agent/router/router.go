// Package router is the agent's HTTP front door for public endpoints: it
// maps the request's Host header to the addresses of the instances that
// serve it and proxies round robin over them, skipping addresses that failed
// recently. The table comes from the control plane (Assignments.routes) and
// is replaced whole by SetRoutes. It owns no other state and does no
// scheduling: which instances are healthy enough to be listed is the
// control plane's call; the router only avoids the ones it just saw fail.
package router

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultFailureCooldown is how long an address that refused a connection
// is skipped.
const DefaultFailureCooldown = 5 * time.Second

// Router is an http.Handler. The zero value is not usable; call New.
type Router struct {
	log      *slog.Logger
	cooldown time.Duration
	now      func() time.Time
	proxy    *httputil.ReverseProxy

	mu     sync.RWMutex
	routes map[string]*route // lowercased hostname -> targets
	failed map[string]time.Time
}

type route struct {
	addrs []string
	next  atomic.Uint64
}

// Option configures a Router.
type Option func(*Router)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(r *Router) { r.log = l } }

// WithFailureCooldown sets how long a failed address is skipped.
func WithFailureCooldown(d time.Duration) Option { return func(r *Router) { r.cooldown = d } }

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(r *Router) { r.now = now } }

// New returns a router with an empty table.
func New(opts ...Option) *Router {
	r := &Router{
		log:      slog.Default(),
		cooldown: DefaultFailureCooldown,
		now:      time.Now,
		routes:   map[string]*route{},
		failed:   map[string]time.Time{},
	}
	for _, o := range opts {
		o(r)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 60 * time.Second
	r.proxy = &httputil.ReverseProxy{
		Transport: &retryUpstream{r: r, base: tr},
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := pr.In.Context().Value(targetKey{}).(string)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = target
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			target, _ := req.Context().Value(targetKey{}).(string)
			r.markFailed(target)
			r.log.Warn("router: upstream failed", "host", req.Host, "target", target, "err", err)
			http.Error(w, fmt.Sprintf("atoll router: upstream %s for %s failed: %v", target, hostOf(req.Host), err), http.StatusBadGateway)
		},
	}
	return r
}

type targetKey struct{}

// SetRoutes replaces the whole table: hostname -> instance addresses
// (host:port). Hostnames are matched case-insensitively.
func (r *Router) SetRoutes(table map[string][]string) {
	next := make(map[string]*route, len(table))
	for h, addrs := range table {
		next[strings.ToLower(h)] = &route{addrs: slices.Clone(addrs)}
	}
	r.mu.Lock()
	r.routes = next
	r.mu.Unlock()
}

// Routes returns a copy of the table.
func (r *Router) Routes() map[string][]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string][]string, len(r.routes))
	for h, rt := range r.routes {
		out[h] = slices.Clone(rt.addrs)
	}
	return out
}

// ServeHTTP proxies the request to one of the Host's addresses.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	host := hostOf(req.Host)
	target, status := r.pick(host)
	switch status {
	case http.StatusNotFound:
		r.mu.RLock()
		known := slices.Sorted(maps.Keys(r.routes))
		r.mu.RUnlock()
		msg := fmt.Sprintf("atoll router: no app is published at host %q on this node.\n", host)
		if len(known) > 0 && len(known) <= 20 {
			msg += "Known hosts: " + strings.Join(known, ", ") + "\n"
		}
		msg += "Public hostnames look like <app>-<env>.<domain>; check the app's publicEndpoint.hostname.\n"
		http.Error(w, msg, http.StatusNotFound)
		return
	case http.StatusServiceUnavailable:
		http.Error(w, fmt.Sprintf("atoll router: host %q has no running instance right now; try again shortly.", host), http.StatusServiceUnavailable)
		return
	}
	ctx := req.Context()
	r.proxy.ServeHTTP(w, req.WithContext(contextWith(ctx, target)))
}

// pick chooses the next address for host round robin, skipping addresses
// that failed within the cooldown unless all of them did.
func (r *Router) pick(host string) (string, int) {
	r.mu.RLock()
	rt, ok := r.routes[host]
	r.mu.RUnlock()
	if !ok {
		return "", http.StatusNotFound
	}
	n := len(rt.addrs)
	if n == 0 {
		return "", http.StatusServiceUnavailable
	}
	start := rt.next.Add(1) - 1
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for i := range n {
		a := rt.addrs[(start+uint64(i))%uint64(n)]
		if t, bad := r.failed[a]; !bad || now.Sub(t) >= r.cooldown {
			return a, http.StatusOK
		}
	}
	return rt.addrs[start%uint64(n)], http.StatusOK
}

func (r *Router) markFailed(addr string) {
	if addr == "" {
		return
	}
	r.mu.Lock()
	r.failed[addr] = r.now()
	// Keep the map small: forget failures older than the cooldown.
	for a, t := range r.failed {
		if r.now().Sub(t) >= r.cooldown {
			delete(r.failed, a)
		}
	}
	r.mu.Unlock()
}

// retryUpstream sends a request to another address of the same host, once,
// when its upstream failed without answering and a second try cannot do
// harm: the dial failed (nothing was sent), or an idempotent request (GET,
// HEAD, OPTIONS, TRACE) without a body found its connection reset or
// closed before any response (the instance was stopping: a rollout or a
// drain replaced it). Such an instance then costs no failed request while
// the route table catches up. Timeouts are not retried.
type retryUpstream struct {
	r    *Router
	base http.RoundTripper
}

func (t *retryUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil || req.Context().Err() != nil || (req.Body != nil && req.Body != http.NoBody) || !retriable(req, err) {
		return resp, err
	}
	t.r.markFailed(req.URL.Host)
	next, status := t.r.pick(hostOf(req.Host))
	if status != http.StatusOK || next == req.URL.Host {
		return resp, err
	}
	retry := req.Clone(req.Context())
	retry.URL.Host = next
	return t.base.RoundTrip(retry)
}

// retriable: see retryUpstream.
func retriable(req *http.Request, err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		return false
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// hostOf strips the port and lowercases.
func hostOf(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}
