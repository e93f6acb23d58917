package kho

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Paths of the running kernel's state.
const (
	DebugfsMount = "/sys/kernel/debug"
	DebugfsDir   = DebugfsMount + "/kho"
	setupDataDir = "/sys/kernel/boot_params/setup_data"
)

// debugfsMagic is DEBUGFS_MAGIC from include/uapi/linux/magic.h.
const debugfsMagic = 0x64626720

// maxConfig caps the decompressed /proc/config.gz.
const maxConfig = 4 << 20

// Live holds the running kernel's evidence and what was mounted to read
// it.
type Live struct {
	System

	mounted string
}

// ReadLive gathers the running kernel's evidence. It mounts debugfs on
// /sys/kernel/debug when the kernel supports it and it is not mounted;
// Close unmounts it again. Missing sources are left empty: only a failure
// to learn the release is an error.
func ReadLive() (*Live, error) {
	l := &Live{}

	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	l.Release = unix.ByteSliceToString(u.Release[:])
	l.Arch = unix.ByteSliceToString(u.Machine[:])

	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		l.Cmdline = strings.TrimSpace(string(b))
	}
	l.Config = readConfig("/proc/config.gz")
	l.Debugfs = filesystemSupported("debugfs")
	if err := l.mountDebugfs(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(DebugfsDir)
	switch {
	case err == nil && fi.IsDir():
		l.KHO = os.DirFS(DebugfsDir)
	case errors.Is(err, fs.ErrPermission):
		l.Denied = "reading " + DebugfsDir + ": permission denied; " +
			"it is readable by root only"
	}
	if l.KHO == nil && l.Denied == "" && os.Geteuid() != 0 {
		l.Denied = "not root: the KHO debugfs directory is readable " +
			"by root only, and debugfs is mounted by root"
	}
	l.Log, _ = ReadKernelLog()
	l.SetupData = readSetupData(setupDataDir)
	return l, nil
}

// mountDebugfs mounts debugfs when it is supported and not mounted.
func (l *Live) mountDebugfs() error {
	if l.Debugfs == No {
		return nil
	}
	var st unix.Statfs_t
	err := unix.Statfs(DebugfsMount, &st)
	if err != nil || uint32(st.Type) == debugfsMagic {
		// Not there to mount on, or mounted already.
		return nil
	}
	err = unix.Mount("debugfs", DebugfsMount, "debugfs", 0, "")
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			// Not root: the status can still come from the log.
			l.Denied = "mounting debugfs on " + DebugfsMount +
				" needs root"
			return nil
		}
		return fmt.Errorf("mount(debugfs, %s, debugfs, 0) = %w",
			DebugfsMount, err)
	}
	l.mounted = DebugfsMount
	return nil
}

// Mounted says what ReadLive mounted, "" when nothing.
func (l *Live) Mounted() string { return l.mounted }

// Close unmounts what ReadLive mounted. It is safe to call twice.
func (l *Live) Close() error {
	if l.mounted == "" {
		return nil
	}
	if err := unix.Unmount(l.mounted, 0); err != nil {
		return fmt.Errorf("umount(%s) = %w", l.mounted, err)
	}
	l.mounted = ""
	l.KHO = nil
	return nil
}

// filesystemSupported reads /proc/filesystems.
func filesystemSupported(name string) Tristate {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return Unknown
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == name {
			return Yes
		}
	}
	return No
}

// readConfig reads a gzip-compressed kernel config, nil when unreadable.
func readConfig(path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(zr, maxConfig))
	if err != nil {
		return nil
	}
	return ParseConfig(b)
}

// readSetupData lists the x86 setup_data types, nil when not there.
func readSetupData(dir string) []uint32 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	types := []uint32{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "type"))
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if t, err := strconv.ParseUint(s, 0, 32); err == nil {
			types = append(types, uint32(t))
		}
	}
	return types
}

// ReadKernelLog returns the KHO messages of the kernel log, from
// /dev/kmsg, or from klogctl(2) where /dev/kmsg is missing.
func ReadKernelLog() ([]string, error) {
	recs, err := readKmsg("/dev/kmsg")
	if err == nil {
		return ParseKmsg(recs), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil {
		return nil, fmt.Errorf("klogctl(SIZE_BUFFER) = %w", err)
	}
	if n <= 0 || n > 64<<20 {
		return nil, fmt.Errorf("klogctl(SIZE_BUFFER) = %d, out of range", n)
	}
	buf := make([]byte, n)
	n, err = unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return nil, fmt.Errorf("klogctl(READ_ALL) = %w", err)
	}
	return ParseSyslog(buf[:n]), nil
}

// readKmsg reads every record /dev/kmsg holds now, without blocking.
func readKmsg(path string) ([][]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)

	var recs [][]byte
	buf := make([]byte, 8192)
	for len(recs) < 1<<20 {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return recs, nil
		case errors.Is(err, unix.EPIPE):
			// The record was overwritten while we read: go on.
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return recs, nil
		}
		if bytes.Contains(buf[:n], []byte(LogPrefix)) {
			recs = append(recs, bytes.Clone(buf[:n]))
		}
	}
	return recs, nil
}
