package scheduler

import "errors"

var (
	// ErrInvalidInput is returned by Schedule when the input as a whole is
	// malformed (duplicate ids, bad options). Problems with one request do not
	// fail the whole call: that request is reported in Plan.Unplaced instead.
	ErrInvalidInput = errors.New("scheduler: invalid input")

	// ErrInvalidConstraint wraps every constraint parse or validation error.
	ErrInvalidConstraint = errors.New("invalid constraint")

	// ErrInvalidRequest wraps every per-request validation error.
	ErrInvalidRequest = errors.New("invalid request")
)
