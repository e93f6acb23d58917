package chain

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/hugelgupf/vmtest/qemu"
	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// DefaultQEMU is the QEMU command used when VMTEST_QEMU is unset. It
// uses TCG: on the machines this was written on /dev/kvm exists but
// guests hang under it. KHO's scratch areas need more than QEMU's
// default memory.
const DefaultQEMU = "qemu-system-x86_64 -accel tcg -m 1G"

// DefaultTimeout bounds a whole chain run when VMTEST_TIMEOUT is unset.
// Four boots under TCG take about 20 seconds.
const DefaultTimeout = 5 * time.Minute

// KernelArgs are the kernel arguments of every boot: a serial console,
// KHO on (both sides of a handover need it), and only emergencies on the
// console so kernel messages do not break the status lines (the guest
// script restores that level after u-root's init raises it).
var KernelArgs = []string{"console=ttyS0", "kho=on", "loglevel=1"}

// ErrNoQEMU is returned when the QEMU binary is not installed.
var ErrNoQEMU = errors.New("QEMU not found")

// ErrArch is returned when VMTEST_ARCH asks for a guest other than
// x86_64.
var ErrArch = errors.New("the kexec chain runs x86_64 guests only")

// Arch is the guest architecture: kernel/build.sh builds x86_64 kernels.
const Arch = qemu.ArchAMD64

// QEMUCommand returns VMTEST_QEMU, or [DefaultQEMU] when it is unset,
// after checking that VMTEST_ARCH (if set) is amd64 and that the QEMU
// binary is installed. Errors wrap [ErrArch] or [ErrNoQEMU].
func QEMUCommand() (string, error) {
	if a := os.Getenv("VMTEST_ARCH"); a != "" && a != string(Arch) {
		return "", fmt.Errorf("VMTEST_ARCH=%s: %w", a, ErrArch)
	}
	cmd := os.Getenv("VMTEST_QEMU")
	if cmd == "" {
		cmd = DefaultQEMU
	}
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return "", fmt.Errorf("VMTEST_QEMU is blank: %w", ErrNoQEMU)
	}
	if _, err := exec.LookPath(f[0]); err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoQEMU, err)
	}
	return cmd, nil
}

// GuestCommands are the u-root commands the initramfs holds for the
// scenario steps, besides gosh's builtins and kexecmeta.
var GuestCommands = []string{"cat", "dd", "grep", "mkdir", "mount",
	"sleep", "sync", "umount"}

// guestCommandPaths returns the import path of each of GuestCommands.
func guestCommandPaths() []string {
	var p []string
	for _, c := range GuestCommands {
		p = append(p, "github.com/u-root/u-root/cmds/core/"+c)
	}
	return p
}

// Guest commands. vmtest's init chain (init, then shutdownafter, vmmount
// and shelluinit, which runs test.sh with gosh) is built in busybox mode
// like scriptvm does; kexecmeta is built as its own binary, the way
// `go build` ships it. vmtest/tools.go keeps these in go.mod.
var (
	busyboxCommands = append([]string{
		"github.com/u-root/u-root/cmds/core/init",
		"github.com/u-root/u-root/cmds/core/gosh",
		"github.com/hugelgupf/vmtest/vminit/shelluinit",
		"github.com/hugelgupf/vmtest/vminit/shutdownafter",
		"github.com/hugelgupf/vmtest/vminit/vmmount",
	}, guestCommandPaths()...)
	binaryCommands = []string{
		"github.com/kexecmeta/kexecmeta/cmds/kexecmeta",
	}
)

// BuildInitramfs builds the guest's u-root initramfs as an uncompressed
// cpio archive at out, using tmpDir for the build. It must run inside
// the kexecmeta module, whose go.mod pins the commands. l may be nil.
func BuildInitramfs(l *llog.Logger, out, tmpDir string) error {
	err := uimage.Create(l,
		uimage.WithEnv(golang.DisableCGO(), golang.WithGOARCH(string(Arch))),
		uimage.WithBusyboxCommands(busyboxCommands...),
		uimage.WithBinaryCommands(binaryCommands...),
		uimage.WithInit("init"),
		uimage.WithUinit("shutdownafter", "--", "vmmount", "--",
			"shelluinit"),
		uimage.WithCPIOOutput(out),
		uimage.WithTempDir(tmpDir),
	)
	if err != nil {
		return fmt.Errorf("building initramfs %s: %w", out, err)
	}
	return nil
}

// Config describes one chain run.
type Config struct {
	// Boots is the kernel of each boot: QEMU cold-boots Boots[0], and
	// each later one is kexec'd into from the one before. Boots of the
	// same series must be the same kernel.
	Boots []Kernel

	// Initramfs is the initramfs [BuildInitramfs] built.
	Initramfs string

	// QEMU is the QEMU command and its first arguments, as
	// [QEMUCommand] returns.
	QEMU string

	// Timeout bounds the run; 0 means VMTEST_TIMEOUT, or
	// [DefaultTimeout] when that is unset.
	Timeout time.Duration

	// Steps[i] is the gosh script text boot i+1 runs after printing its
	// status (see [StepsScript]); every step but the last must kexec
	// into Boots[i+1], usually with [BootStep]. Nil means
	// [DefaultSteps] of the series of Boots. Otherwise it must have
	// one step per boot.
	Steps []string

	// ColdBootArgs are added to the cold boot's kernel command line
	// after [KernelArgs], e.g. "kho_scratch=2M,2M,2M". Boots that
	// reuse the command line inherit them.
	ColdBootArgs []string

	// QEMUArgs are added to QEMU's arguments, e.g. "-drive",
	// "file=disk.img,if=virtio,format=raw".
	QEMUArgs []string

	// Files are copied into the share: each key is a slash-separated
	// relative name, seen in the guest as GuestShare/NAME ($share/NAME
	// in a step), and its value the host file.
	Files map[string]string
}

