package controlplane_test

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atollhq/atoll/controlplane"
	"github.com/atollhq/atoll/controlplane/cptest"
)

// recordingRegisterer registers into a real registry and remembers the
// name of every metric the registered collectors describe.
type recordingRegisterer struct {
	*prometheus.Registry
	mu    sync.Mutex
	names map[string]bool
}

var fqNameRe = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recordingRegisterer) note(c prometheus.Collector) {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqNameRe.FindStringSubmatch(d.String()); m != nil {
			r.mu.Lock()
			r.names[m[1]] = true
			r.mu.Unlock()
		}
	}
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.note(c)
	return r.Registry.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.note(c)
	}
	r.Registry.MustRegister(cs...)
}

// Every atoll metric the Grafana dashboard in deploy/ queries is one a
// server registers (a histogram's _bucket/_sum/_count by its base name):
// a renamed metric would otherwise leave an empty panel.
func TestDashboardQueriesRegisteredMetrics(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/atoll-cluster.json")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	walk(dash)
	if len(exprs) == 0 {
		t.Fatal("no queries found in the dashboard")
	}

	rec := &recordingRegisterer{Registry: prometheus.NewRegistry(), names: map[string]bool{}}
	cptest.NewCluster(t, 1, func(_ int, c *controlplane.Config) { c.Registry, c.Gatherer = rec, rec.Registry })

	used := map[string]bool{}
	for _, e := range exprs {
		for _, m := range regexp.MustCompile(`\batoll_[a-z0-9_]+`).FindAllString(e, -1) {
			used[m] = true
		}
	}
	var missing []string
	for name := range used {
		base := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok && rec.names[b] {
				base = b
			}
		}
		if !rec.names[base] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("the dashboard queries metrics no server registers: %v", missing)
	}
	t.Logf("%d queries, %d atoll metrics, all registered", len(exprs), len(used))
}
