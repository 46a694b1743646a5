package scheduler

import "testing"

func TestResources(t *testing.T) {
	a, b := res(1000, 512, 10), res(250, 512, 20)
	if got := a.Add(b); got != res(1250, 1024, 30) {
		t.Errorf("Add = %v", got)
	}
	if got := a.Sub(b); got != res(750, 0, -10) {
		t.Errorf("Sub = %v", got)
	}
	if got := b.Mul(3); got != res(750, 1536, 60) {
		t.Errorf("Mul = %v", got)
	}
	if !a.Sub(b).IsNegative() || a.IsNegative() {
		t.Error("IsNegative wrong")
	}
	if !(Resources{}).IsZero() || a.IsZero() {
		t.Error("IsZero wrong")
	}
	for _, tc := range []struct {
		r, avail Resources
		want     bool
	}{
		{res(1, 1, 1), res(1, 1, 1), true},
		{res(0, 0, 0), res(0, 0, 0), true},
		{res(2, 1, 1), res(1, 1, 1), false},
		{res(1, 2, 1), res(1, 1, 1), false},
		{res(1, 1, 2), res(1, 1, 1), false},
		{res(0, 0, 0), res(-1, 5, 5), false},
	} {
		if got := tc.r.Fits(tc.avail); got != tc.want {
			t.Errorf("%v.Fits(%v) = %v, want %v", tc.r, tc.avail, got, tc.want)
		}
	}
	if got := res(500, 256, 0).String(); got != "cpu=500m memory=256MB storage=0MB" {
		t.Errorf("String = %q", got)
	}
	for d, want := range map[Dimension]int64{CPU: 1000, Memory: 512, Storage: 10} {
		if a.Get(d) != want {
			t.Errorf("Get(%v) = %d, want %d", d, a.Get(d), want)
		}
	}
}
