package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// call is what a client command's body gets: a connection, a context with the
// token, the parsed positional arguments and the process outputs.
type call struct {
	ctx  context.Context
	conn *grpc.ClientConn
	o    *clientOpts
	e    *cliEnv
	args []string
}

// json reports whether -o json was asked for.
func (c *call) json() bool { return c.o.output == "json" }

// print writes m as protojson with -o json, or calls tbl otherwise.
func (c *call) print(m proto.Message, tbl func(w io.Writer)) error {
	if c.json() {
		return printJSON(c.e.stdout, m)
	}
	tbl(c.e.stdout)
	return nil
}

// leaf builds a client command. build registers the command's own flags on fs
// and returns the body; argsUsage describes the positional arguments; the
// command takes between min and max positionals (max < 0: no limit).
func leaf(path, argsUsage, short string, min, max int, build func(fs *flag.FlagSet) func(c *call) error) *command {
	name := path[strings.LastIndex(path, " ")+1:]
	return &command{name: name, short: short, run: func(ctx context.Context, e *cliEnv, args []string) error {
		full := "atoll " + path
		fs := flag.NewFlagSet(full, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Usage = func() {}
		body := build(fs)
		o := &clientOpts{}
		o.register(fs, e.getenv)
		pos, err := parseInterspersed(fs, args)
		if errors.Is(err, flag.ErrHelp) {
			printLeafHelp(e.stdout, fs, full, argsUsage, short)
			return nil
		}
		if err != nil {
			return usagef("%s: %v (run `%s --help`)", full, err, full)
		}
		if len(pos) < min || (max >= 0 && len(pos) > max) {
			return usagef("usage: %s %s[flags] (run `%s --help`)", full, argsUsage+sep(argsUsage), full)
		}
		conn, cctx, err := o.dial(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := body(&call{ctx: cctx, conn: conn, o: o, e: e, args: pos}); err != nil {
			var u usageError
			if errors.As(err, &u) {
				return err
			}
			return o.explain(err)
		}
		return nil
	}}
}

func sep(s string) string {
	if s == "" {
		return ""
	}
	return " "
}

// group is an inner node of the command tree.
func group(name, short string, subs ...*command) *command {
	return &command{name: name, short: short, subs: subs}
}

// parseInterspersed parses flags anywhere among the arguments (Go's flag
// package stops at the first positional): `env create demo --cpu 2` works.
// "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func printLeafHelp(w io.Writer, fs *flag.FlagSet, full, argsUsage, short string) {
	fmt.Fprintf(w, "usage: %s %s[flags]\n\n%s\n\nflags:\n", full, argsUsage+sep(argsUsage), short)
	type fl struct{ name, usage, def string }
	var fls []fl
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		d := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" && f.Name != "token" {
			d = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fls = append(fls, fl{dash + f.Name, f.Usage, d})
	})
	sort.SliceStable(fls, func(i, j int) bool { return fls[i].name < fls[j].name })
	rows := make([][]string, 0, len(fls))
	for _, f := range fls {
		rows = append(rows, []string{"  " + f.name, f.usage + f.def})
	}
	tw := tableWriter(w)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	m := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { m[f.Name] = true })
	return m
}

// parseLabels turns k=v pairs into a map; "k-" (with allowRemove) marks k for removal.
func parseLabels(kvs []string, allowRemove bool) (set map[string]string, remove []string, err error) {
	set = map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			if allowRemove && strings.HasSuffix(kv, "-") && len(kv) > 1 {
				remove = append(remove, strings.TrimSuffix(kv, "-"))
				continue
			}
			return nil, nil, usagef("--label %q: want key=value", kv)
		}
		if k == "" {
			return nil, nil, usagef("--label %q: empty key", kv)
		}
		set[k] = v
	}
	return set, remove, nil
}

// ago formats the time since t ("3m", "2h", "5d"); "-" for zero.
func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return shortDuration(now.Sub(t))
}

// until formats the time left until t ("in 8h", "in 2d", "expired"); "-" for zero.
func until(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now)
	if d <= 0 {
		return "expired"
	}
	// Rounded up: a TTL of 48h just set reads "in 2d", not "in 47h".
	unit := time.Second
	switch {
	case d > 48*time.Hour:
		unit = 24 * time.Hour
	case d > time.Hour:
		unit = time.Hour
	case d > time.Minute:
		unit = time.Minute
	}
	return "in " + shortDuration((d+unit-1)/unit*unit)
}

func shortDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
