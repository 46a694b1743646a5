package api

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Log request limits.
const (
	DefaultLogLines = 100
	MaxLogLines     = 1000
)

// NoticeStream is the LogLine.stream of a line atoll writes into a log
// stream itself (an instance's stream ended, an instance was replaced),
// next to the containers' stdout and stderr.
const NoticeStream = "atoll"

// LogStreamEnded is the ErrorInfo reason of the error a log stream ends
// with when an instance's logs (or the leader relaying them) went away.
const LogStreamEnded = "LOG_STREAM_ENDED"

// AppLogsForwarder is implemented by a LogSource that cannot reach the
// agents itself (a follower: the agents' log endpoints admit the leader's
// session secret only). ForwardAppLogs relays the whole call to the server
// that can and reports true; false means this server serves it itself.
type AppLogsForwarder interface {
	ForwardAppLogs(ctx context.Context, req *atollv1.GetAppLogsRequest, send func(*atollv1.LogLine) error) (bool, error)
}

// logRecheck is how often a follow re-checks, besides on every change of
// the instances and nodes, whether a stopped instance runs again.
var logRecheck = 5 * time.Second

// GetAppLogs streams the logs of an app's replicas (or one of them), merged
// by time; with follow it keeps streaming new lines, each once, picks up
// the instances that replace the followed ones, and ends with an error
// (LOG_STREAM_ENDED) when instances' streams fail, rather than going quiet.
func (s *appService) GetAppLogs(req *atollv1.GetAppLogsRequest, stream atollv1.AppService_GetAppLogsServer) error {
	ctx := stream.Context()
	var v apierr.Violations
	lines := int(req.Lines)
	switch {
	case lines < 0 || lines > MaxLogLines:
		v.Add("lines", "must be between 0 and %d (0: %d, or with follow only new lines)", MaxLogLines, DefaultLogLines)
	case lines == 0 && !req.Follow:
		lines = DefaultLogLines
	}
	var since time.Time
	if req.Since != "" {
		d, err := ParseTTL(req.Since)
		if err != nil || d <= 0 {
			v.Add("since", "must be a duration like \"30m\" or \"1h\"")
		}
		since = s.opts.Now().Add(-d)
	}
	if err := v.Err(); err != nil {
		return err
	}
	tx := s.snap()
	app, _, err := s.findApp(ctx, tx, req.EnvId, req.AppId)
	if err != nil {
		return err
	}
	var targets []*atollv1.Instance
	for _, in := range tx.AppInstances(app.Id) {
		if req.InstanceId == "" || in.Id == req.InstanceId {
			targets = append(targets, in)
		}
	}
	if req.InstanceId != "" && len(targets) == 0 {
		return instanceNotFound(req.InstanceId, app)
	}
	if s.opts.Logs == nil {
		return apierr.FailedPrecondition("logs are not available on this server")
	}
	if fw, ok := s.opts.Logs.(AppLogsForwarder); ok {
		if done, err := fw.ForwardAppLogs(ctx, req, stream.Send); done {
			return err
		}
	}
	lf := &logFollow{s: s, ctx: ctx, app: app, single: req.InstanceId, send: stream.Send,
		insts: map[string]*instLog{}, start: s.opts.Now()}
	return lf.run(tx, targets, lines, since, req.Follow)
}

// instanceNotFound names the instance and the app it was looked for in.
func instanceNotFound(id string, app *atollv1.App) error {
	st := status.Newf(codes.NotFound, "instance %q not found in app %q (%s); `atoll app get` lists its instances", id, app.Name, app.Id)
	if d, err := st.WithDetails(&errdetails.ResourceInfo{ResourceType: "instance", ResourceName: id, Owner: app.Id,
		Description: "not an instance of app " + app.Name}); err == nil {
		st = d
	}
	return st.Err()
}

