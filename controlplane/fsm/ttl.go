package fsm

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTTL accepts Go durations plus a "d" day unit ("48h", "30m", "7d", "1d12h").
func ParseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration like \"48h\", \"30m\" or \"7d\"", s)
		}
		days, s = n, s[i+1:]
	}
	var d time.Duration
	if s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration like \"48h\", \"30m\" or \"7d\"", s)
		}
	}
	if days > 100000 {
		return 0, fmt.Errorf("too long")
	}
	return d + time.Duration(days)*24*time.Hour, nil
}
