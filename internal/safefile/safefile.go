// Package safefile opens and reads the files a config names (the config itself, models,
// plugins, params, keys, golden files) without ever blocking or reading without end: a FIFO,
// a device, a directory or a file over the caller's size limit is refused, with an error
// naming the file, before a byte of it is read. Imports only the standard library and
// golang.org/x/sys/unix.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Limits for the kinds of file a config names. Each is far above any real file of its kind
// and far below what would hurt the process.
const (
	MaxConfig = 4 << 20  // config.toml
	MaxParams = 16 << 20 // a params_files entry
	MaxKey    = 64 << 10 // a trust.key_files entry
	MaxGolden = 64 << 20 // a golden input or expected result
	MaxPlugin = 64 << 20 // a plugin module (host/wasm bounds the module itself further)
	MaxModel  = 2 << 30  // a model (flatbuffers address at most 2 GiB)
)

// ErrRefused is wrapped by every error that refuses a file for what it is (not a regular
// file, or over the limit), as against an error opening or reading it.
var ErrRefused = errors.New("refused")

// Error is a refused file.
type Error struct {
	Path string
	Why  string
}

func (e *Error) Error() string { return e.Path + ": " + e.Why }

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *Error) Unwrap() error { return ErrRefused }

// Open opens the regular file at path for reading (symbolic links are followed) and
// returns it with its size. The open never blocks: it is made with O_NONBLOCK, so a FIFO
// with no writer or a device is opened at once, then refused by fstat. A file larger than
// limit bytes is refused. The returned file is in blocking mode; the caller closes it.
func Open(path string, limit int64) (*os.File, int64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	}
	if err != nil {
		return nil, 0, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, 0, &Error{Path: path, Why: "is " + kind(st.Mode) + ", not a regular file: refused"}
	}
	if st.Size > limit {
		unix.Close(fd)
		return nil, 0, &Error{Path: path, Why: fmt.Sprintf("file of %d bytes is over the %d-byte limit for this kind of file: refused", st.Size, limit)}
	}
	// A regular file never blocks; clear the flag anyway so the file behaves as os.Open's.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, 0, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), st.Size, nil
}

// ReadFile reads the regular file at path, refusing (see Open) anything else and anything
// over limit bytes, also a file that grows past the limit while it is read.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, size, err := Open(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 0, size+1)
	b, err = readAtMost(f, b, limit)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func readAtMost(r io.Reader, b []byte, limit int64) ([]byte, error) {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return nil, &Error{Path: nameOf(r), Why: fmt.Sprintf("grew past the %d-byte limit while it was read: refused", limit)}
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func nameOf(r io.Reader) string {
	if f, ok := r.(*os.File); ok {
		return f.Name()
	}
	return "file"
}

func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO (named pipe)"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFSOCK:
		return "a socket"
	}
	return "not a regular file"
}
