package main

import (
	"fmt"

	"github.com/atollhq/atoll/controlplane/quota"
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

// parseCPU and parseMB are the API's own parsers (controlplane/quota), so
// the CLI and the server read quantities the same way.
func parseCPU(s string) (int32, error) {
	v, err := quota.ParseCPU(s)
	if err != nil {
		return 0, fmt.Errorf("cpu %v", err)
	}
	return int32(v), nil
}

func parseMB(what, s string) (int32, error) {
	v, err := quota.ParseMB(s)
	if err != nil {
		return 0, fmt.Errorf("%s %v", what, err)
	}
	if v == 0 {
		return 0, fmt.Errorf("%s %q: must be greater than 0", what, s)
	}
	return int32(v), nil
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
