package api

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/fsm"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Limits of user input.
const (
	MaxNameLen        = 63
	MaxDescriptionLen = 1024
	MaxLabels         = 64
	MaxVariables      = fsm.MaxVariables
	MaxVariableValue  = 4096
	DefaultPageSize   = 50
	MaxPageSize       = 100
)

var (
	slugPattern     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	labelKeyPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`)
	varNamePattern  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,127}$`)
	envVarPattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

func checkName(v *apierr.Violations, field, name string) {
	switch {
	case name == "":
		v.Add(field, "is required")
	case !utf8.ValidString(name):
		v.Add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLen:
		v.Add(field, "must be at most %d characters", MaxNameLen)
	case strings.TrimSpace(name) != name:
		v.Add(field, "must not start or end with spaces")
	default:
		for _, r := range name {
			if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" ._-", r)) {
				v.Add(field, "may contain letters, digits, spaces, '.', '_' and '-' only (found %q)", r)
				return
			}
		}
	}
}

func checkSlug(v *apierr.Violations, field, slug string) {
	if slug != "" && !slugPattern.MatchString(slug) {
		v.Add(field, "must be a DNS label: 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit")
	}
}

// Slugify derives a DNS-label slug from a name ("My Env!" -> "my-env").
func Slugify(name, fallback string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	if s == "" {
		return fallback
	}
	return s
}

func checkDescription(v *apierr.Violations, field, d string) {
	if !utf8.ValidString(d) {
		v.Add(field, "must be valid UTF-8")
	} else if utf8.RuneCountInString(d) > MaxDescriptionLen {
		v.Add(field, "must be at most %d characters", MaxDescriptionLen)
	} else if r, bad := invisibleRune(d); bad {
		v.Add(field, "must not contain control or text-direction characters (found %U); newlines and tabs are fine", r)
	}
}

// invisibleRune finds a control character other than newline and tab, or a
// bidirectional override/isolate (which can make text display as something
// other than what it is).
func invisibleRune(s string) (rune, bool) {
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t' || r == '\r':
		case unicode.IsControl(r), r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
			return r, true
		}
	}
	return 0, false
}

func checkLabels(v *apierr.Violations, field string, labels map[string]string) {
	if len(labels) > MaxLabels {
		v.Add(field, "at most %d labels", MaxLabels)
		return
	}
	for k, val := range labels {
		if !labelKeyPattern.MatchString(k) {
			v.Add(field+"."+truncate(k, 40), "label keys are 1-63 characters of letters, digits, '.', '_', '/', '-'")
		}
		if len(val) > 256 || !utf8.ValidString(val) {
			v.Add(field+"."+truncate(k, 40), "label values are valid UTF-8 of at most 256 bytes")
		}
	}
}

func checkVariables(v *apierr.Violations, field string, vars map[string]string) {
	if len(vars) > MaxVariables {
		v.Add(field, "at most %d variables", MaxVariables)
		return
	}
	for k, val := range vars {
		if !varNamePattern.MatchString(k) {
			v.Add(field+"."+truncate(k, 40), "variable names start with a letter or '_' and contain letters, digits, '_', '.', '-' (at most 128)")
		}
		if len(val) > MaxVariableValue || !utf8.ValidString(val) {
			v.Add(field+"."+truncate(k, 40), "values are valid UTF-8 of at most %d bytes", MaxVariableValue)
		}
	}
}

// ParseTTL accepts Go durations plus a "d" day unit ("48h", "30m", "7d",
// "1d12h"); see fsm.ParseTTL.
func ParseTTL(s string) (time.Duration, error) { return fsm.ParseTTL(s) }

func checkTTL(v *apierr.Violations, field, ttl string, maxTTL time.Duration) time.Duration {
	d, err := ParseTTL(ttl)
	switch {
	case err != nil:
		v.Add(field, "%v", err)
	case ttl != "" && d < time.Minute:
		v.Add(field, "must be at least 1m")
	case d > maxTTL:
		v.Add(field, "must be at most %s", maxTTL)
	}
	return d
}

// fillQuota checks a requested quota and fills unset (0) dimensions from def.
func fillQuota(v *apierr.Violations, field string, q, def *atollv1.Resources) *atollv1.Resources {
	out := &atollv1.Resources{Cpu: def.GetCpu(), Memory: def.GetMemory(), Storage: def.GetStorage()}
	if q == nil {
		return out
	}
	for _, d := range []struct {
		name string
		val  int32
		dst  *int32
		unit string
	}{{"cpu", q.Cpu, &out.Cpu, "millicores"}, {"memory", q.Memory, &out.Memory, "MB"}, {"storage", q.Storage, &out.Storage, "MB"}} {
		switch {
		case d.val < 0:
			v.Add(field+"."+d.name, "must be a positive number of %s, got %d", d.unit, d.val)
		case d.val > 0:
			*d.dst = d.val
		}
	}
	return out
}

// statusAliases are other platforms' status names (Blueberry's list filter).
var statusAliases = map[string]atollv1.EnvironmentStatus{
	"ready":    atollv1.EnvironmentStatus_RUNNING,
	"creating": atollv1.EnvironmentStatus_PROVISIONING,
	"failed":   atollv1.EnvironmentStatus_ERROR,
}

func parseStatus(v *apierr.Violations, field, s string) atollv1.EnvironmentStatus {
	if s == "" {
		return atollv1.EnvironmentStatus_ENVIRONMENT_STATUS_UNSPECIFIED
	}
	n, ok := atollv1.EnvironmentStatus_value[strings.ToUpper(s)]
	if alias, isAlias := statusAliases[strings.ToLower(s)]; !ok && isAlias {
		n, ok = int32(alias), true
	}
	if !ok || n == 0 {
		names := make([]string, 0, len(atollv1.EnvironmentStatus_name))
		for i := int32(1); i < int32(len(atollv1.EnvironmentStatus_name)); i++ {
			names = append(names, atollv1.EnvironmentStatus_name[i])
		}
		v.Add(field, "must be one of %s", strings.Join(names, ", "))
	}
	return atollv1.EnvironmentStatus(n)
}

// checkMountPath returns what is wrong with a container mount path, or "":
// the runtime's rule (runtime.ContainerSpec.Validate: absolute, clean, not
// /) plus no ':' or NUL, which the engine's mount syntax cannot carry.
func checkMountPath(p string) string {
	switch {
	case !path.IsAbs(p):
		return fmt.Sprintf("must be an absolute path, got %q", truncate(p, 80))
	case strings.ContainsAny(p, "\x00:"):
		return "must not contain ':' or NUL"
	case p == "/":
		return "must not be / (the container's root): mount below it, e.g. /data"
	case path.Clean(p) != p:
		return fmt.Sprintf("must be clean (no '.', '..', '//' or trailing '/'): %q, not %q", path.Clean(p), truncate(p, 80))
	}
	return ""
}

// tcpPorts lists an app's TCP port numbers ("80, 8080"), or "none".
func tcpPorts(ports []*atollv1.Port) string {
	var out []string
	for _, p := range ports {
		if strings.EqualFold(p.GetProtocol(), "TCP") || p.GetProtocol() == "" {
			out = append(out, strconv.Itoa(int(p.GetNumber())))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