// logFollow is one GetAppLogs call: the instances it reads and, when
// following, the state that keeps every line once.
type logFollow struct {
	s      *appService
	ctx    context.Context
	app    *atollv1.App
	single string // the one instance asked for, or "" for the whole app
	send   func(*atollv1.LogLine) error
	start  time.Time

	insts   map[string]*instLog
	events  chan logEvent
	failed  []error // the instances' streams that failed, in order
	waiting bool    // a "nothing streams now" notice was sent
}

// instLog is what a follow knows of one instance.
type instLog struct {
	in   *atollv1.Instance
	node string // node name and id, for messages
	// The newest line emitted so far (zero: none) and how many lines with
	// exactly that time (by stream and text) were emitted: a stream that
	// starts again at boundary skips those.
	boundary   time.Time
	atBoundary map[lineKey]int
	// since is where the next stream starts when no line was seen (nil:
	// only new lines).
	since *timestamppb.Timestamp

	gen      int // streams started; events of older ones are ignored
	active   bool
	cancel   context.CancelCauseFunc
	skip     map[lineKey]int // of the active stream: boundary lines still to skip
	endIndex uint64          // the instance's ModifyIndex when its last stream ended
	gone     bool            // no longer an instance of the app
	failed   bool
	err      error // why it failed
}

type lineKey struct{ stream, text string }

type logEvent struct {
	id   string
	gen  int
	line *atollv1.LogLine // nil: the stream ended with err
	err  error
}

func (lf *logFollow) run(tx *state.Txn, targets []*atollv1.Instance, lines int, since time.Time, follow bool) error {
	var sinceTS *timestamppb.Timestamp
	if !since.IsZero() {
		sinceTS = timestamppb.New(since)
	}
	for _, in := range targets {
		il := &instLog{in: in, node: nodeLabel(tx, in.NodeId), atBoundary: map[lineKey]int{}}
		switch {
		case lines > 0 && sinceTS != nil:
			il.since = sinceTS
		case lines > 0:
			il.since = timestamppb.New(time.Unix(0, 0)) // history was empty: every line is new
		}
		lf.insts[in.Id] = il
	}
	if lines > 0 {
		if err := lf.history(lines, sinceTS); err != nil {
			return err
		}
	}
	if !follow {
		return lf.endErr()
	}
	return lf.follow(tx)
}

// history sends the last lines of every instance, merged by time, and
// remembers per instance where its stream continues.
func (lf *logFollow) history(lines int, since *timestamppb.Timestamp) error {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		backlog []*atollv1.LogLine
		got     = map[string][]*atollv1.LogLine{}
		errs    = map[string]error{}
	)
	ireq := &atollv1.InstanceLogsRequest{Lines: int32(lines), Since: since}
	for id, il := range lf.insts {
		if il.in.NodeId == "" {
			continue // not placed: no container, no logs
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []*atollv1.LogLine
			err := lf.s.opts.Logs.InstanceLogs(lf.ctx, il.in, ireq, func(l *atollv1.LogLine) error {
				if l.InstanceId == "" {
					l.InstanceId = id
				}
				mine = append(mine, l)
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			got[id] = mine
			backlog = append(backlog, mine...)
			if err != nil && status.Code(err) != codes.NotFound { // NotFound: no container (yet, or any more)
				errs[id] = err
			}
		}()
	}
	wg.Wait()
	if err := lf.ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	for id, mine := range got {
		lf.insts[id].saw(mine...)
	}
	sort.SliceStable(backlog, func(i, j int) bool { return backlog[i].Timestamp.AsTime().Before(backlog[j].Timestamp.AsTime()) })
	if len(backlog) > lines {
		backlog = backlog[len(backlog)-lines:]
	}
	for _, l := range backlog {
		if err := lf.send(l); err != nil {
			return err
		}
	}
	ids := make([]string, 0, len(errs))
	for id := range errs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		lf.fail(lf.insts[id], errs[id])
	}
	return nil
}

