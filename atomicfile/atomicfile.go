// Package atomicfile writes files that another step trusts (exports,
// reports, copied adapters) so that a crash, a full disk or a kill never
// leaves a half-written file under the final name: the bytes go to a
// temporary file beside it, which is synced, renamed into place, and the
// directory synced after the rename.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File is a file being written; its contents appear under its name only at
// Commit.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts writing path (through a temporary file in its directory).
func Create(path string) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("atomicfile: %w", err)
	}
	// CreateTemp makes the file private (0600); the result is an ordinary
	// output file, as os.Create would make it.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("atomicfile: %w", err)
	}
	return &File{File: f, path: path}, nil
}

// Commit syncs what was written, renames it to the final name and syncs the
// directory, so the rename survives a power loss. After a failed Commit the
// final name is untouched and the temporary file removed.
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: already committed or aborted")
	}
	f.done = true
	tmp := f.File.Name()
	err := f.File.Sync()
	err = errors.Join(err, f.File.Close())
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: write %s: %w", f.path, err)
	}
	if err := SyncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	return nil
}

// Abort discards what was written; the final name is untouched. It is a
// no-op after Commit, so `defer f.Abort()` is always safe.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	return f.Commit()
}

// SyncDir makes renames in dir durable: without it a power loss can undo a
// rename (or keep the name and lose the data) on ext4 and xfs.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
