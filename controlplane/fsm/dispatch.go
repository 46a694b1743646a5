package fsm

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/controlplane/state"
	atollv1 "github.com/atollhq/atoll/proto/atoll/v1"
)

// applier applies one command inside the batch transaction.
type applier struct {
	tx    *state.Txn
	index uint64
	cmd   *atollv1.Command
	time  time.Time
	prune map[string]bool // apps that lost instances: drop their unused specs (rollout.go)
	// environments whose kept content versions may be unused (content.go)
	pruneEnvs map[string]bool
}

// dispatch is the one switch over command types.
func (a *applier) dispatch() (string, proto.Message, error) {
	switch c := a.cmd.Cmd.(type) {
	case *atollv1.Command_UpsertServer:
		return "upsert_server", nil, a.applyUpsertServer(c.UpsertServer)
	case *atollv1.Command_CreateOrganization:
		v, err := a.applyCreateOrganization(c.CreateOrganization)
		return "create_organization", v, err
	case *atollv1.Command_UpdateOrganization:
		v, err := a.applyUpdateOrganization(c.UpdateOrganization)
		return "update_organization", v, err
	case *atollv1.Command_CreateProject:
		v, err := a.applyCreateProject(c.CreateProject)
		return "create_project", v, err
	case *atollv1.Command_UpdateProject:
		v, err := a.applyUpdateProject(c.UpdateProject)
		return "update_project", v, err
	case *atollv1.Command_DeleteProject:
		return "delete_project", nil, a.applyDeleteProject(c.DeleteProject)
	case *atollv1.Command_CreateToken:
		v, err := a.applyCreateToken(c.CreateToken)
		return "create_token", v, err
	case *atollv1.Command_RevokeToken:
		return "revoke_token", nil, a.applyRevokeToken(c.RevokeToken)
	case *atollv1.Command_CreateEnvironment:
		v, err := a.applyCreateEnvironment(c.CreateEnvironment)
		return "create_environment", v, err
	case *atollv1.Command_UpdateEnvironment:
		v, err := a.applyUpdateEnvironment(c.UpdateEnvironment)
		return "update_environment", v, err
	case *atollv1.Command_DeleteEnvironment:
		v, err := a.applyDeleteEnvironment(c.DeleteEnvironment)
		if c.DeleteEnvironment.Purge {
			return "purge_environment", v, err
		}
		return "delete_environment", v, err
	case *atollv1.Command_RestoreEnvironment:
		v, err := a.applyRestoreEnvironment(c.RestoreEnvironment)
		return "restore_environment", v, err
	case *atollv1.Command_SetEnvironmentState:
		v, err := a.applySetEnvironmentState(c.SetEnvironmentState)
		return "set_environment_state", v, err
	case *atollv1.Command_CreateApp:
		v, err := a.applyCreateApp(c.CreateApp)
		return "create_app", v, err
	case *atollv1.Command_UpdateApp:
		v, err := a.applyUpdateApp(c.UpdateApp)
		return "update_app", v, err
	case *atollv1.Command_DeleteApp:
		return "delete_app", nil, a.applyDeleteApp(c.DeleteApp)
	case *atollv1.Command_CreateVolume:
		v, err := a.applyCreateVolume(c.CreateVolume)
		return "create_volume", v, err
	case *atollv1.Command_DeleteVolume:
		return "delete_volume", nil, a.applyDeleteVolume(c.DeleteVolume)
	case *atollv1.Command_CreateVariableSet:
		v, err := a.applyCreateVariableSet(c.CreateVariableSet)
		return "create_variable_set", v, err
	case *atollv1.Command_DeleteVariableSet:
		return "delete_variable_set", nil, a.applyDeleteVariableSet(c.DeleteVariableSet)
	case *atollv1.Command_UpdateVariableSet:
		v, err := a.applyUpdateVariableSet(c.UpdateVariableSet)
		return "update_variable_set", v, err
	case *atollv1.Command_UpdateFile:
		v, err := a.applyUpdateFile(c.UpdateFile)
		return "update_file", v, err
	case *atollv1.Command_CreateFile:
		v, err := a.applyCreateFile(c.CreateFile)
		return "create_file", v, err
	case *atollv1.Command_DeleteFile:
		return "delete_file", nil, a.applyDeleteFile(c.DeleteFile)
	case *atollv1.Command_UpsertNode:
		v, err := a.applyUpsertNode(c.UpsertNode)
		return "upsert_node", v, err
	case *atollv1.Command_SetNodeStatus:
		v, err := a.applySetNodeStatus(c.SetNodeStatus)
		return "set_node_status", v, err
	case *atollv1.Command_ApplyPlan:
		return "apply_plan", nil, a.applyApplyPlan(c.ApplyPlan)
	case *atollv1.Command_UpdateInstances:
		return "update_instances", nil, a.applyUpdateInstances(c.UpdateInstances)
	case *atollv1.Command_ReconcileEnvironment:
		v, err := a.applyReconcileEnvironment(c.ReconcileEnvironment)
		return "reconcile_environment", v, err
	case *atollv1.Command_CreateRelease:
		v, err := a.applyCreateRelease(c.CreateRelease)
		return "create_release", v, err
	case *atollv1.Command_DeployRelease:
		v, err := a.applyDeployRelease(c.DeployRelease)
		return "deploy_release", v, err
	case *atollv1.Command_UndeployApp:
		v, err := a.applyUndeployApp(c.UndeployApp)
		return "undeploy_app", v, err
	case *atollv1.Command_CreateBlueprint:
		v, err := a.applyCreateBlueprint(c.CreateBlueprint)
		return "create_blueprint", v, err
	case *atollv1.Command_DeleteBlueprint:
		return "delete_blueprint", nil, a.applyDeleteBlueprint(c.DeleteBlueprint)
	case *atollv1.Command_ExpireEnvironments:
		return "expire_environments", nil, a.applyExpireEnvironments(c.ExpireEnvironments)
	case *atollv1.Command_PurgeDeletedEnvironments:
		return "purge_deleted_environments", nil, a.applyPurgeDeletedEnvironments(c.PurgeDeletedEnvironments)
	}
	return "unknown", nil, fmt.Errorf("%w: %T", ErrUnknownCommand, a.cmd.Cmd)
}

func (a *applier) applyUpsertServer(c *atollv1.UpsertServerCmd) error {
	if c.GetServer().GetId() == "" {
		return fmt.Errorf("fsm: server without id")
	}
	return a.tx.Insert(state.TableServers, c.Server)
}
