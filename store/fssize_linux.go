package store

import "golang.org/x/sys/unix"

// fsSize is the size of the file system that holds dir.
func fsSize(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Blocks) * st.Bsize, nil
}
