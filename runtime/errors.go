package runtime

import (
	"errors"
	"strconv"
)

// Sentinel errors. Implementations wrap them with %w (or with the helpers
// below) and add context; callers test with errors.Is.
var (
	// ErrNotFound: no container with this id or name.
	ErrNotFound = errors.New("container not found")
	// ErrAlreadyExists: a container with this name already exists.
	ErrAlreadyExists = errors.New("container already exists")
	// ErrImageNotFound: the image is not on this host and could not be pulled.
	ErrImageNotFound = errors.New("image not found")
	// ErrVolumeNotFound: no volume with this name.
	ErrVolumeNotFound = errors.New("volume not found")
	// ErrVolumeInUse: the volume is mounted by a container and cannot be removed.
	ErrVolumeInUse = errors.New("volume in use")
	// ErrInvalidSpec: the ContainerSpec (or another argument) is malformed.
	ErrInvalidSpec = errors.New("invalid container spec")
	// ErrUnknownOwner: a file owner names a user or group the image does not have.
	ErrUnknownOwner = errors.New("unknown file owner")
	// ErrNotRunning: the operation needs a running container.
	ErrNotRunning = errors.New("container not running")
	// ErrSplitArgs: SplitArgs was given an unterminated quote or escape.
	ErrSplitArgs = errors.New("cannot split arguments")
)

// ImageNotFound returns an error that names the image, wraps
// ErrImageNotFound and, when not nil, the cause (typically the pull error).
// Its message reads: image "hello:2" not found on this host and could not be
// pulled: <cause>.
func ImageNotFound(ref string, cause error) error {
	msg := "image " + strconv.Quote(ref) + " not found on this host"
	if cause != nil {
		msg += " and could not be pulled: " + cause.Error()
	}
	return &wrapError{msg: msg, errs: []error{ErrImageNotFound, cause}}
}

// wrapError carries its own message and unwraps to several errors, so that a
// message can read naturally and still match errors.Is on its sentinel.
type wrapError struct {
	msg  string
	errs []error
}

func (e *wrapError) Error() string   { return e.msg }
func (e *wrapError) Unwrap() []error { return e.errs }
