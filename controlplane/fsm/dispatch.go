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
		return "delete_environment", v, err
	case *atollv1.Command_RestoreEnvironment:
		v, err := a.applyRestoreEnvironment(c.RestoreEnvironment)
		return "restore_environment", v, err
	case *atollv1.Command_SetEnvironmentState:
		v, err := a.applySetEnvironmentState(c.SetEnvironmentState)
		return "set_environment_state", v, err
	case *atollv1.Command_ExpireEnvironments:
		return "expire_environments", nil, a.applyExpireEnvironments(c.ExpireEnvironments)
	}
	return "unknown", nil, fmt.Errorf("%w: %T", ErrUnknownCommand, a.cmd.Cmd)
}

func (a *applier) applyUpsertServer(c *atollv1.UpsertServerCmd) error {
	if c.GetServer().GetId() == "" {
		return fmt.Errorf("fsm: server without id")
	}
	return a.tx.Insert(state.TableServers, c.Server)
}
