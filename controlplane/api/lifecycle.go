package api

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atollhq/atoll/controlplane/apierr"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

func (s *envService) ExtendEnvironment(ctx context.Context, req *atollv1.ExtendEnvironmentRequest) (*atollv1.Environment, error) {
	var v apierr.Violations
	d := checkTTL(&v, "by", req.By, s.opts.MaxTTL)
	if req.By == "" {
		v.Add("by", "is required: how much time to add, e.g. \"24h\"")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	e, err := s.getEnv(ctx, s.snap(), req.EnvironmentId, false)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	base := now
	if e.ExpiresAt != nil && e.ExpiresAt.AsTime().After(now) {
		base = e.ExpiresAt.AsTime()
	}
	until := base.Add(d)
	if until.Sub(now) > s.opts.MaxTTL {
		return nil, apierr.InvalidField("by", "would put expiry %s from now, beyond the maximum TTL of %s", until.Sub(now).Round(time.Minute), s.opts.MaxTTL)
	}
	ttl := e.Ttl
	if ttl == "" {
		ttl = req.By
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_UpdateEnvironment{UpdateEnvironment: &atollv1.UpdateEnvironmentCmd{
		EnvironmentId: e.Id, Paths: []string{"ttl"}, ExpectedVersion: e.Version,
		Patch: &atollv1.Environment{Ttl: ttl, ExpiresAt: timestamppb.New(until)},
	}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.view(s.snap(), out.(*atollv1.Environment)), nil
}

func (s *envService) ReconcileEnvironment(ctx context.Context, req *atollv1.ReconcileEnvironmentRequest) (*atollv1.Environment, error) {
	if _, err := s.getEnv(ctx, s.snap(), req.EnvironmentId, false); err != nil {
		return nil, err
	}
	cmd := s.command(ctx)
	cmd.Cmd = &atollv1.Command_ReconcileEnvironment{ReconcileEnvironment: &atollv1.ReconcileEnvironmentCmd{EnvironmentId: req.EnvironmentId}}
	out, err := s.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.view(s.snap(), out.(*atollv1.Environment)), nil
}

func (s *envService) CleanupFailedEnvironments(ctx context.Context, req *atollv1.CleanupFailedEnvironmentsRequest) (*atollv1.CleanupFailedEnvironmentsResponse, error) {
	tx := s.snap()
	var envs []*atollv1.Environment
	if req.ProjectId != "" {
		if err := CheckID("projectId", "prj", req.ProjectId); err != nil {
			return nil, err
		}
		if p := tx.Project(req.ProjectId); p == nil || p.OrgId != orgOf(ctx) {
			return nil, apierr.NotFound("project", req.ProjectId)
		}
		envs = tx.ProjectEnvironments(req.ProjectId)
	} else {
		envs = tx.Environments(orgOf(ctx))
	}
	resp := &atollv1.CleanupFailedEnvironmentsResponse{}
	for _, e := range envs {
		if e.IsDeleted || e.Status != atollv1.EnvironmentStatus_ERROR {
			continue
		}
		cmd := s.command(ctx)
		cmd.Cmd = &atollv1.Command_DeleteEnvironment{DeleteEnvironment: &atollv1.DeleteEnvironmentCmd{EnvironmentId: e.Id, Force: true}}
		if _, err := s.apply(ctx, cmd); err != nil {
			continue // changed meanwhile (repaired or deleted): leave it
		}
		resp.Deleted = append(resp.Deleted, e.Id)
	}
	resp.Count = int32(len(resp.Deleted))
	return resp, nil
}

// healthClient probes app instances; short timeouts, no redirects.
var healthClient = &http.Client{
	Timeout:       3 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func (s *envService) CheckEnvironmentHealth(ctx context.Context, req *atollv1.CheckEnvironmentHealthRequest) (*atollv1.EnvironmentHealth, error) {
	tx := s.snap()
	e, err := s.getEnv(ctx, tx, req.EnvironmentId, false)
	if err != nil {
		return nil, err
	}
	resp := &atollv1.EnvironmentHealth{EnvironmentId: e.Id, Details: map[string]*atollv1.EndpointHealth{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, app := range tx.Apps(e.Id) {
		pe := app.GetPublicEndpoint()
		if pe == nil || app.IsDeleted {
			continue
		}
		var addrs []string
		for _, in := range tx.AppInstances(app.Id) {
			if in.State == atollv1.InstanceState_INSTANCE_RUNNING && in.Address != "" {
				addrs = append(addrs, in.Address)
			}
		}
		sort.Strings(addrs)
		h := &atollv1.EndpointHealth{Name: app.Name, Url: pe.Url}
		resp.Details[app.Name] = h
		if len(addrs) == 0 {
			h.Status, h.Error = "no_instances", "no running instance"
			continue
		}
		wg.Add(1)
		go func(h *atollv1.EndpointHealth, addr, host string) {
			defer wg.Done()
			start := time.Now()
			r, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
			if err == nil {
				r.Host = host
				var res *http.Response
				if res, err = healthClient.Do(r); err == nil {
					res.Body.Close()
					mu.Lock()
					h.HttpStatus = int32(res.StatusCode)
					mu.Unlock()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			h.ResponseTimeMs = time.Since(start).Milliseconds()
			switch {
			case err != nil:
				h.Status, h.Error = "unhealthy", err.Error()
			case h.HttpStatus >= 500:
				h.Status = "unhealthy"
			default:
				h.Status = "healthy"
			}
		}(h, addrs[0], pe.Hostname)
	}
	wg.Wait()
	healthy := 0
	for _, h := range resp.Details {
		if h.Status == "healthy" {
			healthy++
		}
	}
	switch {
	case len(resp.Details) == 0:
		resp.Status = "no_endpoints"
	case healthy == len(resp.Details):
		resp.Status = "healthy"
	case healthy == 0:
		resp.Status = "unhealthy"
	default:
		resp.Status = "degraded"
	}
	resp.CheckedAt = timestamppb.New(s.opts.Now())
	return resp, nil
}
