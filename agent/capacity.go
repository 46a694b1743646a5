package agent

import (
	"bufio"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// detectCapacity measures this host, with the config's overrides applied,
// and returns capacity and allocatable (capacity minus the reserve, not
// below zero).
func detectCapacity(c Config) (capacity, allocatable *atollv1.Resources, err error) {
	cpu := c.CPU
	if cpu == 0 {
		cpu = goruntime.NumCPU() * 1000
	}
	mem := c.MemoryMB
	if mem == 0 {
		if mem, err = memTotalMB("/proc/meminfo"); err != nil {
			return nil, nil, fmt.Errorf("memory capacity (set it with --memory): %w", err)
		}
	}
	st := c.StorageMB
	if st == 0 {
		root := c.StorageRoot
		if root == "" {
			root = c.DataDir
			if fi, err := os.Stat("/var/lib/docker"); err == nil && fi.IsDir() {
				root = "/var/lib/docker"
			}
		}
		if st, err = fsSizeMB(root); err != nil {
			return nil, nil, fmt.Errorf("storage capacity of %s (set it with --storage): %w", root, err)
		}
	}
	capacity = &atollv1.Resources{Cpu: int32(cpu), Memory: int32(mem), Storage: int32(st)}
	allocatable = &atollv1.Resources{
		Cpu:     int32(max(0, cpu-c.ReserveCPU)),
		Memory:  int32(max(0, mem-c.ReserveMemoryMB)),
		Storage: int32(max(0, st-c.ReserveStorageMB)),
	}
	return capacity, allocatable, nil
}

// memTotalMB reads MemTotal from a /proc/meminfo file.
func memTotalMB(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: MemTotal %q: %w", path, fields[1], err)
			}
			return int(kb / 1024), nil
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no MemTotal line", path)
}
