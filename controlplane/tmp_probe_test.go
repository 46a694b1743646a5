package controlplane_test

import (
	"strings"
	"testing"

	"github.com/atollhq/atoll/controlplane"
)

func init() {
	probe = func(b *testing.B, s *controlplane.Server) {
		m := scrape(b, s)
		for k, v := range m {
			if strings.HasSuffix(strings.SplitN(k, "{", 2)[0], "_sum") {
				c := m[strings.Replace(k, "_sum", "_count", 1)]
				if c > 0 {
					b.Logf("%s mean=%.3fms count=%v", k, v/c*1000, c)
				}
			}
		}
	}
}
