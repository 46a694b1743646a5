package fsm

import (
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/apierr"
	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// Deployment actions.
const (
	DeployActionDeploy   = "deploy"
	DeployActionUndeploy = "undeploy"
)

// applyCreateRelease stores an immutable release; its version is unique per
// (project, app name).
func (a *applier) applyCreateRelease(c *atollv1.CreateReleaseCmd) (*atollv1.Release, error) {
	r := c.GetRelease()
	if r.GetId() == "" || a.tx.Release(r.Id) != nil {
		return nil, apierr.AlreadyExists("release", "id", r.GetId(), "the cluster")
	}
	p, err := a.ownProject(r.ProjectId)
	if err != nil {
		return nil, err
	}
	for _, o := range a.tx.Releases(p.Id) {
		if o.AppName == r.AppName && o.Version == r.Version {
			return nil, apierr.AlreadyExists("release", "version", r.Version, "app "+r.AppName+" of project "+p.Id)
		}
	}
	r.OrgId = p.OrgId
	r.CreatedBy, r.CreatedAt = a.cmd.Actor, a.ts()
	r.CreateIndex, r.ModifyIndex = a.index, a.index
	if err := a.tx.Insert(state.TableReleases, r); err != nil {
		return nil, err
	}
	return r, a.event("release.created", "release", r.Id, r.OrgId, r.ProjectId, nil)
}

// applyDeployRelease creates or updates the app to the release and records
// the deployment, in one command. Every check (the release, the target app,
// optimistic concurrency, quota) happens before the first write: the app
// create/update applies check first and write last, and what follows them
// only writes.
func (a *applier) applyDeployRelease(c *atollv1.DeployReleaseCmd) (*atollv1.Deployment, error) {
	dep, app := c.GetDeployment(), c.GetApp()
	if dep.GetId() == "" || app == nil {
		return nil, apierr.InvalidField("deployment", "a deployment id and an app are required")
	}
	if a.tx.Deployment(dep.Id) != nil {
		return nil, apierr.AlreadyExists("deployment", "id", dep.Id, "the cluster")
	}
	env, err := a.liveEnv(dep.EnvironmentId)
	if err != nil {
		return nil, err
	}
	rel := a.tx.Release(dep.ReleaseId)
	if rel == nil || rel.OrgId != a.cmd.OrgId {
		return nil, apierr.NotFound("release", dep.ReleaseId)
	}
	if rel.ProjectId != env.ProjectId {
		return nil, apierr.FailedPrecondition("release %s belongs to project %s but environment %s is in project %s: a release deploys only to environments of its project",
			rel.Id, rel.ProjectId, env.Id, env.ProjectId)
	}
	if app.EnvIdRef != env.Id {
		return nil, apierr.InvalidField("app", "the app is not of environment %s", env.Id)
	}
	var out *atollv1.App
	if c.Create {
		// applyCreateApp refuses (name taken, mounts, quota) before writing.
		out, err = a.applyCreateApp(&atollv1.CreateAppCmd{App: app})
	} else {
		cur := a.tx.App(app.Id)
		if cur == nil || cur.IsDeleted || cur.EnvIdRef != env.Id {
			return nil, apierr.NotFound("app", app.Id)
		}
		if c.ExpectedVersion == 0 {
			return nil, apierr.InvalidField("expectedVersion", "is required to update an app")
		}
		out, err = a.applyUpdateApp(&atollv1.UpdateAppCmd{App: app, ExpectedVersion: c.ExpectedVersion})
	}
	if err != nil {
		return nil, err
	}
	// Only writes from here on.
	cur := a.tx.Environment(env.Id)
	dep.OrgId, dep.AppId, dep.AppName = cur.OrgId, out.Id, out.Name
	dep.PreviousReleaseId = cur.ActiveDeployments[out.Name]
	dep.Action, dep.DeployedBy, dep.DeployedAt = DeployActionDeploy, a.cmd.Actor, a.ts()
	dep.AppVersion, dep.CreateIndex = out.Version, a.index
	next := proto.Clone(cur).(*atollv1.Environment)
	if next.ActiveDeployments == nil {
		next.ActiveDeployments = map[string]string{}
	}
	next.ActiveDeployments[out.Name] = rel.Id
	return dep, a.recordDeployment(next, dep)
}

// applyUndeployApp deletes a deployed app (its instances go) and records the
// undeploy.
func (a *applier) applyUndeployApp(c *atollv1.UndeployAppCmd) (*atollv1.Deployment, error) {
	dep := c.GetDeployment()
	if dep.GetId() == "" {
		return nil, apierr.InvalidField("deployment", "a deployment id is required")
	}
	if a.tx.Deployment(dep.Id) != nil {
		return nil, apierr.AlreadyExists("deployment", "id", dep.Id, "the cluster")
	}
	app, env, err := a.ownApp(c.AppId)
	if err != nil {
		return nil, err
	}
	if dep.EnvironmentId != "" && dep.EnvironmentId != env.Id {
		return nil, apierr.NotFound("app", c.AppId)
	}
	active := env.ActiveDeployments[app.Name]
	if active == "" {
		return nil, apierr.NotFound("deployment of app", app.Name)
	}
	if err := a.applyDeleteApp(&atollv1.DeleteAppCmd{AppId: app.Id}); err != nil {
		return nil, err
	}
	// Only writes from here on.
	cur := a.tx.Environment(env.Id)
	dep.OrgId, dep.EnvironmentId, dep.AppId, dep.AppName = cur.OrgId, env.Id, app.Id, app.Name
	dep.ReleaseId, dep.PreviousReleaseId = "", active
	dep.Action, dep.DeployedBy, dep.DeployedAt = DeployActionUndeploy, a.cmd.Actor, a.ts()
	if del := a.tx.App(app.Id); del != nil {
		dep.AppVersion = del.Version
	}
	dep.CreateIndex = a.index
	next := proto.Clone(cur).(*atollv1.Environment)
	delete(next.ActiveDeployments, app.Name)
	return dep, a.recordDeployment(next, dep)
}

// recordDeployment stores the deployment and the environment's new active
// deployments. That is not a new version of the environment (its settings
// did not change) but watchers see it as an update.
func (a *applier) recordDeployment(env *atollv1.Environment, dep *atollv1.Deployment) error {
	env.ModifyIndex = a.index
	if err := a.tx.Insert(state.TableEnvironments, env); err != nil {
		return err
	}
	if err := a.tx.Insert(state.TableDeployments, dep); err != nil {
		return err
	}
	if err := a.event("deployment.created", "deployment", dep.Id, dep.OrgId, env.ProjectId, nil); err != nil {
		return err
	}
	return a.event("environment.updated", "environment", env.Id, env.OrgId, env.ProjectId, env)
}

// forgetDeployment drops the active deployment of a deleted app, so that
// the environment does not name a release for an app that no longer runs.
func (a *applier) forgetDeployment(envID, appName string) error {
	cur := a.tx.Environment(envID)
	if cur == nil || cur.ActiveDeployments[appName] == "" {
		return nil
	}
	env := proto.Clone(cur).(*atollv1.Environment)
	delete(env.ActiveDeployments, appName)
	env.ModifyIndex = a.index
	return a.tx.Insert(state.TableEnvironments, env)
}

// renameDeployment keeps a renamed app's active deployment under its new name.
func (a *applier) renameDeployment(envID, from, to string) error {
	cur := a.tx.Environment(envID)
	if from == to || cur == nil || cur.ActiveDeployments[from] == "" {
		return nil
	}
	env := proto.Clone(cur).(*atollv1.Environment)
	env.ActiveDeployments[to] = env.ActiveDeployments[from]
	delete(env.ActiveDeployments, from)
	env.ModifyIndex = a.index
	return a.tx.Insert(state.TableEnvironments, env)
}
