//go:build unix

package agent

import "golang.org/x/sys/unix"

// fsSizeMB is the size of the file system holding path, in MB.
func fsSizeMB(path string) (int, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int(uint64(st.Blocks) * uint64(st.Bsize) >> 20), nil
}
