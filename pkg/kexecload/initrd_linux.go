package kexecload

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// kexec_file_load(2) reads the kernel and the initrd from file descriptors
// with kernel_read_file() (fs/kernel_read_file.c), which takes only a
// regular file that nobody has open for writing, not empty and at most
// KEXEC_FILE_SIZE_MAX bytes. The files made here are memfds: they live
// in RAM until closed, and the kernel copies from them itself. A memfd's
// own descriptor does not count as a writer.

// MaxInitrdSize is KEXEC_FILE_SIZE_MAX (kernel/kexec_file.c): 4 GiB.
const MaxInitrdSize = 4 << 30

// ErrEmptyInitrd is returned by JoinInitrds when the initrds hold no
// bytes: the kernel refuses an empty file with EINVAL.
var ErrEmptyInitrd = errors.New("initrd is empty")

// ErrInitrdTooLarge is returned by JoinInitrds past MaxInitrdSize.
var ErrInitrdTooLarge = errors.New("initrd too large")

// ErrNotRegular is returned for an initrd or kernel that is not a regular
// file: a device such as /dev/zero never ends, and a FIFO blocks.
var ErrNotRegular = errors.New("not a regular file")

// NotRegular is the error for a file of the given role ("kernel",
// "initrd") that is not a regular file; it matches ErrNotRegular.
func NotRegular(role, path string, mode fs.FileMode) error {
	kind := "not a regular file"
	switch {
	case mode.IsDir():
		kind = "a directory"
	case mode&fs.ModeNamedPipe != 0:
		kind = "a FIFO"
	case mode&fs.ModeCharDevice != 0:
		kind = "a character device"
	case mode&fs.ModeDevice != 0:
		kind = "a block device"
	case mode&fs.ModeSocket != 0:
		kind = "a socket"
	}
	return fmt.Errorf("%s %s is %s: %w", role, path, kind, ErrNotRegular)
}

// InitrdSize checks each initrd without reading it (regular, not empty,
// not too large) and returns the size JoinInitrds will give them, padding
// included, so that callers can check room before anything is copied.
func InitrdSize(paths []string) (int64, error) {
	if len(paths) == 0 {
		return 0, errors.New("joining initrds: no paths")
	}
	var total int64
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, fmt.Errorf("opening initrd: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return 0, NotRegular("initrd", p, fi.Mode())
		}
		if fi.Size() == 0 {
			return 0, fmt.Errorf("%w: %s", ErrEmptyInitrd, p)
		}
		total += fi.Size()
		if total > MaxInitrdSize {
			return 0, tooLarge(p, total)
		}
		if i < len(paths)-1 {
			total += (4 - total%4) % 4
		}
	}
	return total, nil
}

// JoinInitrds opens the initrds for kexec_file_load(2). One initrd is
// returned as the opened file; several are concatenated in order into a
// memfd, which the kernel reads like a file, each padded to a multiple of
// 4 bytes as the kernel's initramfs unpacker wants between archives. Only
// regular files are taken, checked with InitrdSize before any copying. A
// file that cannot be opened is named in the error. The caller closes
// the file.
func JoinInitrds(paths []string) (*os.File, int64, error) {
	want, err := InitrdSize(paths)
	if err != nil {
		return nil, 0, err
	}
	if len(paths) == 1 {
		f, err := os.Open(paths[0])
		if err != nil {
			return nil, 0, fmt.Errorf("opening initrd: %w", err)
		}
		return f, want, nil
	}

	out, err := newMemfd("kexecload-initrd")
	if err != nil {
		return nil, 0, err
	}
	total, err := copyInitrds(out, paths)
	if err == nil && total != want {
		err = fmt.Errorf("joining initrds: got %d bytes, want %d (a "+
			"file changed while it was read)", total, want)
	}
	if err == nil {
		_, err = out.Seek(0, io.SeekStart)
	}
	if err != nil {
		out.Close()
		return nil, 0, err
	}
	return out, total, nil
}

// copyInitrds appends each initrd to out, padding all but the last.
func copyInitrds(out *os.File, paths []string) (int64, error) {
	var total int64
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return 0, fmt.Errorf("opening initrd: %w", err)
		}
		// The limit stops a file that grows while it is read.
		n, err := io.Copy(out, io.LimitReader(f, MaxInitrdSize-total+1))
		f.Close()
		total += n
		if err != nil {
			return 0, fmt.Errorf("copying initrd %s: %w", p, err)
		}
		if total > MaxInitrdSize {
			return 0, tooLarge(p, total)
		}
		if pad := (4 - total%4) % 4; pad != 0 && i < len(paths)-1 {
			if _, err := out.Write(make([]byte, pad)); err != nil {
				return 0, fmt.Errorf("padding initrd %s: %w", p, err)
			}
			total += pad
		}
	}
	return total, nil
}

func tooLarge(path string, size int64) error {
	return fmt.Errorf("%w: %s: got %d bytes, want at most %d",
		ErrInitrdTooLarge, path, size, int64(MaxInitrdSize))
}

// newMemfd makes an empty close-on-exec memfd.
func newMemfd(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, &CallError{
			Call: fmt.Sprintf("memfd_create(%q, MFD_CLOEXEC)", name),
			Err:  err,
		}
	}
	return os.NewFile(uintptr(fd), "memfd:"+name), nil
}

// UnwrapKernel decompresses a kernel image that kexec_file_load(2) does not
// take compressed (see [Image.CheckKexecFile]) into a memfd, and returns it
// with what [IdentifyKernel] makes of the result. The result must be a
// kernel the kernel takes raw. The caller closes the file.
func UnwrapKernel(r io.ReaderAt, img *Image) (*os.File, *Image, error) {
	out, err := newMemfd("kexecload-kernel")
	if err != nil {
		return nil, nil, err
	}
	n, err := Unwrap(out, r, img)
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	inner, err := IdentifyKernel(out, n)
	if err != nil {
		out.Close()
		return nil, nil, fmt.Errorf("identifying unwrapped %s: %w",
			img.Format, err)
	}
	if inner.Format != FormatBzImage && inner.Format != FormatARM64Image {
		out.Close()
		return nil, nil, fmt.Errorf("unwrapped %s holds %s, want a "+
			"bzImage or arm64 Image", img.Format, inner.Format)
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		out.Close()
		return nil, nil, fmt.Errorf("unwrapping %s: %w", img.Format, err)
	}
	return out, inner, nil
}
