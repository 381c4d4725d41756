package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		existing []byte // nil: no file before
		keepPrev bool
		perm     fs.FileMode
		want     []string
	}{
		{"new file, keepPrev", nil, true, 0o600, []string{"f"}},
		{"new file", nil, false, 0o600, []string{"f"}},
		{"new file, world-readable", nil, false, 0o644, []string{"f"}},
		{"replace, keepPrev", []byte("old\n"), true, 0o600, []string{"f", "f.prev"}},
		{"replace", []byte("old\n"), false, 0o600, []string{"f"}},
		{"replace a world-readable file", []byte("old\n"), false, 0o640, []string{"f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tt.existing != nil {
				if err := os.WriteFile(path, tt.existing, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data := []byte("new\n")
			write := Write
			if tt.keepPrev {
				write = WriteKeepPrev
			}
			if err := write(path, data, tt.perm); err != nil {
				t.Fatalf("write(%s) = %v", path, err)
			}
			if diff := cmp.Diff(tt.want, dirNames(t, dir)); diff != "" {
				t.Errorf("directory mismatch (-want +got):\n%s", diff)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(data), string(got)); diff != "" {
				t.Errorf("content mismatch (-want +got):\n%s", diff)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if m := fi.Mode().Perm(); m != tt.perm {
				t.Errorf("mode = %v, want %v", m, tt.perm)
			}
			if tt.keepPrev && tt.existing != nil {
				prev, err := os.ReadFile(path + ".prev")
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(tt.existing), string(prev)); diff != "" {
					t.Errorf(".prev content mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestWriteMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nonexistent", "f")
	err := Write(path, []byte("x"), 0o600)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Write(%s) = %v, want an error naming the path and wrapping fs.ErrNotExist", path, err)
	}
}
