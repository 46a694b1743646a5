package quota

import "testing"

func TestParseCPU(t *testing.T) {
	ok := map[string]int64{"100m": 100, "0.5": 500, "1.0": 1000, "250": 250, "2.5": 2500, " 10m ": 10, "2": 2000, "99": 99000, "100": 100}
	for in, want := range ok {
		if got, err := ParseCPU(in); err != nil || got != want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-1", "0.0001", "1e12", "m", "1.5.2", "0", "0m", "0.0"} {
		if _, err := ParseCPU(in); err == nil {
			t.Errorf("ParseCPU(%q) accepted", in)
		}
	}
}

func TestParseMB(t *testing.T) {
	ok := map[string]int64{"128Mi": 128, "1Gi": 1024, "512M": 512, "2G": 2000, "2048": 2048, "1GiB": 1024, "1.5Gi": 1536}
	for in, want := range ok {
		if got, err := ParseMB(in); err != nil || got != want {
			t.Errorf("ParseMB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Gi", "-5Mi", "1Ki", "12XB", "9999999Ti"} {
		if _, err := ParseMB(in); err == nil {
			t.Errorf("ParseMB(%q) accepted", in)
		}
	}
}
