package api

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// PublicURL is the URL of an app's public endpoint: scheme://host[:port]/,
// the port left out when it is the scheme's default (or 0).
func PublicURL(scheme, host string, port int) string {
	if scheme == "" {
		scheme = "http"
	}
	if port == 0 || scheme == "http" && port == 80 || scheme == "https" && port == 443 {
		return scheme + "://" + host + "/"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/"
}

// PublicURLPattern shows where apps are reached, for banners and docs:
// http://<app>-<env>.example.test:7080/.
func PublicURLPattern(scheme, domain string, port int) string {
	return PublicURL(scheme, "<app>-<env>."+domain, port)
}

// CheckPublicDomain says what is wrong with the domain of public hostnames:
// a DNS name (one label such as "localhost" is fine) without scheme, port or path.
func CheckPublicDomain(d string) error {
	switch {
	case d == "":
		return errors.New("is required: the domain apps are reached under (<app>-<env>.<domain>), e.g. apps.example.com")
	case strings.Contains(d, "://"):
		return fmt.Errorf("%q: give the domain alone, without a scheme (use --public-scheme)", d)
	case strings.ContainsAny(d, ":/"):
		return fmt.Errorf("%q: give the domain alone, without a port or path (use --public-port)", d)
	case len(d) > 200:
		return fmt.Errorf("%q: longer than 200 characters", d[:40]+"...")
	}
	for _, l := range strings.Split(strings.TrimSuffix(d, "."), ".") {
		if !dnsLabel(l) {
			return fmt.Errorf("%q is not a DNS name: label %q must be 1-63 letters, digits or '-', not starting or ending with '-'", d, l)
		}
	}
	return nil
}

func dnsLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
