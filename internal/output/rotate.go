package output

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// FileMode is the mode --output creates its files with (less the umask):
// events name processes, users, addresses and hostnames, which other
// users may not see, but a log shipper in the file's group may read them.
const FileMode fs.FileMode = 0o640

// RotatingFile is a file written in whole lines and rotated by size, as
// logrotate numbers its files: when the next line would take FILE past
// the size, FILE becomes FILE.1, FILE.1 becomes FILE.2, ... up to
// FILE.<keep>, the oldest, which the shift replaces (deletes), and a new
// FILE is begun. Rotation is by rename, so it stays within FILE's
// directory. A line longer than the size alone fills a file of its own.
// A FILE that is not a regular file (/dev/null, a FIFO) is written as it
// is and never rotated.
type RotatingFile struct {
	path    string
	maxSize int64 // 0: never rotate
	keep    int
	f       *os.File
	size    int64 // bytes in the current FILE
	regular bool
}

// OpenRotating opens path for appending (creating it with FileMode): a
// FILE left by an earlier run is continued, its size counting towards
// maxSize (0: never rotate). keep is how many rotated files to keep.
func OpenRotating(path string, maxSize int64, keep int) (*RotatingFile, error) {
	r := &RotatingFile{path: path, maxSize: maxSize, keep: keep}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, FileMode)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if st.IsDir() {
		f.Close()
		return fmt.Errorf("%s is a directory", r.path)
	}
	r.f, r.size, r.regular = f, st.Size(), st.Mode().IsRegular()
	return nil
}

// WriteLines writes b, which holds whole lines, rotating between lines
// when the next one would not fit. It returns how many bytes of b are in
// the files, always up to a line's end: a write that fails is cut back
// (the file truncated to where it was), so no file holds half a line.
func (r *RotatingFile) WriteLines(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		if r.f == nil { // a rotation failed after FILE was renamed away
			if err := r.open(); err != nil {
				return done, err
			}
		}
		seg := b[done:]
		if r.rotates() && r.size+int64(len(seg)) > r.maxSize {
			fit := 0
			if room := r.maxSize - r.size; room > 0 {
				fit = bytes.LastIndexByte(seg[:min(int64(len(seg)), room)], '\n') + 1
			}
			if fit == 0 && r.size > 0 {
				if err := r.rotate(); err != nil {
					return done, err
				}
				continue
			}
			if fit == 0 { // a line longer than maxSize: a file of its own
				fit = bytes.IndexByte(seg, '\n') + 1
				if fit == 0 {
					fit = len(seg)
				}
			}
			seg = seg[:fit]
		}
		n, err := r.f.Write(seg)
		if err != nil {
			if n > 0 && r.regular {
				r.f.Truncate(r.size) // best effort: the half line goes
			}
			return done, err
		}
		r.size += int64(n)
		done += n
	}
	return done, nil
}

func (r *RotatingFile) rotates() bool { return r.maxSize > 0 && r.regular }

// rotate shifts FILE.i to FILE.i+1 (the last replacing the oldest), FILE
// to FILE.1, and begins a new FILE.
func (r *RotatingFile) rotate() error {
	for i := r.keep - 1; i >= 1; i-- {
		err := os.Rename(r.backup(i), r.backup(i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotating: %w", err)
		}
	}
	var err error
	if r.keep > 0 {
		err = os.Rename(r.path, r.backup(1))
	} else {
		err = os.Remove(r.path)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotating: %w", err)
	}
	r.f.Close()
	r.f = nil
	return r.open()
}

func (r *RotatingFile) backup(i int) string { return r.path + "." + strconv.Itoa(i) }

// Close closes FILE.
func (r *RotatingFile) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
