//go:build !linux

package store

import "errors"

// fsSize is not known here: AutoMaxBytes falls back to DefaultMaxBytesCap.
func fsSize(string) (int64, error) { return 0, errors.New("file system size unknown") }