// saw records lines of il that were emitted, in order.
func (il *instLog) saw(ls ...*atollv1.LogLine) {
	for _, l := range ls {
		t := l.Timestamp.AsTime()
		if t.After(il.boundary) {
			il.boundary = t
			clear(il.atBoundary)
		}
		if t.Equal(il.boundary) {
			il.atBoundary[lineKey{l.Stream, l.Message}]++
		}
	}
}

// fail records that il's stream failed.
func (lf *logFollow) fail(il *instLog, err error) error {
	e := lf.streamEnded(il, err)
	il.failed, il.err = true, e
	lf.failed = append(lf.failed, e)
	return e
}

// noticeFailed tells the client of a failed stream while others go on.
func (lf *logFollow) noticeFailed(il *instLog, e error) error {
	return lf.notice(il.in.Id, status.Convert(e).Message()+" (the other instances keep streaming)")
}

// streamEnded is the error for an instance whose log stream failed.
func (lf *logFollow) streamEnded(il *instLog, err error) error {
	reason := err.Error()
	if st, ok := status.FromError(err); ok {
		reason = st.Message()
	}
	st := status.Newf(codes.Unavailable, "logs of instance %s on node %s ended: %s; retry", il.in.Id, il.node, reason)
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: LogStreamEnded, Domain: apierr.Domain,
		Metadata: map[string]string{"instanceId": il.in.Id, "nodeId": il.in.NodeId}}); derr == nil {
		st = d
	}
	return st.Err()
}

// endErr is how the call ends: nil, or UNAVAILABLE naming every instance
// whose stream failed.
func (lf *logFollow) endErr() error {
	switch len(lf.failed) {
	case 0:
		return nil
	case 1:
		return lf.failed[0]
	}
	msgs := make([]string, len(lf.failed))
	for i, e := range lf.failed {
		msgs[i] = strings.TrimSuffix(status.Convert(e).Message(), "; retry")
	}
	st := status.New(codes.Unavailable, strings.Join(msgs, "; ")+"; retry")
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: LogStreamEnded, Domain: apierr.Domain}); err == nil {
		st = d
	}
	return st.Err()
}

func (lf *logFollow) notice(instanceID, msg string) error {
	return lf.send(&atollv1.LogLine{Timestamp: timestamppb.New(lf.s.opts.Now()), InstanceId: instanceID, Stream: NoticeStream, Message: msg})
}

func (lf *logFollow) activeCount() int {
	n := 0
	for _, il := range lf.insts {
		if il.active {
			n++
		}
	}
	return n
}

// follow streams new lines until the client goes, the app is deleted, the
// one instance asked for is replaced, or every stream has failed.
func (lf *logFollow) follow(tx *state.Txn) error {
	ctx, cancel := context.WithCancel(lf.ctx)
	defer cancel()
	lf.ctx = ctx
	lf.events = make(chan logEvent, 256)
	for _, il := range lf.insts {
		if !il.failed && il.in.NodeId != "" && nodeDown(tx, il.in) == "" {
			lf.startStream(il)
		}
	}
	if lf.activeCount() > 0 {
		for _, il := range lf.insts { // the history of these failed
			if il.failed {
				if err := lf.noticeFailed(il, il.err); err != nil {
					return err
				}
			}
		}
	}
	tick := time.NewTicker(logRecheck)
	defer tick.Stop()
	recheck := false
	for {
		end, err := lf.refresh(tx, recheck)
		if end || err != nil {
			return err
		}
		instWatch := tx.TableWatch(state.TableInstances)
		nodeWatch := tx.TableWatch(state.TableNodes)
		appWatch := tx.TableWatch(state.TableApps)
		recheck = false
	wait:
		for {
			select {
			case <-lf.ctx.Done():
				return nil
			case ev := <-lf.events:
				if err := lf.handle(ev); err != nil {
					return err
				}
				if ev.line != nil {
					continue // a line never ends the call: only a stream's end can
				}
				if end, err := lf.settled(); end || err != nil {
					return err
				}
			case <-instWatch:
				break wait
			case <-nodeWatch:
				break wait
			case <-appWatch:
				break wait
			case <-tick.C:
				recheck = true
				break wait
			}
		}
		tx = lf.s.snap()
	}
}

