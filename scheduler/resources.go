package scheduler

import "fmt"

// Resources is an amount of each schedulable dimension: CPU in millicores,
// memory and storage in MB (the units of the API, see DESIGN "Quotas and
// capacity").
type Resources struct {
	CPU       int64 // millicores
	MemoryMB  int64
	StorageMB int64
}

// MaxQuantity bounds every quantity the scheduler accepts (2^40: about a
// billion cores, or an exabyte), so that its sums and differences cannot
// overflow int64.
const MaxQuantity = 1 << 40

// valid reports whether every dimension is in [0, MaxQuantity].
func (r Resources) valid() bool {
	return uint64(r.CPU) <= MaxQuantity && uint64(r.MemoryMB) <= MaxQuantity && uint64(r.StorageMB) <= MaxQuantity
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{CPU: r.CPU + o.CPU, MemoryMB: r.MemoryMB + o.MemoryMB, StorageMB: r.StorageMB + o.StorageMB}
}

// Sub returns r - o. The result may be negative in some dimension.
func (r Resources) Sub(o Resources) Resources {
	return Resources{CPU: r.CPU - o.CPU, MemoryMB: r.MemoryMB - o.MemoryMB, StorageMB: r.StorageMB - o.StorageMB}
}

// Mul returns r scaled by n (for example per-replica resources times replicas).
func (r Resources) Mul(n int64) Resources {
	return Resources{CPU: r.CPU * n, MemoryMB: r.MemoryMB * n, StorageMB: r.StorageMB * n}
}

// Fits reports whether r fits into avail in every dimension (r <= avail).
func (r Resources) Fits(avail Resources) bool {
	return r.CPU <= avail.CPU && r.MemoryMB <= avail.MemoryMB && r.StorageMB <= avail.StorageMB
}

// IsNegative reports whether any dimension is below zero.
func (r Resources) IsNegative() bool {
	return r.CPU < 0 || r.MemoryMB < 0 || r.StorageMB < 0
}

// IsZero reports whether every dimension is zero.
func (r Resources) IsZero() bool { return r == Resources{} }

func (r Resources) String() string {
	return fmt.Sprintf("cpu=%dm memory=%dMB storage=%dMB", r.CPU, r.MemoryMB, r.StorageMB)
}

// Dimension names one schedulable dimension of Resources.
type Dimension uint8

// The dimensions, in the order filters check them.
const (
	CPU Dimension = iota
	Memory
	Storage
)

func (d Dimension) String() string {
	switch d {
	case CPU:
		return "cpu"
	case Memory:
		return "memory"
	case Storage:
		return "storage"
	}
	return fmt.Sprintf("Dimension(%d)", uint8(d))
}

// Get returns the amount of dimension d in r.
func (r Resources) Get(d Dimension) int64 {
	switch d {
	case CPU:
		return r.CPU
	case Memory:
		return r.MemoryMB
	case Storage:
		return r.StorageMB
	}
	return 0
}
