package controlplane

import (
	"bytes"

	"github.com/atollhq/atoll/controlplane/state"
)

func stateRestoreCheck(data []byte) (*state.Store, error) {
	return state.Restore(bytes.NewReader(data), 0)
}