// startStream follows il from where its lines were left.
func (lf *logFollow) startStream(il *instLog) {
	il.gen++
	il.active, il.gone = true, false
	il.skip = make(map[lineKey]int, len(il.atBoundary))
	for k, n := range il.atBoundary {
		il.skip[k] = n
	}
	req := &atollv1.InstanceLogsRequest{Follow: true, Since: il.since}
	if !il.boundary.IsZero() {
		req.Since = timestamppb.New(il.boundary)
	}
	if il.since == nil {
		// Only new lines this time; a later stream (after a restart)
		// starts at the call's start.
		il.since = timestamppb.New(lf.start)
	}
	ctx, cancel := context.WithCancelCause(lf.ctx)
	il.cancel = cancel
	in, id, gen, events := il.in, il.in.Id, il.gen, lf.events
	go func() {
		err := lf.s.opts.Logs.InstanceLogs(ctx, in, req, func(l *atollv1.LogLine) error {
			select {
			case events <- logEvent{id: id, gen: gen, line: l}:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			err = c // cancelled by the follow, with the reason (e.g. the node is down)
		}
		select {
		case events <- logEvent{id: id, gen: gen, err: err}:
		case <-lf.ctx.Done():
		}
	}()
}

// handle takes one event of an instance's stream.
func (lf *logFollow) handle(ev logEvent) error {
	il := lf.insts[ev.id]
	if il == nil || ev.gen != il.gen || !il.active {
		return nil
	}
	if ev.line != nil {
		l := ev.line
		if l.InstanceId == "" {
			l.InstanceId = il.in.Id
		}
		t := l.Timestamp.AsTime()
		if t.Before(il.boundary) {
			return nil // read again by a restarted stream
		}
		if t.Equal(il.boundary) {
			k := lineKey{l.Stream, l.Message}
			if il.skip[k] > 0 {
				il.skip[k]--
				return nil
			}
		}
		il.saw(l)
		lf.waiting = false
		return lf.send(l)
	}
	il.active = false
	il.cancel(nil)
	il.endIndex = il.in.ModifyIndex
	if ev.err != nil && status.Code(ev.err) != codes.NotFound && lf.ctx.Err() == nil {
		if lf.s.snap().Instance(il.in.Id) == nil {
			return lf.replaced(il) // its container went with it
		}
		e := lf.fail(il, ev.err)
		if lf.activeCount() > 0 {
			return lf.noticeFailed(il, e)
		}
		return nil
	}
	// Ended cleanly: the container stopped or is gone. If the instance is
	// no longer the app's, say so; else it is followed again when it runs.
	if il.gone {
		return lf.replaced(il)
	}
	return nil
}

// replaced tells the client il is no longer an instance of the app.
func (lf *logFollow) replaced(il *instLog) error {
	delete(lf.insts, il.in.Id)
	msg := fmt.Sprintf("instance %s on node %s was replaced or removed (app restarted, updated, scaled or drained); its log stream ended", il.in.Id, il.node)
	if lf.single == "" {
		msg += "; new instances of the app are followed as they start"
	} else {
		msg += "; follow the app (without an instance) to see the instances that replace it"
	}
	return lf.notice(il.in.Id, msg)
}

// settled reports whether the call is over: nothing streams and nothing
// more can (every stream failed, or the one instance asked for is gone).
func (lf *logFollow) settled() (bool, error) {
	if lf.activeCount() > 0 {
		return false, nil
	}
	if lf.single != "" {
		if il := lf.insts[lf.single]; il == nil || il.failed {
			return true, lf.endErr()
		}
		return false, nil
	}
	if len(lf.failed) > 0 {
		return true, lf.endErr()
	}
	if !lf.waiting {
		lf.waiting = true
		if err := lf.notice("", fmt.Sprintf("no instance of app %s is streaming logs now (stopped, starting or being replaced); waiting for its instances to run", lf.app.Name)); err != nil {
			return true, err
		}
	}
	return false, nil
}

// refresh brings the followed instances in line with the state: it stops
// streams of instances on nodes that are down, notes instances that left
// the app, starts new ones and restarts those that run again. recheck
// also restarts running instances whose record did not change.
func (lf *logFollow) refresh(tx *state.Txn, recheck bool) (bool, error) {
	app := tx.App(lf.app.Id)
	if app == nil || app.IsDeleted {
		for _, il := range lf.insts {
			if il.active {
				il.cancel(nil)
			}
		}
		if err := lf.notice("", fmt.Sprintf("app %s was deleted; its log stream ends", lf.app.Name)); err != nil {
			return true, err
		}
		return true, lf.endErr()
	}
	current := map[string]*atollv1.Instance{}
	for _, in := range tx.AppInstances(app.Id) {
		current[in.Id] = in
	}
	ids := make([]string, 0, len(lf.insts))
	for id := range lf.insts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		il := lf.insts[id]
		in := current[id]
		if in == nil {
			// Gone: an active stream delivers the container's last lines
			// and ends when the agent stops it.
			il.gone = true
			if il.active {
				if why := nodeDown(tx, il.in); why != "" {
					il.cancel(apierr.Unavailable("%s", why)) // it would not end by itself
				}
			}
			if !il.active && !il.failed {
				if err := lf.replaced(il); err != nil {
					return true, err
				}
			}
			continue
		}
		if il.failed {
			continue
		}
		il.in, il.node = in, nodeLabel(tx, in.NodeId)
		if il.active {
			if why := nodeDown(tx, in); why != "" {
				il.cancel(apierr.Unavailable("%s", why))
			}
			continue
		}
		runs := in.State == atollv1.InstanceState_INSTANCE_RUNNING || in.State == atollv1.InstanceState_INSTANCE_STARTING
		if in.NodeId != "" && runs && nodeDown(tx, in) == "" && (in.ModifyIndex != il.endIndex || recheck && in.State == atollv1.InstanceState_INSTANCE_RUNNING) {
			lf.startStream(il)
		}
	}
	if lf.single == "" {
		for _, in := range tx.AppInstances(app.Id) {
			if lf.insts[in.Id] != nil || in.NodeId == "" {
				continue
			}
			// A new instance: every line it wrote is new to this stream.
			il := &instLog{in: in, node: nodeLabel(tx, in.NodeId), atBoundary: map[lineKey]int{},
				since: timestamppb.New(time.Unix(0, 0))}
			lf.insts[in.Id] = il
			if nodeDown(tx, in) == "" {
				lf.startStream(il)
			}
		}
	}
	return lf.settled()
}

// nodeDown says why in's node cannot stream its logs, or "".
func nodeDown(tx *state.Txn, in *atollv1.Instance) string {
	n := tx.Node(in.NodeId)
	if n == nil {
		return fmt.Sprintf("node %s is no longer registered", in.NodeId)
	}
	if n.Status == atollv1.NodeStatus_NODE_DOWN {
		msg := fmt.Sprintf("node %s (%s) is down", n.Name, n.Id)
		if n.StatusMessage != "" {
			msg += ": " + n.StatusMessage
		}
		return msg
	}
	return ""
}

// nodeLabel names a node for messages: "name (id)".
func nodeLabel(tx *state.Txn, id string) string {
	if id == "" {
		return "(none)"
	}
	if n := tx.Node(id); n != nil && n.Name != "" {
		return n.Name + " (" + id + ")"
	}
	return id
}
