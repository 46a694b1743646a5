package controlplane_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/atollhq/atoll/controlplane/cptest"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// TestQuotaRace: with organization quota room for exactly 10 environments,
// 100 concurrent creates give exactly 10 environments and 90 RESOURCE_EXHAUSTED.
func TestQuotaRace(t *testing.T) {
	f := newAPIFixture(t)
	quotaRace(t, f, []atollv1.EnvironmentServiceClient{f.envs})
}

// TestQuotaRaceThreeServers spreads the creates over a leader and two
// followers (writes forwarded to the leader): still exactly 10.
func TestQuotaRaceThreeServers(t *testing.T) {
	f := newAPIFixtureN(t, 3)
	var clients []atollv1.EnvironmentServiceClient
	for _, s := range f.c.Live() {
		clients = append(clients, cptest.Envs(t, s))
	}
	quotaRace(t, f, clients)
}

func quotaRace(t *testing.T, f *apiFixture, clients []atollv1.EnvironmentServiceClient) {
	ctx := cptest.Ctx(t, f.newOrg(t, "race org", nil))
	each := &atollv1.Resources{Cpu: 250, Memory: 512, Storage: 1024}
	const fit, tries = 10, 100
	orgQuota := &atollv1.Resources{Cpu: each.Cpu * fit, Memory: each.Memory * fit, Storage: each.Storage * fit}
	org, err := f.orgs.UpdateOrganization(ctx, &atollv1.UpdateOrganizationRequest{
		Organization: &atollv1.Organization{Quota: orgQuota},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"quota"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if org.Quota.Cpu != orgQuota.Cpu || org.Allocated.GetCpu() != 0 {
		t.Fatalf("organization after quota update: %v", org)
	}

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok        []*atollv1.Environment
		exhausted int
		other     []error
	)
	start := make(chan struct{})
	for i := 0; i < tries; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			e, err := clients[i%len(clients)].CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: fmt.Sprintf("racer-%03d", i), ResourceQuota: each})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok = append(ok, e)
			case status.Code(err) == codes.ResourceExhausted:
				exhausted++
				if msg := status.Convert(err).Message(); !strings.Contains(msg, "cpu") && !strings.Contains(msg, "memory") && !strings.Contains(msg, "storage") {
					t.Errorf("RESOURCE_EXHAUSTED does not name the dimension: %q", msg)
				}
			default:
				other = append(other, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("unexpected errors: %v", other)
	}
	if len(ok) != fit || exhausted != tries-fit {
		t.Fatalf("%d succeeded and %d were refused, want %d and %d", len(ok), exhausted, fit, tries-fit)
	}

	org, err = f.orgs.GetOrganization(ctx, &atollv1.GetOrganizationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	a := org.Allocated
	if a.Cpu != orgQuota.Cpu || a.Memory != orgQuota.Memory || a.Storage != orgQuota.Storage || org.EnvironmentCount != fit {
		t.Fatalf("allocated %v (count %d), want %v (count %d)", a, org.EnvironmentCount, orgQuota, fit)
	}
	if av := org.Available; av.Cpu != 0 || av.Memory != 0 || av.Storage != 0 {
		t.Fatalf("available %v, want zero", av)
	}
	l, err := f.envs.ListEnvironments(ctx, &atollv1.ListEnvironmentsRequest{IncludeDeleted: true})
	if err != nil || l.TotalCount != fit {
		t.Fatalf("list: %v %v", l, err)
	}

	// Freeing one environment's room lets exactly one more in; quota cannot go below the allocation.
	if _, err := f.envs.DeleteEnvironment(ctx, &atollv1.DeleteEnvironmentRequest{EnvironmentId: ok[0].Id}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.envs.CreateEnvironment(ctx, &atollv1.CreateEnvironmentRequest{Name: "late", ResourceQuota: each}); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	// Restoring the deleted one would overcommit.
	_, err = f.envs.RestoreEnvironment(ctx, &atollv1.RestoreEnvironmentRequest{EnvironmentId: ok[0].Id})
	wantCode(t, err, codes.ResourceExhausted)
	_, err = f.envs.UpdateEnvironment(ctx, &atollv1.UpdateEnvironmentRequest{EnvironmentId: ok[1].Id,
		Environment: &atollv1.Environment{ResourceQuota: &atollv1.Resources{Cpu: each.Cpu + 1}},
		UpdateMask:  &fieldmaskpb.FieldMask{Paths: []string{"resourceQuota.cpu"}}})
	wantCode(t, err, codes.ResourceExhausted, "cpu")
	_, err = f.orgs.UpdateOrganization(ctx, &atollv1.UpdateOrganizationRequest{
		Organization: &atollv1.Organization{Quota: &atollv1.Resources{Cpu: 1, Memory: orgQuota.Memory, Storage: orgQuota.Storage}},
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"quota"}},
	})
	wantCode(t, err, codes.FailedPrecondition, "cpu")
	org, _ = f.orgs.GetOrganization(ctx, &atollv1.GetOrganizationRequest{})
	if a := org.Allocated; a.Cpu != orgQuota.Cpu || a.Memory != orgQuota.Memory || org.EnvironmentCount != fit {
		t.Fatalf("after refusals: allocated %v count %d", a, org.EnvironmentCount)
	}
}
