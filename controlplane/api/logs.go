package api

import (
	"context"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Log request limits.
const (
	DefaultLogLines = 100
	MaxLogLines     = 1000
)

// GetAppLogs streams the logs of an app's replicas (or one of them), merged
// by time; with follow it keeps streaming new lines.
func (s *appService) GetAppLogs(req *atollv1.GetAppLogsRequest, stream atollv1.AppService_GetAppLogsServer) error {
	ctx := stream.Context()
	var v apierr.Violations
	lines := int(req.Lines)
	switch {
	case lines == 0:
		lines = DefaultLogLines
	case lines < 0 || lines > MaxLogLines:
		v.Add("lines", "must be between 1 and %d", MaxLogLines)
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
		return apierr.NotFound("instance", req.InstanceId)
	}
	if s.opts.Logs == nil {
		return apierr.FailedPrecondition("logs are not available on this server")
	}
	ireq := &atollv1.InstanceLogsRequest{Lines: int32(lines)}
	if !since.IsZero() {
		ireq.Since = timestamppb.New(since)
	}
	// Backlog: gather each replica's last lines, merge by time, keep the newest.
	var (
		mu      sync.Mutex
		backlog []*atollv1.LogLine
		wg      sync.WaitGroup
		errs    []error
	)
	for _, in := range targets {
		wg.Add(1)
		go func(in *atollv1.Instance) {
			defer wg.Done()
			err := s.opts.Logs.InstanceLogs(ctx, in, ireq, func(l *atollv1.LogLine) error {
				mu.Lock()
				backlog = append(backlog, l)
				mu.Unlock()
				return nil
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(in)
	}
	wg.Wait()
	if len(backlog) == 0 && len(errs) > 0 && len(errs) == len(targets) {
		return errs[0]
	}
	sort.SliceStable(backlog, func(i, j int) bool { return backlog[i].Timestamp.AsTime().Before(backlog[j].Timestamp.AsTime()) })
	if len(backlog) > lines {
		backlog = backlog[len(backlog)-lines:]
	}
	var last time.Time
	for _, l := range backlog {
		if err := stream.Send(l); err != nil {
			return err
		}
		last = l.Timestamp.AsTime()
	}
	if !req.Follow {
		return nil
	}
	// Follow: new lines from every replica as they come.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan *atollv1.LogLine, 256)
	freq := &atollv1.InstanceLogsRequest{Follow: true, Lines: 0}
	if !last.IsZero() {
		freq.Since = timestamppb.New(last.Add(time.Nanosecond))
	} else {
		freq.Since = timestamppb.New(s.opts.Now())
	}
	for _, in := range targets {
		go func(in *atollv1.Instance) {
			_ = s.opts.Logs.InstanceLogs(ctx, in, freq, func(l *atollv1.LogLine) error {
				select {
				case out <- l:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}(in)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-out:
			if err := stream.Send(l); err != nil {
				return err
			}
		}
	}
}
