package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// CPU quantities (the API counts millicores, 1000 = one core):
//
//	500m   millicores (500)
//	0.5    cores, when the number has a decimal point (500)
//	2      a bare integer below 100 is cores (2000): nobody means 2 millicores
//	2000   a bare integer of 100 or more is millicores (2000); 128 cores is 128.0
const cpuHelp = "CPU: 500m or 2000 (millicores), 0.5, 2 or 128.0 (cores; bare integers below 100 are cores)"

// Memory and storage quantities (the API counts MB, 1024 MB = 1 Gi):
//
//	2048          a bare number is MB
//	512Mi 2Gi 1Ti binary units (Gi = 1024 MB)
//	500M 2G 1T    decimal units (G = 1000 MB); MB/GB/TB and MiB/GiB/TiB also work
const memHelp = "MB: 2048, 512Mi, 2Gi, 1Ti (binary) or 2G (=2000 MB)"

func parseCPU(s string) (int32, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty cpu quantity")
	}
	var milli float64
	switch {
	case strings.HasSuffix(in, "m"):
		f, err := strconv.ParseFloat(strings.TrimSuffix(in, "m"), 64)
		if err != nil {
			return 0, fmt.Errorf("cpu %q: want e.g. 500m, 0.5 or 2", s)
		}
		milli = f
	case strings.Contains(in, "."):
		f, err := strconv.ParseFloat(in, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu %q: want e.g. 500m, 0.5 or 2", s)
		}
		milli = f * 1000
	default:
		n, err := strconv.ParseInt(in, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu %q: want e.g. 500m, 0.5 or 2", s)
		}
		milli = float64(n)
		if n < 100 {
			milli *= 1000
		}
	}
	return toInt32("cpu", s, milli)
}

func parseMB(what, s string) (int32, error) {
	in := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mb     float64
	}{
		{"MiB", 1}, {"GiB", 1024}, {"TiB", 1024 * 1024},
		{"Mi", 1}, {"Gi", 1024}, {"Ti", 1024 * 1024},
		{"MB", 1}, {"GB", 1000}, {"TB", 1000 * 1000},
		{"M", 1}, {"G", 1000}, {"T", 1000 * 1000},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(in, u.suffix) {
			in, mult = strings.TrimSuffix(in, u.suffix), u.mb
			break
		}
	}
	f, err := strconv.ParseFloat(in, 64)
	if err != nil || in == "" {
		return 0, fmt.Errorf("%s %q: want MB (2048) or a unit: 512Mi, 2Gi, 1Ti, 2G", what, s)
	}
	return toInt32(what, s, f*mult)
}

func toInt32(what, s string, v float64) (int32, error) {
	if math.IsNaN(v) || v <= 0 {
		return 0, fmt.Errorf("%s %q: must be greater than 0", what, s)
	}
	r := math.Round(v)
	if r < 1 {
		return 0, fmt.Errorf("%s %q: too small (less than one unit)", what, s)
	}
	if r > math.MaxInt32 {
		return 0, fmt.Errorf("%s %q: too large", what, s)
	}
	return int32(r), nil
}

// quotaFlags are --cpu, --memory and --storage.
type quotaFlags struct{ cpu, memory, storage string }

func (q *quotaFlags) register(fs interface {
	StringVar(p *string, name, value, usage string)
}, what string) {
	fs.StringVar(&q.cpu, "cpu", "", what+" "+cpuHelp)
	fs.StringVar(&q.memory, "memory", "", what+" memory in "+memHelp)
	fs.StringVar(&q.storage, "storage", "", what+" storage in "+memHelp)
}

// resources parses the flags given; paths lists the dimensions set
// ("cpu", "memory", "storage"); r is nil when none was.
func (q *quotaFlags) resources() (r *atollv1.Resources, paths []string, err error) {
	if q.cpu == "" && q.memory == "" && q.storage == "" {
		return nil, nil, nil
	}
	r = &atollv1.Resources{}
	if q.cpu != "" {
		if r.Cpu, err = parseCPU(q.cpu); err != nil {
			return nil, nil, usagef("--cpu: %v", err)
		}
		paths = append(paths, "cpu")
	}
	if q.memory != "" {
		if r.Memory, err = parseMB("memory", q.memory); err != nil {
			return nil, nil, usagef("--memory: %v", err)
		}
		paths = append(paths, "memory")
	}
	if q.storage != "" {
		if r.Storage, err = parseMB("storage", q.storage); err != nil {
			return nil, nil, usagef("--storage: %v", err)
		}
		paths = append(paths, "storage")
	}
	return r, paths, nil
}

func fmtCPU(m int32) string { return fmt.Sprintf("%dm", m) }
func fmtMB(mb int32) string { return fmt.Sprintf("%dMB", mb) }
