package main

import "testing"

func TestParseCPU(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int32
		bad  bool
	}{
		{"500m", 500, false},
		{"2000", 2000, false},
		{"10", 10000, false},
		{"32", 32000, false},
		{"99", 99000, false},
		{"100", 100, false},
		{"128.0", 128000, false},
		{"2", 2000, false},
		{"1", 1000, false},
		{"0.5", 500, false},
		{"1.5", 1500, false},
		{"2.0", 2000, false},
		{"250.5m", 251, false},
		{" 100m ", 100, false},
		{"", 0, true},
		{"0", 0, true},
		{"-1", 0, true},
		{"abc", 0, true},
		{"2 cores", 0, true},
		{"0.0001", 0, true},
		{"99999999999", 0, true},
	} {
		got, err := parseCPU(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseCPU(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseCPU(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseMB(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int32
		bad  bool
	}{
		{"2048", 2048, false},
		{"512Mi", 512, false},
		{"2Gi", 2048, false},
		{"1.5Gi", 1536, false},
		{"1Ti", 1048576, false},
		{"10Gi", 10240, false},
		{"2G", 2000, false},
		{"500M", 500, false},
		{"1T", 1000000, false},
		{"2GB", 2000, false},
		{"2GiB", 2048, false},
		{"128MB", 128, false},
		{"", 0, true},
		{"Gi", 0, true},
		{"0", 0, true},
		{"-5Gi", 0, true},
		{"2Ki", 0, true},
		{"lots", 0, true},
		{"4096Ti", 0, true},
	} {
		got, err := parseMB("memory", tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseMB(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseMB(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
