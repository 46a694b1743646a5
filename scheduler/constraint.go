package scheduler

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Op is a constraint operator.
type Op string

// The constraint operators. Equal and NotEqual take one value, In and NotIn
// one or more.
const (
	OpEqual    Op = "="
	OpNotEqual Op = "!="
	OpIn       Op = "in"
	OpNotIn    Op = "notin"
)

// Constraint restricts the nodes a request may use by node label. A node
// without the label satisfies != and notin, and fails = and in (the
// Kubernetes label-selector rules).
type Constraint struct {
	Key    string
	Op     Op
	Values []string
}

// String renders c in the syntax ParseConstraint reads.
func (c Constraint) String() string {
	switch c.Op {
	case OpEqual, OpNotEqual:
		return c.Key + string(c.Op) + strings.Join(c.Values, ",")
	default:
		return c.Key + " " + string(c.Op) + " (" + strings.Join(c.Values, ",") + ")"
	}
}

// Matches reports whether a node with these labels satisfies c.
func (c Constraint) Matches(labels map[string]string) bool {
	v, ok := labels[c.Key]
	in := ok && slices.Contains(c.Values, v)
	switch c.Op {
	case OpEqual, OpIn:
		return in
	case OpNotEqual, OpNotIn:
		return !in
	}
	return false
}

// Validate checks the key, operator and values of c.
func (c Constraint) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidConstraint, c.String(), fmt.Sprintf(format, a...))
	}
	if err := checkToken("key", c.Key); err != nil {
		return bad("%v", err)
	}
	switch c.Op {
	case OpEqual, OpNotEqual:
		if len(c.Values) != 1 {
			return bad("operator %s takes exactly one value, got %d", c.Op, len(c.Values))
		}
	case OpIn, OpNotIn:
		if len(c.Values) == 0 {
			return bad("operator %s needs at least one value", c.Op)
		}
	default:
		return bad("unknown operator %q (want =, !=, in, notin)", string(c.Op))
	}
	for _, v := range c.Values {
		if err := checkToken("value", v); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// ParseConstraint reads one constraint:
//
//	zone=a   zone==a   zone!=b   zone in (a,b)   disk notin (hdd)
//
// Keys and values are made of letters, digits and "-_./:"; spaces around
// operators, parentheses and commas are allowed.
func ParseConstraint(s string) (Constraint, error) {
	fail := func(format string, a ...any) (Constraint, error) {
		return Constraint{}, fmt.Errorf("%w %q: %s", ErrInvalidConstraint, s, fmt.Sprintf(format, a...))
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return fail("empty")
	}
	// Equality operators: the first '=' or "!=" splits key and value.
	if i := strings.IndexAny(t, "=!"); i >= 0 {
		key := strings.TrimSpace(t[:i])
		rest := t[i:]
		var op Op
		switch {
		case strings.HasPrefix(rest, "!="):
			op, rest = OpNotEqual, rest[2:]
		case strings.HasPrefix(rest, "=="):
			op, rest = OpEqual, rest[2:]
		case strings.HasPrefix(rest, "="):
			op, rest = OpEqual, rest[1:]
		default:
			return fail("unexpected %q (want = or !=)", rest[:1])
		}
		val := strings.TrimSpace(rest)
		if err := checkToken("key", key); err != nil {
			return fail("%v", err)
		}
		if err := checkToken("value", val); err != nil {
			return fail("%v", err)
		}
		return Constraint{Key: key, Op: op, Values: []string{val}}, nil
	}
	// Set operators: "<key> in (<v>,...)" or "<key> notin (<v>,...)".
	fields := strings.Fields(t)
	if len(fields) < 2 {
		return fail("want key=value, key!=value, key in (a,b) or key notin (a,b)")
	}
	key := fields[0]
	if err := checkToken("key", key); err != nil {
		return fail("%v", err)
	}
	rest := strings.TrimSpace(t[len(key):])
	word := rest
	if i := strings.IndexAny(rest, " \t("); i >= 0 {
		word = rest[:i]
	}
	var op Op
	switch Op(word) {
	case OpIn, OpNotIn:
		op = Op(word)
	default:
		return fail("unknown operator %q (want =, !=, in, notin)", word)
	}
	rest = strings.TrimSpace(rest[len(word):])
	if !strings.HasPrefix(rest, "(") {
		return fail("expected \"(\" after %s", op)
	}
	if !strings.HasSuffix(rest, ")") {
		return fail("missing \")\"")
	}
	inner := strings.TrimSpace(rest[1 : len(rest)-1])
	if inner == "" {
		return fail("operator %s needs at least one value", op)
	}
	var values []string
	for _, v := range strings.Split(inner, ",") {
		v = strings.TrimSpace(v)
		if err := checkToken("value", v); err != nil {
			return fail("%v", err)
		}
		values = append(values, v)
	}
	return Constraint{Key: key, Op: op, Values: values}, nil
}

// ParseConstraints parses each string and returns all errors at once.
func ParseConstraints(ss []string) ([]Constraint, error) {
	out := make([]Constraint, 0, len(ss))
	var errs []error
	for _, s := range ss {
		c, err := ParseConstraint(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func checkToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-', r == '_', r == '.', r == '/', r == ':':
		default:
			return fmt.Errorf("%s %q: character %q not allowed", what, s, r)
		}
	}
	return nil
}
