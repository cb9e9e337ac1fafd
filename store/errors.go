package store

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/mattn/go-sqlite3"
)

// explain adds what the user can do to the SQLite errors whose cause is the
// file or the disk rather than the data — a database the user may not write,
// a full disk or a file-size limit — since SQLite's own words ("attempt to
// write a readonly database", "disk I/O error") name neither the file nor
// that nothing recorded was lost. Other errors are returned as they are.
func explain(path string, err error) error {
	var se sqlite3.Error
	if err == nil || !errors.As(err, &se) {
		return err
	}
	switch {
	case se.Code == sqlite3.ErrReadonly:
		return fmt.Errorf("%w (the database file %s is read-only for this user: fix its permissions or those of its directory, or choose another file with --db)", err, path)
	case se.Code == sqlite3.ErrFull, se.SystemErrno == syscall.ENOSPC, se.SystemErrno == syscall.EDQUOT:
		return fmt.Errorf("%w (the disk holding %s is full: what was recorded before is kept; free space and run the same command again to go on)", err, path)
	case se.SystemErrno == syscall.EFBIG:
		return fmt.Errorf("%w (%s reached the file-size limit (ulimit -f): what was recorded before is kept; raise the limit and run the same command again to go on)", err, path)
	}
	return err
}
