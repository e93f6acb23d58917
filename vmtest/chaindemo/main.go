// Command chaindemo shows kexecmeta following a chain of kexecs in QEMU.
//
// Synopsis:
//
//	go run ./vmtest/chaindemo [-no-build] [-v] [-keep]
//
// Description:
//
// chaindemo runs kernel/build.sh, which builds the KHO test kernels from
// Debian's linux-source 7.2 and 7.3 (about 15 minutes the first time,
// then cached), builds a u-root initramfs holding kexecmeta, cold-boots
// 7.2 in QEMU and kexecs 7.2 -> 7.3 -> 7.2 -> 7.2 with `kexecmeta boot`.
// It prints one row per boot with what `kexecmeta status --json`
// reported: the release, the release it was kexec'd from, the kexec
// count and where the kexec-metadata record was read from (or why there
// was none). It runs the same chain as the VM test TestKexecChain, from
// package github.com/kexecmeta/kexecmeta/vmtest/chain, and checks the
// same things.
//
// It must run inside the kexecmeta source tree. The VM's serial console
// is saved in console.log in the work directory, which is kept when the
// chain fails.
//
// Options:
//
//	-no-build  use the kernels already cached; do not run kernel/build.sh
//	-v         copy the VM's serial console to stderr
//	-keep      keep the work directory
//
// Environment: VMTEST_QEMU (default "qemu-system-x86_64 -accel tcg -m
// 1G"), VMTEST_TIMEOUT and KEXECMETA_CACHE, as for the VM test.
//
// Exit status: 0 when every boot ran and reported what was expected, 1
// when not, 2 on bad usage.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hugelgupf/vmtest/qemu"
	"github.com/kexecmeta/kexecmeta/vmtest/chain"
)

// module is the module chaindemo must run in.
const module = "github.com/kexecmeta/kexecmeta"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the demo and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaindemo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noBuild := fs.Bool("no-build", false,
		"use the cached kernels; do not run kernel/build.sh")
	verbose := fs.Bool("v", false, "copy the VM's serial console to stderr")
	keep := fs.Bool("keep", false, "keep the work directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "chaindemo: unexpected arguments %q\n",
			fs.Args())
		return 2
	}

	d := &demo{stdout: stdout, stderr: stderr, verbose: *verbose}
	err := d.run(*noBuild)
	if d.work != "" {
		if err != nil || *keep {
			fmt.Fprintf(stderr, "chaindemo: work directory kept: %s\n",
				d.work)
		} else {
			os.RemoveAll(d.work)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "chaindemo: %v\n", err)
		return 1
	}
	return 0
}

// demo is one run of the demo.
type demo struct {
	stdout, stderr io.Writer
	verbose        bool
	work           string
}

// step prints a progress line.
func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.stderr, "chaindemo: "+format+"\n", args...)
}

func (d *demo) run(noBuild bool) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	qemuCmd, err := chain.QEMUCommand()
	if err != nil {
		return err
	}

	// Kernels.
	start := time.Now()
	kernels, err := d.kernels(root, noBuild)
	if err != nil {
		return err
	}
	boots, err := chain.Boots(kernels, chain.DefaultChain...)
	if err != nil {
		return err
	}
	d.step("kernels ready in %v", since(start))

	// Initramfs.
	d.work, err = os.MkdirTemp("", "kexecmeta-chaindemo-")
	if err != nil {
		return err
	}
	start = time.Now()
	initrd := filepath.Join(d.work, "initramfs.cpio")
	tmp := filepath.Join(d.work, "build")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	d.step("building the initramfs")
	if err := chain.BuildInitramfs(nil, initrd, tmp); err != nil {
		return err
	}
	if fi, err := os.Stat(initrd); err == nil {
		d.step("initramfs: %d bytes, built in %v", fi.Size(), since(start))
	}

	// The chain.
	vmDir := filepath.Join(d.work, "vm")
	if err := os.Mkdir(vmDir, 0o755); err != nil {
		return err
	}
	fns, err := chain.Setup(vmDir, chain.Config{
		Boots:     boots,
		Initramfs: initrd,
		QEMU:      qemuCmd,
	})
	if err != nil {
		return err
	}
	logPath := filepath.Join(d.work, "console.log")
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	fns = append(fns, qemu.LogSerialByLine(d.printer(log)))

	var names []string
	for _, k := range boots {
		names = append(names, k.Release)
	}
	d.step("booting %s in QEMU", strings.Join(names, " -> "))
	start = time.Now()
	vm, err := qemu.Start(chain.Arch, fns...)
	if err != nil {
		return fmt.Errorf("starting QEMU: %w", err)
	}
	got, readErr := chain.Read(vm.Console, len(boots), chain.IdleTimeout)
	if readErr != nil {
		_ = vm.Kill()
	}
	waitErr := vm.Wait()
	d.step("chain ran in %v", since(start))

	fmt.Fprintln(d.stdout)
	if err := chain.WriteTable(d.stdout, got); err != nil {
		return err
	}
	fmt.Fprintln(d.stdout)

	err = errors.Join(readErr, chain.Check(boots, got))
	if readErr == nil && waitErr != nil {
		err = errors.Join(err, fmt.Errorf("QEMU: %w", waitErr))
	}
	if err != nil {
		d.tail(logPath, 30)
		return fmt.Errorf("the chain did not complete as expected "+
			"(console: %s):\n%w", logPath, err)
	}
	fmt.Fprintf(d.stdout, "OK: %d boots, %d kexecs, each handover "+
		"seen by the next kernel\n", len(got), len(got)-1)
	return nil
}

// kernels runs kernel/build.sh, or with noBuild reads its cache.
func (d *demo) kernels(root string, noBuild bool) (map[string]chain.Kernel, error) {
	if noBuild {
		cache, err := chain.CacheDir()
		if err != nil {
			return nil, err
		}
		return chain.CachedKernels(cache, chain.DefaultChain...)
	}

	d.step("running kernel/build.sh (the first build takes about " +
		"15 minutes)")
	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "kernel", "build.sh"), "7.2",
		"7.3")
	cmd.Stdout, cmd.Stderr = &out, d.stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kernel/build.sh: %w", err)
	}
	return chain.ParseBuildOutput(&out)
}

// printer returns the line printer for the serial console: to log, and
// with -v to stderr too.
func (d *demo) printer(log io.Writer) qemu.LinePrinter {
	return qemu.RelativeTS(func(line string) {
		fmt.Fprintln(log, line)
		if d.verbose {
			fmt.Fprintf(d.stderr, "vm: %s\n", line)
		}
	})
}

// tail prints the last n lines of the console log to stderr.
func (d *demo) tail(path string, n int) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	d.step("last %d console lines:", len(lines))
	for _, l := range lines {
		fmt.Fprintf(d.stderr, "vm: %s\n", l)
	}
}

// moduleRoot finds the kexecmeta source tree from the working directory
// up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(b) == module {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run chaindemo inside the %s source "+
				"tree", module)
		}
		dir = parent
	}
}

// modulePath returns the module path a go.mod declares.
func modulePath(gomod []byte) string {
	for _, l := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// since returns the time since start, rounded for people.
func since(start time.Time) time.Duration {
	return time.Since(start).Round(100 * time.Millisecond)
}
