package runtime

import (
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

var splitArgsCases = []struct {
	in      string
	want    []string
	wantErr string // substring of the error; "" means success
	notSh   bool   // differs from sh on purpose (a newline there ends the command)
}{
	{in: ``, want: nil},
	{in: `   `, want: nil},
	{in: `a`, want: []string{"a"}},
	{in: `  a   b	c
d  `, want: []string{"a", "b", "c", "d"}, notSh: true},
	{in: `-c 'echo Hello World'`, want: []string{"-c", "echo Hello World"}},
	{in: `-c "echo Hello World"`, want: []string{"-c", "echo Hello World"}},
	{in: `sh -c 'echo "$HOME" \n'`, want: []string{"sh", "-c", `echo "$HOME" \n`}},
	{in: `"a b"c'd e'f`, want: []string{"a bcd ef"}},
	{in: `'' ""`, want: []string{"", ""}},
	{in: `a '' b`, want: []string{"a", "", "b"}},
	{in: `x""`, want: []string{"x"}},
	{in: `a\ b`, want: []string{"a b"}},
	{in: `a\\b`, want: []string{`a\b`}},
	{in: `\'`, want: []string{`'`}},
	{in: `\"`, want: []string{`"`}},
	{in: `\a\b`, want: []string{"ab"}},
	{in: "a\\\nb", want: []string{"ab"}},
	{in: "a \\\n b", want: []string{"a", "b"}},
	{in: `"a\"b"`, want: []string{`a"b`}},
	{in: `"a\\b"`, want: []string{`a\b`}},
	{in: `"a\$b"`, want: []string{`a$b`}},
	{in: "\"a\\`b\"", want: []string{"a`b"}},
	{in: `"a\nb"`, want: []string{`a\nb`}},
	{in: `"a\'b"`, want: []string{`a\'b`}},
	{in: "\"a\\\nb\"", want: []string{"ab"}},
	{in: `'a\b'`, want: []string{`a\b`}},
	{in: `'it'\''s'`, want: []string{"it's"}},
	{in: `"it's"`, want: []string{"it's"}},
	{in: `--name=value --flag`, want: []string{"--name=value", "--flag"}},
	{in: `$HOME ~ *.go`, want: []string{"$HOME", "~", "*.go"}},
	{in: `a;b|c&d`, want: []string{"a;b|c&d"}},
	{in: `# not a comment`, want: []string{"#", "not", "a", "comment"}},
	{in: `héllo "wörld ✓"`, want: []string{"héllo", "wörld ✓"}},
	{in: `'unterminated`, wantErr: "offset 0: unterminated single quote"},
	{in: `a "b`, wantErr: "offset 2: unterminated double quote"},
	{in: `"a\"`, wantErr: "unterminated double quote"},
	{in: `a\`, wantErr: "trailing backslash"},
	{in: `'a'"`, wantErr: "offset 3: unterminated double quote"},
}

func TestSplitArgs(t *testing.T) {
	for _, tc := range splitArgsCases {
		got, err := SplitArgs(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrSplitArgs) {
				t.Errorf("SplitArgs(%q) = %q, %v; want error containing %q wrapping ErrSplitArgs", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestSplitArgsMatchesShell checks the table against /bin/sh for the inputs
// a shell would only split (no expansion or operator characters).
func TestSplitArgsMatchesShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no POSIX shell to compare with: %v", err)
	}
	for _, tc := range splitArgsCases {
		if tc.wantErr != "" || tc.notSh || strings.ContainsAny(tc.in, "$`~*?[#;|&<>()") {
			continue
		}
		// printf repeats its format for every argument; the leading x makes
		// sure there is at least one.
		out, err := exec.Command(sh, "-c", `printf '%s\0' x `+tc.in).Output()
		if err != nil {
			t.Errorf("sh on %q: %v", tc.in, err)
			continue
		}
		parts := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")[1:]
		got, _ := SplitArgs(tc.in)
		if len(parts) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, parts) {
			t.Errorf("SplitArgs(%q) = %q; sh splits it into %q", tc.in, got, parts)
		}
	}
}

func TestQuoteArgsRoundTrip(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{""},
		{"a", "b c", "it's", `back\slash`, `"dq"`, "$HOME", "new\nline", "tab\tx", "", "ünï"},
	} {
		got, err := SplitArgs(QuoteArgs(args))
		if err != nil || (len(args) > 0 && !reflect.DeepEqual(got, args)) || (len(args) == 0 && len(got) != 0) {
			t.Errorf("SplitArgs(QuoteArgs(%q)) = %q, %v", args, got, err)
		}
	}
}

func FuzzSplitArgs(f *testing.F) {
	for _, tc := range splitArgsCases {
		f.Add(tc.in)
	}
	f.Add("\x00'\"\\")
	f.Add(`"\`)
	f.Add("'\n'")
	f.Fuzz(func(t *testing.T, s string) {
		args, err := SplitArgs(s)
		if err != nil {
			if !errors.Is(err, ErrSplitArgs) {
				t.Fatalf("SplitArgs(%q): error %v does not wrap ErrSplitArgs", s, err)
			}
			return
		}
		// Words never contain the unquoted separators' effect: re-quoting
		// them must give back the same words.
		again, err := SplitArgs(QuoteArgs(args))
		if err != nil {
			t.Fatalf("SplitArgs(QuoteArgs(%q)): %v", args, err)
		}
		if len(args) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(args, again) {
			t.Fatalf("round trip of %q: %q became %q", s, args, again)
		}
		// The output never has more bytes than the input.
		var n int
		for _, a := range args {
			n += len(a)
		}
		if n > len(s) {
			t.Fatalf("SplitArgs(%q) produced %d bytes from %d", s, n, len(s))
		}
	})
}
