package quota

import (
	"testing"

	"pgregory.net/rapid"
)

func TestFitsNamesFirstShortDimension(t *testing.T) {
	cases := []struct {
		req, avail Vec
		ok         bool
		dim        string
	}{
		{Vec{100, 100, 100}, Vec{100, 100, 100}, true, ""},
		{Vec{101, 100, 100}, Vec{100, 100, 100}, false, CPU},
		{Vec{1, 200, 1}, Vec{100, 100, 100}, false, Memory},
		{Vec{1, 1, 200}, Vec{100, 100, 100}, false, Storage},
		{Vec{1, 1, 1}, Vec{100, -5, 100}, false, Memory},
	}
	for _, c := range cases {
		sf, ok := Fits(c.req, c.avail)
		if ok != c.ok || sf.Dimension != c.dim {
			t.Errorf("Fits(%v,%v) = %v,%v; want %v,%v", c.req, c.avail, sf, ok, c.ok, c.dim)
		}
		if !ok && sf.Available < 0 {
			t.Errorf("available reported negative: %v", sf)
		}
	}
}

func TestUtilization(t *testing.T) {
	u := Utilization(Vec{10000, 16384, 102400}, Vec{3000, 4096, 20480})
	if u.Cpu != 30 || u.Memory != 25 || u.Storage != 20 {
		t.Fatalf("utilization = %v, want 30/25/20", u)
	}
	if z := Utilization(Vec{}, Vec{1, 1, 1}); z.Cpu != 0 {
		t.Fatalf("zero quota gives %v", z)
	}
}

// Admitting requests one by one with Fits against Available never lets the
// sum exceed the quota.
func TestAdmissionNeverOvercommits(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		q := Vec{rapid.Int64Range(0, 1e6).Draw(t, "cpu"), rapid.Int64Range(0, 1e6).Draw(t, "mem"), rapid.Int64Range(0, 1e6).Draw(t, "sto")}
		var used Vec
		n := rapid.IntRange(0, 50).Draw(t, "n")
		for i := 0; i < n; i++ {
			r := Vec{rapid.Int64Range(0, 2e5).Draw(t, "rc"), rapid.Int64Range(0, 2e5).Draw(t, "rm"), rapid.Int64Range(0, 2e5).Draw(t, "rs")}
			if _, ok := Fits(r, Available(q, used)); ok {
				used = used.Add(r)
			}
		}
		if used.CPU > q.CPU || used.Memory > q.Memory || used.Storage > q.Storage {
			t.Fatalf("overcommitted: used %v > quota %v", used, q)
		}
	})
}
