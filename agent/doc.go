// Package agent runs on every host: it holds one session with the control
// plane (AgentService.Session), turns the assignments it receives into
// containers through a runtime.Runtime, and reports their status and usage
// back. It also serves the host's public-endpoint router (agent/router) and
// the AgentLogService the control plane reads instance logs from.
//
// The design follows swarmkit's agent: one long-lived session stream that is
// rebuilt against another server with backoff when it fails; a full set of
// assignments first, then changes; status batched (~100 ms); and per
// instance a small state machine (image -> create -> start -> running ->
// exited -> restart with backoff) driven by a reconcile loop that compares
// desired with actual state, with idempotent steps. Containers carry the
// runtime.Label* labels, so a restarted agent adopts what runs instead of
// duplicating it, and removes what no assignment claims.
//
// The agent must not make scheduling decisions, write to the control plane's
// state other than through the session, or stop containers because the
// session is down: instances keep running while disconnected.
package agent
