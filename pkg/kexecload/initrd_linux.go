package kexecload

import (
	"errors"
	"fmt"
	"io"
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

// JoinInitrds opens the initrds at paths, in order, as one file for
// kexec_file_load(2), and returns it with its size. One regular file is
// returned as itself. Several, or one that is not a regular file (a pipe,
// say), are copied into a memfd, each padded with zeros to a multiple of 4
// bytes as the kernel's initramfs unpacker wants between archives. A file
// that cannot be opened is named in the error. The caller closes the
// file.
func JoinInitrds(paths []string) (*os.File, int64, error) {
	if len(paths) == 0 {
		return nil, 0, errors.New("joining initrds: no paths")
	}

	// One regular file is passed as it is. Anything else is opened only
	// once: a pipe can be read only once.
	var first *os.File
	if len(paths) == 1 {
		f, size, regular, err := openInitrd(paths[0])
		if err != nil {
			return nil, 0, err
		}
		if regular {
			if size == 0 {
				f.Close()
				return nil, 0, fmt.Errorf("%w: %s", ErrEmptyInitrd,
					paths[0])
			}
			if size > MaxInitrdSize {
				f.Close()
				return nil, 0, tooLarge(paths[0], size)
			}
			return f, size, nil
		}
		first = f
	}

	// Otherwise each is copied into a memfd in turn.
	out, err := newMemfd("kexecload-initrd")
	if err != nil {
		if first != nil {
			first.Close()
		}
		return nil, 0, err
	}
	total, err := copyInitrds(out, paths, first)
	if err != nil {
		out.Close()
		return nil, 0, err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		out.Close()
		return nil, 0, fmt.Errorf("joining initrds: %w", err)
	}
	return out, total, nil
}

// copyInitrds appends each initrd to out, padding all but the last. first,
// when not nil, is paths[0] already open; it is closed.
func copyInitrds(out *os.File, paths []string, first *os.File) (int64,
	error) {
	var total int64
	for i, p := range paths {
		f := first
		if i > 0 || f == nil {
			var err error
			if f, _, _, err = openInitrd(p); err != nil {
				return 0, err
			}
		}
		// The limit stops a growing file or endless pipe early.
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
	if total == 0 {
		return 0, fmt.Errorf("%w: %q", ErrEmptyInitrd, paths)
	}
	return total, nil
}

// openInitrd opens an initrd for reading and says whether it is a
// regular file, and its size if so.
func openInitrd(path string) (*os.File, int64, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, false, fmt.Errorf("opening initrd: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, false, fmt.Errorf("opening initrd: %w", err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, 0, false, fmt.Errorf("opening initrd %s: is a "+
			"directory", path)
	}
	return f, fi.Size(), fi.Mode().IsRegular(), nil
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
