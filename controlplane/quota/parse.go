package quota

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseCPU reads a CPU quantity as millicores (the same rules as the CLI):
//
//	"100m"  millicores
//	"0.5"   cores when the number has a decimal point (500)
//	"2"     a bare integer below 100 is cores (2000): nobody means 2 millicores
//	"250"   a bare integer of 100 or more is millicores
//
// Zero is refused: a request of no CPU would run unlimited outside the quota.
func ParseCPU(s string) (int64, error) {
	in := strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a CPU quantity: use millicores (\"100m\", \"250\") or cores (\"0.5\", \"2\")", s)
	var milli float64
	switch {
	case in == "":
		return 0, fmt.Errorf("is empty: use e.g. \"100m\" or \"0.5\"")
	case strings.HasSuffix(in, "m"):
		f, err := strconv.ParseFloat(strings.TrimSuffix(in, "m"), 64)
		if err != nil {
			return 0, bad
		}
		milli = f
	case strings.ContainsAny(in, ".eE"):
		f, err := strconv.ParseFloat(in, 64)
		if err != nil {
			return 0, bad
		}
		milli = f * 1000
	default:
		n, err := strconv.ParseInt(in, 10, 64)
		if err != nil {
			return 0, bad
		}
		milli = float64(n)
		if n < 100 {
			milli *= 1000
		}
	}
	v, err := positive(s, milli)
	if err == nil && v == 0 {
		return 0, fmt.Errorf("%q: CPU must be greater than 0", s)
	}
	return v, err
}

// sizeUnits in MB (2^20 bytes): binary units, and decimal ones rounded to MB.
var sizeUnits = []struct {
	suffix string
	mb     float64
}{
	{"Ki", 1.0 / 1024}, {"Mi", 1}, {"Gi", 1024}, {"Ti", 1024 * 1024},
	{"KiB", 1.0 / 1024}, {"MiB", 1}, {"GiB", 1024}, {"TiB", 1024 * 1024},
	{"KB", 1.0 / 1000}, {"MB", 1}, {"GB", 1000}, {"TB", 1000 * 1000},
	{"K", 1.0 / 1000}, {"M", 1}, {"G", 1000}, {"T", 1000 * 1000},
}

// ParseMB reads a memory or storage size as MB: "128Mi", "1Gi", "512M",
// "2G", or a plain number of MB ("2048").
func ParseMB(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("is empty: use e.g. \"128Mi\" or \"1Gi\"")
	}
	mult := 1.0
	for _, u := range sizeUnits {
		if len(in) > len(u.suffix) && strings.HasSuffix(in, u.suffix) {
			// Prefer the longest suffix: "GiB" before "B"-less forms.
			in, mult = strings.TrimSuffix(in, u.suffix), u.mb
			break
		}
	}
	f, err := strconv.ParseFloat(in, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: use \"128Mi\", \"1Gi\", \"512M\" or a number of MB", s)
	}
	return positive(s, f*mult)
}

func positive(s string, v float64) (int64, error) {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
		return 0, fmt.Errorf("%q must be a positive quantity", s)
	case v > math.MaxInt32:
		return 0, fmt.Errorf("%q is too large", s)
	case v > 0 && v < 1:
		return 0, fmt.Errorf("%q is less than the smallest unit (1m CPU, 1 MB)", s)
	}
	return int64(math.Round(v)), nil
}
