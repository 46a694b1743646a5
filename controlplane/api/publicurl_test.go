package api

import "testing"

func TestPublicURL(t *testing.T) {
	for _, tc := range []struct {
		scheme string
		port   int
		want   string
	}{
		{"http", 7080, "http://web-demo.example.test:7080/"},
		{"http", 80, "http://web-demo.example.test/"},
		{"http", 0, "http://web-demo.example.test/"},
		{"https", 443, "https://web-demo.example.test/"},
		{"https", 80, "https://web-demo.example.test:80/"},
		{"http", 443, "http://web-demo.example.test:443/"},
		{"", 8080, "http://web-demo.example.test:8080/"},
	} {
		if got := PublicURL(tc.scheme, "web-demo.example.test", tc.port); got != tc.want {
			t.Errorf("PublicURL(%q, %d) = %q, want %q", tc.scheme, tc.port, got, tc.want)
		}
	}
	for _, ok := range []string{"localhost", "example.test", "apps.example.com.", "a-b.c1"} {
		if err := CheckPublicDomain(ok); err != nil {
			t.Errorf("CheckPublicDomain(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "http://x.test", "x.test:80", "x.test/apps", "-x.test", "x..test", "x_y.test"} {
		if CheckPublicDomain(bad) == nil {
			t.Errorf("CheckPublicDomain(%q) accepted", bad)
		}
	}
}
