//go:build !unix

package agent

import "errors"

func fsSizeMB(path string) (int, error) {
	return 0, errors.New("storage detection is not supported on this OS")
}
