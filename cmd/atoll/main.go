// Command atoll is the one binary: server, agent, dev, and the client CLI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/atollhq/atoll/controlplane"
)

func main() {
	controlplane.TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, errorLine(err))
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// errorLine is what main prints for a failed command: prefixed with
// "atoll:" unless the message already names the command ("atoll env: ...").
func errorLine(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "atoll:") || strings.HasPrefix(msg, "atoll ") {
		return msg
	}
	return "atoll: " + msg
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// command is one node of the command tree.
type command struct {
	name  string
	short string
	run   func(ctx context.Context, env *cliEnv, args []string) error
	subs  []*command
}

// cliEnv carries the process's outputs (tests capture them).
type cliEnv struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func root() *command {
	return &command{name: "atoll", subs: []*command{
		{name: "dev", short: "run one server and a local agent in this process (data in ./atoll-data)", run: runDev},
		{name: "server", short: "run a control-plane server (raft voter)", run: runServer},
		agentCommand(),
		envCommand(),
		projectCommand(),
		appCommand(),
		releaseCommand(),
		blueprintCommand(),
		volumeCommand(),
		varsetCommand(),
		fileCommand(),
		nodeCommand(),
		orgCommand(),
		tokenCommand(),
		operatorCommand(),
		{name: "version", short: "print the version, commit and Go version (also: atoll --version)", run: runVersion},
	}}
}

// version is set at build time (-ldflags "-X main.version=v1.2.3"); a
// `go install`ed binary reports its module version instead.
var version = "dev"

func runVersion(_ context.Context, e *cliEnv, args []string) error {
	fs := flag.NewFlagSet("atoll version", flag.ContinueOnError)
	if done, err := parseFlags(e, fs, args, "", "print the version, commit and Go version"); done || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("atoll version: unexpected arguments %q", fs.Args())
	}
	fmt.Fprintln(e.stdout, versionLine())
	return nil
}

// versionLine: "atoll v1.2.0 (commit 1a2b3c4d5e6f, modified; go1.26.8 linux/amd64)".
func versionLine() string {
	v, commit, modified, goVersion := version, "", false, runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	} else if len(commit) > 12 {
		commit = commit[:12]
	}
	if modified {
		commit += ", modified"
	}
	return fmt.Sprintf("atoll %s (commit %s; %s %s/%s)", v, commit, goVersion, runtime.GOOS, runtime.GOARCH)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := &cliEnv{stdout: stdout, stderr: stderr, getenv: os.Getenv}
	return dispatch(ctx, env, root(), args, "atoll")
}

func dispatch(ctx context.Context, env *cliEnv, c *command, args []string, path string) error {
	if c.run != nil {
		return c.run(ctx, env, args)
	}
	if c.name == "atoll" && len(args) > 0 && (args[0] == "--version" || args[0] == "-version" || args[0] == "-v") {
		return runVersion(ctx, env, args[1:])
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		printHelp(env.stdout, c, path)
		if len(args) == 0 {
			return usagef("%s: missing command", path)
		}
		return nil
	}
	for _, s := range c.subs {
		if s.name == args[0] {
			return dispatch(ctx, env, s, args[1:], path+" "+s.name)
		}
	}
	return usagef("%s: unknown command %q (run `%s --help`)", path, args[0], path)
}

func printHelp(w io.Writer, c *command, path string) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n", path)
	if c.short != "" {
		fmt.Fprintf(w, "\n%s\n", c.short)
	}
	fmt.Fprintln(w, "\ncommands:")
	tw := tableWriter(w)
	for _, s := range c.subs {
		fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.short)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nrun `%s <command> --help` for a command's flags", path)
	if path == "atoll" {
		fmt.Fprint(w, "; `atoll --version` prints the version")
	}
	fmt.Fprintln(w)
}

// parseFlags parses the flags of a command that is not a client command
// (server, dev, agent, version): -h/--help prints its usage on stdout and
// ends the command successfully (done); a bad flag is a usage error that
// says how to get help.
func parseFlags(e *cliEnv, fs *flag.FlagSet, args []string, argsUsage, short string) (done bool, err error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printLeafHelp(e.stdout, fs, fs.Name(), argsUsage, short)
		return true, nil
	}
	if err != nil {
		return true, usagef("%s: %v (run `%s --help`)", fs.Name(), err, fs.Name())
	}
	return false, nil
}
