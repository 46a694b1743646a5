package main

import (
	"errors"
	"flag"
	"io"
)

func newTestFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
