// Package quota is the resource arithmetic of organizations, environments and
// apps, in one place: the API's admission checks and the state machine use the
// same functions, so they can never disagree.
//
//	organization quota >= sum of its live environments' quotas
//	environment quota  >= sum of requests x replicas of its active apps
package quota

import (
	"math"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Dimension names, as used in errors and metrics.
const (
	CPU     = "cpu"
	Memory  = "memory"
	Storage = "storage"
)

// Units of each dimension, for messages.
var units = map[string]string{CPU: "m", Memory: "MB", Storage: "MB"}

// Unit is the unit suffix of a dimension.
func Unit(dim string) string { return units[dim] }

// Vec is a resource vector in millicores and megabytes. int64 so sums never overflow.
type Vec struct{ CPU, Memory, Storage int64 }

// Of converts API resources to a Vec (nil is zero).
func Of(r *atollv1.Resources) Vec {
	if r == nil {
		return Vec{}
	}
	return Vec{int64(r.Cpu), int64(r.Memory), int64(r.Storage)}
}

// Proto converts back, saturating at the int32 range of the API.
func (v Vec) Proto() *atollv1.Resources {
	return &atollv1.Resources{Cpu: clamp32(v.CPU), Memory: clamp32(v.Memory), Storage: clamp32(v.Storage)}
}

func clamp32(x int64) int32 {
	switch {
	case x > math.MaxInt32:
		return math.MaxInt32
	case x < math.MinInt32:
		return math.MinInt32
	}
	return int32(x)
}

// Add returns v+o.
func (v Vec) Add(o Vec) Vec { return Vec{v.CPU + o.CPU, v.Memory + o.Memory, v.Storage + o.Storage} }

// Sub returns v-o.
func (v Vec) Sub(o Vec) Vec { return Vec{v.CPU - o.CPU, v.Memory - o.Memory, v.Storage - o.Storage} }

// Scale returns v*n.
func (v Vec) Scale(n int64) Vec { return Vec{v.CPU * n, v.Memory * n, v.Storage * n} }

// Dims lists the dimensions with their values, in a fixed order.
func (v Vec) Dims() [3]struct {
	Name  string
	Value int64
} {
	return [3]struct {
		Name  string
		Value int64
	}{{CPU, v.CPU}, {Memory, v.Memory}, {Storage, v.Storage}}
}

// Shortfall is the first dimension in which a request does not fit what is available.
type Shortfall struct {
	Dimension            string
	Requested, Available int64
}

// Fits reports whether req fits in avail; if not, it names the first dimension
// (cpu, memory, storage order) that does not fit.
func Fits(req, avail Vec) (Shortfall, bool) {
	r, a := req.Dims(), avail.Dims()
	for i := range r {
		if r[i].Value > a[i].Value {
			return Shortfall{Dimension: r[i].Name, Requested: r[i].Value, Available: max(a[i].Value, 0)}, false
		}
	}
	return Shortfall{}, true
}

// Available is quota-used, floored at zero per dimension.
func Available(quota, used Vec) Vec {
	a := quota.Sub(used)
	return Vec{max(a.CPU, 0), max(a.Memory, 0), max(a.Storage, 0)}
}

// Utilization is used/quota in percent per dimension, rounded to two decimals (0 when the quota is 0).
func Utilization(quota, used Vec) *atollv1.Percentages {
	pct := func(u, q int64) float64 {
		if q <= 0 {
			return 0
		}
		return math.Round(float64(u)*10000/float64(q)) / 100
	}
	return &atollv1.Percentages{Cpu: pct(used.CPU, quota.CPU), Memory: pct(used.Memory, quota.Memory), Storage: pct(used.Storage, quota.Storage)}
}

// CopyDim sets one dimension ("cpu", "memory" or "storage") of dst from src
// (nil src: zero); false for an unknown dimension.
func CopyDim(dst, src *atollv1.Resources, dim string) bool {
	switch dim {
	case "cpu":
		dst.Cpu = src.GetCpu()
	case "memory":
		dst.Memory = src.GetMemory()
	case "storage":
		dst.Storage = src.GetStorage()
	default:
		return false
	}
	return true
}
