package scheduler

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestParseConstraint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Constraint
	}{
		{"zone=a", Constraint{"zone", OpEqual, []string{"a"}}},
		{" zone == a ", Constraint{"zone", OpEqual, []string{"a"}}},
		{"zone!=b", Constraint{"zone", OpNotEqual, []string{"b"}}},
		{"zone != b", Constraint{"zone", OpNotEqual, []string{"b"}}},
		{"zone in (a,b)", Constraint{"zone", OpIn, []string{"a", "b"}}},
		{"zone in( a , b )", Constraint{"zone", OpIn, []string{"a", "b"}}},
		{"disk notin (hdd)", Constraint{"disk", OpNotIn, []string{"hdd"}}},
		{"atoll.io/region=eu-west.1", Constraint{"atoll.io/region", OpEqual, []string{"eu-west.1"}}},
	} {
		got, err := ParseConstraint(tc.in)
		if err != nil {
			t.Errorf("ParseConstraint(%q): %v", tc.in, err)
			continue
		}
		if got.Key != tc.want.Key || got.Op != tc.want.Op || !slices.Equal(got.Values, tc.want.Values) {
			t.Errorf("ParseConstraint(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestParseConstraintErrors(t *testing.T) {
	for _, tc := range []struct{ in, wantMsg string }{
		{"", "empty"},
		{"zone", "want key=value"},
		{"=a", "empty key"},
		{"zone=", "empty value"},
		{"zone=a b", `value "a b": character ' ' not allowed`},
		{"zone!a", `unexpected "!"`},
		{"zone like (a)", `unknown operator "like"`},
		{"zone inx (a)", `unknown operator "inx"`},
		{"zone in a,b", `expected "(" after in`},
		{"zone in (a,b", `missing ")"`},
		{"zone in ()", "operator in needs at least one value"},
		{"zone in (a,,b)", "empty value"},
		{"zone notin (a;b)", `character ';' not allowed`},
	} {
		_, err := ParseConstraint(tc.in)
		if err == nil {
			t.Errorf("ParseConstraint(%q): no error", tc.in)
			continue
		}
		if !errors.Is(err, ErrInvalidConstraint) {
			t.Errorf("ParseConstraint(%q): %v does not wrap ErrInvalidConstraint", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), `"`+tc.in+`"`) {
			t.Errorf("ParseConstraint(%q) error %q, want it to quote the input and contain %q", tc.in, err, tc.wantMsg)
		}
	}
}

func TestParseConstraintsReportsEveryError(t *testing.T) {
	_, err := ParseConstraints([]string{"zone=a", "bad", "disk in ()"})
	if err == nil || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), `"disk in ()"`) {
		t.Fatalf("err = %v, want both bad constraints named", err)
	}
	cs, err := ParseConstraints([]string{"zone=a", "disk notin (hdd)"})
	if err != nil || len(cs) != 2 {
		t.Fatalf("ParseConstraints = %v, %v", cs, err)
	}
}

func TestConstraintValidate(t *testing.T) {
	for _, tc := range []struct {
		c       Constraint
		wantMsg string // "" = valid
	}{
		{Constraint{"zone", OpEqual, []string{"a"}}, ""},
		{Constraint{"zone", OpIn, []string{"a", "b"}}, ""},
		{Constraint{"zone", OpEqual, []string{"a", "b"}}, "takes exactly one value, got 2"},
		{Constraint{"zone", OpNotIn, nil}, "needs at least one value"},
		{Constraint{"zone", "~", []string{"a"}}, `unknown operator "~"`},
		{Constraint{"", OpEqual, []string{"a"}}, "empty key"},
		{Constraint{"zone", OpIn, []string{"a b"}}, "not allowed"},
	} {
		err := tc.c.Validate()
		if tc.wantMsg == "" {
			if err != nil {
				t.Errorf("%v: unexpected %v", tc.c, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrInvalidConstraint) || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("%v: err %v, want %q", tc.c, err, tc.wantMsg)
		}
	}
}

func TestConstraintMatches(t *testing.T) {
	labels := map[string]string{"zone": "a", "disk": "ssd"}
	for _, tc := range []struct {
		c    string
		want bool
	}{
		{"zone=a", true},
		{"zone=b", false},
		{"zone!=a", false},
		{"zone!=b", true},
		{"zone in (b,a)", true},
		{"zone in (b,c)", false},
		{"zone notin (a)", false},
		{"zone notin (b,c)", true},
		// Missing label: = and in fail, != and notin pass.
		{"rack=1", false},
		{"rack in (1,2)", false},
		{"rack!=1", true},
		{"rack notin (1)", true},
	} {
		c, err := ParseConstraint(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Matches(labels); got != tc.want {
			t.Errorf("%s.Matches = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestConstraintStringRoundTrip(t *testing.T) {
	token := rapid.StringMatching(`[a-zA-Z0-9][a-zA-Z0-9._/:-]{0,8}`)
	rapid.Check(t, func(t *rapid.T) {
		op := rapid.SampledFrom([]Op{OpEqual, OpNotEqual, OpIn, OpNotIn}).Draw(t, "op")
		n := 1
		if op == OpIn || op == OpNotIn {
			n = rapid.IntRange(1, 4).Draw(t, "n")
		}
		c := Constraint{Key: token.Draw(t, "key"), Op: op, Values: rapid.SliceOfN(token, n, n).Draw(t, "values")}
		if err := c.Validate(); err != nil {
			t.Fatalf("generated invalid constraint: %v", err)
		}
		got, err := ParseConstraint(c.String())
		if err != nil {
			t.Fatalf("ParseConstraint(%q): %v", c.String(), err)
		}
		if got.Key != c.Key || got.Op != c.Op || !slices.Equal(got.Values, c.Values) {
			t.Fatalf("round trip of %q gave %#v", c.String(), got)
		}
	})
}
