// Command atoll is the one binary: server, agent, dev, and the client CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/atollhq/atoll/controlplane"
)

func main() {
	controlplane.TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintln(os.Stderr, "atoll:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "atoll:", err)
		os.Exit(1)
	}
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
		{name: "version", short: "print the version", run: func(_ context.Context, e *cliEnv, _ []string) error {
			fmt.Fprintln(e.stdout, "atoll", version)
			return nil
		}},
	}}
}

var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := &cliEnv{stdout: stdout, stderr: stderr, getenv: os.Getenv}
	return dispatch(ctx, env, root(), args, "atoll")
}

func dispatch(ctx context.Context, env *cliEnv, c *command, args []string, path string) error {
	if c.run != nil {
		return c.run(ctx, env, args)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
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
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", path)
	for _, s := range c.subs {
		fmt.Fprintf(w, "  %-10s %s\n", s.name, s.short)
	}
}
