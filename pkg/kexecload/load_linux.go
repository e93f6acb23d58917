package kexecload

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// kexec_file_load(2) flags, from include/uapi/linux/kexec.h. Any other bit
// makes the kernel return EINVAL.
const (
	FileUnload      = 0x1  // KEXEC_FILE_UNLOAD
	FileOnCrash     = 0x2  // KEXEC_FILE_ON_CRASH
	FileNoInitramfs = 0x4  // KEXEC_FILE_NO_INITRAMFS
	FileDebug       = 0x8  // KEXEC_FILE_DEBUG
	FileNoCMA       = 0x10 // KEXEC_FILE_NO_CMA
	FileForceDTB    = 0x20 // KEXEC_FILE_FORCE_DTB
)

// Syscalls are the kernel interfaces kexecload uses.
type Syscalls struct {
	// KexecFileLoad is kexec_file_load(2).
	KexecFileLoad func(kernelFd, initrdFd int, cmdline string, flags int) error

	// Reboot is reboot(2) with one of the LINUX_REBOOT_CMD_ values.
	Reboot func(cmd int) error

	// Sync is sync(2).
	Sync func()

	// ReadFile reads small kernel files such as /sys/kernel/kexec_loaded
	// and /proc/meminfo.
	ReadFile func(name string) ([]byte, error)

	// WriteFile writes kernel files such as debugfs kho/out/finalize.
	WriteFile func(name string, data []byte) error
}

// Native returns the real system calls.
func Native() *Syscalls {
	return &Syscalls{
		KexecFileLoad: kexecFileLoad,
		Reboot:        unix.Reboot,
		Sync:          unix.Sync,
		ReadFile:      os.ReadFile,
		WriteFile:     writeFile,
	}
}

// CallError is a failed kernel call, shown with its arguments.
type CallError struct {
	// Call is the call as written, e.g. "kexec_file_load(...)".
	Call string

	// Err is the errno.
	Err error
}

func (e *CallError) Error() string { return e.Call + " = " + errnoName(e.Err) }

// Unwrap returns the errno.
func (e *CallError) Unwrap() error { return e.Err }

// errnoName shows an errno as "ENAME (text)".
func errnoName(err error) string {
	var en unix.Errno
	if errors.As(err, &en) {
		if name := unix.ErrnoName(en); name != "" {
			return name + " (" + en.Error() + ")"
		}
	}
	return err.Error()
}

// ErrNotLoaded is returned by Exec when no kernel is loaded.
var ErrNotLoaded = errors.New("no kernel is loaded for kexec")

// ErrReturned is returned when reboot(LINUX_REBOOT_CMD_KEXEC) comes back
// without an error: the handoff did not happen.
var ErrReturned = errors.New("reboot(LINUX_REBOOT_CMD_KEXEC) returned")

// ErrNoKexec means the running kernel has no kexec support at all
// (CONFIG_KEXEC_CORE is off: there is no /sys/kernel/kexec_loaded).
var ErrNoKexec = errors.New("the running kernel has no kexec support")

// LoadedPath is where the kernel says whether an image is loaded.
const LoadedPath = "/sys/kernel/kexec_loaded"

// Loaded says whether a kexec image is loaded.
func (s *Syscalls) Loaded() (bool, error) {
	b, err := s.ReadFile(LoadedPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%w (no %s)", ErrNoKexec, LoadedPath)
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", LoadedPath, err)
	}
	switch v := strings.TrimSpace(string(b)); v {
	case "0":
		return false, nil
	case "1":
		return true, nil
	default:
		return false, fmt.Errorf("reading %s: got %q, want 0 or 1",
			LoadedPath, v)
	}
}

// FileLoad calls kexec_file_load(2) with an open kernel and an optional
// initrd (nil for none), and names both in its error.
func (s *Syscalls) FileLoad(kernel, initrd *os.File, cmdline string,
	flags int) error {
	initrdFd, initrdName := -1, "none"
	if initrd == nil {
		flags |= FileNoInitramfs
	} else {
		initrdFd, initrdName = int(initrd.Fd()), initrd.Name()
	}
	err := s.FileLoadFd(int(kernel.Fd()), initrdFd, cmdline, flags)
	if err != nil {
		return &CallError{
			Call: fmt.Sprintf("kexec_file_load(%s, %s, %d-byte cmdline, %#x)",
				kernel.Name(), initrdName, len(cmdline)+1, flags),
			Err: err,
		}
	}
	return nil
}

// FileLoadFd is the raw call. The kernel takes the command line with its
// NUL; x/sys/unix adds it.
func (s *Syscalls) FileLoadFd(kernelFd, initrdFd int, cmdline string,
	flags int) error {
	if flags&FileNoInitramfs != 0 {
		initrdFd = 0
	}
	return s.KexecFileLoad(kernelFd, initrdFd, cmdline, flags)
}

// Unload unloads the loaded image with kexec_file_load(2), which works
// under IMA and lockdown where kexec_load(2) does not.
func (s *Syscalls) Unload() error {
	err := s.FileLoadFd(-1, -1, "", FileUnload|FileNoInitramfs)
	if err != nil {
		return &CallError{
			Call: "kexec_file_load(-1, -1, \"\", KEXEC_FILE_UNLOAD)",
			Err:  err,
		}
	}
	return nil
}

// Exec hands off to the loaded kernel. It refuses when nothing is loaded,
// and when it returns at all the handoff did not happen.
func (s *Syscalls) Exec() error {
	loaded, err := s.Loaded()
	if err != nil {
		return err
	}
	if !loaded {
		return ErrNotLoaded
	}
	if err := s.Reboot(unix.LINUX_REBOOT_CMD_KEXEC); err != nil {
		return &CallError{Call: "reboot(LINUX_REBOOT_CMD_KEXEC)", Err: err}
	}
	return ErrReturned
}

// dirtyKB returns Dirty plus Writeback from /proc/meminfo, in kB.
func (s *Syscalls) dirtyKB() (int64, error) {
	b, err := s.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	var total int64
	found := 0
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		var n int64
		switch {
		case bytes.HasPrefix(l, []byte("Dirty:")):
			_, err = fmt.Sscanf(string(l), "Dirty: %d kB", &n)
		case bytes.HasPrefix(l, []byte("Writeback:")):
			_, err = fmt.Sscanf(string(l), "Writeback: %d kB", &n)
		default:
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("parsing /proc/meminfo %q: %w", l, err)
		}
		total += n
		found++
	}
	if found != 2 {
		return 0, errors.New("parsing /proc/meminfo: no Dirty and " +
			"Writeback lines")
	}
	return total, nil
}

// writeFile writes data to an existing kernel file in one write(2), as
// sysfs and debugfs attributes want it.
func writeFile(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
