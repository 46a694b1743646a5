package agent

import "errors"

// Sentinel errors.
var (
	// ErrInvalidConfig: Config.Validate found problems.
	ErrInvalidConfig = errors.New("invalid agent config")
	// ErrStorageExceeded: an instance stores more than its storage request.
	ErrStorageExceeded = errors.New("storage limit exceeded")
	// ErrSessionRejected: the server refused the session (e.g. a bad join token).
	ErrSessionRejected = errors.New("session rejected")
	// ErrNotLeader: the server is not the leader; see the leader hint.
	ErrNotLeader = errors.New("server is not the leader")
	// ErrAlreadyRunning: Run was called twice.
	ErrAlreadyRunning = errors.New("agent already running")
)
