// Package atomicfile replaces files so that a crash or power loss leaves
// either the old or the new content, never a mix: the data goes to a
// temporary file in the same directory, is synced, and is renamed over the
// target (rename(2) is atomic within a file system).
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, with permissions perm (not masked by the
// umask).
func Write(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, false)
}

// WriteKeepPrev is Write that first keeps the old content, if any, as
// path+".prev" (a rollback point for configuration files).
func WriteKeepPrev(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, true)
}

func write(path string, data []byte, perm fs.FileMode, keepPrev bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if keepPrev {
		if old, err := os.ReadFile(path); err == nil {
			if err := os.WriteFile(path+".prev", old, perm); err != nil {
				return fmt.Errorf("save %s.prev: %w", path, err)
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	// The rename is durable only once the directory is synced; a failure
	// here leaves the new content in place, so it is not an error.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