// Setup lays out dir, an empty directory, for a chain run and returns
// the options that make vmtest's qemu package start it with [Arch]:
//
//	dir/state/test.sh        the guest script (shared as "shelltest")
//	dir/state/boot.N         written by the guest on boot N
//	dir/share/initramfs.cpio the initramfs (shared as "chain"), also
//	                         the cold boot's -initrd
//	dir/share/SERIES/bzImage each kernel of the chain
//
// The kernels and the initramfs are copied, so a concurrent
// kernel/build.sh cannot change them during the run. Log the console
// with qemu.LogSerialByLine (qemu.StartT does it for tests), read it with
// [Read], and always call the VM's Wait.
func Setup(dir string, c Config) ([]qemu.Fn, error) {
	if len(c.Boots) == 0 {
		return nil, errors.New("chain setup: no boots")
	}
	state := filepath.Join(dir, "state")
	share := filepath.Join(dir, "share")
	for _, d := range []string{state, share} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("chain setup: %w", err)
		}
	}

	// Copy each kernel once per series.
	series := make([]string, 0, len(c.Boots))
	paths := make(map[string]string)
	for _, k := range c.Boots {
		series = append(series, k.Series)
		if p, ok := paths[k.Series]; ok {
			if p != k.Path {
				return nil, fmt.Errorf("chain setup: series %s is "+
					"both %s and %s", k.Series, p, k.Path)
			}
			continue
		}
		if !seriesRE.MatchString(k.Series) {
			return nil, fmt.Errorf("chain setup: bad series %q",
				k.Series)
		}
		paths[k.Series] = k.Path
		kdir := filepath.Join(share, k.Series)
		if err := os.Mkdir(kdir, 0o755); err != nil {
			return nil, fmt.Errorf("chain setup: %w", err)
		}
		err := copyFile(filepath.Join(kdir, "bzImage"), k.Path)
		if err != nil {
			return nil, fmt.Errorf("chain setup: %w", err)
		}
	}
	initrd := filepath.Join(share, "initramfs.cpio")
	if err := copyFile(initrd, c.Initramfs); err != nil {
		return nil, fmt.Errorf("chain setup: %w", err)
	}
	if err := copyFiles(share, c.Files); err != nil {
		return nil, fmt.Errorf("chain setup: %w", err)
	}

	steps := c.Steps
	if steps == nil {
		steps = DefaultSteps(series)
	}
	if len(steps) != len(c.Boots) {
		return nil, fmt.Errorf("chain setup: got %d steps for %d boots",
			len(steps), len(c.Boots))
	}
	script := StepsScript(GuestState, GuestShare, steps)
	err := os.WriteFile(filepath.Join(state, "test.sh"), []byte(script),
		0o755)
	if err != nil {
		return nil, fmt.Errorf("chain setup: %w", err)
	}

	fns := []qemu.Fn{
		qemu.WithQEMUCommand(c.QEMU),
		qemu.WithKernel(filepath.Join(share, c.Boots[0].Series,
			"bzImage")),
		qemu.WithInitramfs(initrd),
		qemu.P9Directory(state, stateTag),
		qemu.P9Directory(share, shareTag),
		qemu.WithAppendKernel(KernelArgs...),
		qemu.WithVmtestIdent(),
		// Exit instead of rebooting on a panic or a failed kexec that
		// turned into a reboot.
		qemu.HaltOnKernelPanic(),
	}
	if len(c.ColdBootArgs) > 0 {
		fns = append(fns, qemu.WithAppendKernel(c.ColdBootArgs...))
	}
	if len(c.QEMUArgs) > 0 {
		fns = append(fns, qemu.ArbitraryArgs(c.QEMUArgs...))
	}
	switch {
	case c.Timeout != 0:
		fns = append(fns, qemu.WithVMTimeout(c.Timeout))
	case os.Getenv("VMTEST_TIMEOUT") == "":
		fns = append(fns, qemu.WithVMTimeout(DefaultTimeout))
	}
	return fns, nil
}

// copyFiles copies each file of files into dir under its name.
func copyFiles(dir string, files map[string]string) error {
	for name, src := range files {
		clean := path.Clean(name)
		if !fs.ValidPath(clean) || clean == "." ||
			clean != name || clean == "initramfs.cpio" {
			return fmt.Errorf("file name %q: want a clean relative "+
				"name other than initramfs.cpio", name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFile(dst, src); err != nil {
			return fmt.Errorf("file %s: %w", name, err)
		}
	}
	return nil
}

// copyFile copies the regular file src to dst.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()

	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Close()
}
