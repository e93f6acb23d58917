package vmtest

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hugelgupf/vmtest/qemu"
	"github.com/hugelgupf/vmtest/testtmp"
	"github.com/kexecmeta/kexecmeta/vmtest/chain"
	"github.com/u-root/uio/llog"
)

// skipOrFail skips the test, or fails it when KEXECMETA_REQUIRE_VM=1 (as
// in CI), where a skipped VM test would hide that nothing ran.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("KEXECMETA_REQUIRE_VM") == "1" {
		t.Fatalf("KEXECMETA_REQUIRE_VM=1 but: "+format, args...)
	}
	t.Skipf(format, args...)
}

// requireVM returns the QEMU command and the kernel of each boot of
// chain.DefaultChain, or skips the test.
func requireVM(t *testing.T) (string, []chain.Kernel) {
	t.Helper()
	if testing.Short() {
		skipOrFail(t, "VM test skipped in -short mode")
	}
	cmd, err := chain.QEMUCommand()
	if err != nil {
		skipOrFail(t, "VM test needs QEMU: %v", err)
	}
	cache, err := chain.CacheDir()
	if err != nil {
		skipOrFail(t, "VM test needs the test kernels: %v", err)
	}
	kernels, err := chain.CachedKernels(cache, chain.DefaultChain...)
	if errors.Is(err, chain.ErrNoKernel) {
		skipOrFail(t, "VM test needs the test kernels: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	boots, err := chain.Boots(kernels, chain.DefaultChain...)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, boots
}

// shared is the initramfs every VM test of this process boots, built
// once by sharedInitramfs and removed by TestMain.
var shared struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// sharedInitramfs returns the u-root initramfs holding kexecmeta and
// chain.GuestCommands, building it on the first call of the process.
// Call it after requireVM, so tests that skip build nothing.
func sharedInitramfs(t *testing.T) string {
	t.Helper()
	shared.once.Do(func() {
		start := time.Now()
		shared.dir, shared.err = os.MkdirTemp("", "kexecmeta-vmtest-")
		if shared.err != nil {
			return
		}
		shared.path = filepath.Join(shared.dir, "initramfs.cpio")
		tmp := filepath.Join(shared.dir, "build")
		if shared.err = os.Mkdir(tmp, 0o755); shared.err != nil {
			return
		}
		l := llog.New(slog.LevelInfo, t.Logf)
		shared.err = chain.BuildInitramfs(l, shared.path, tmp)
		if fi, err := os.Stat(shared.path); err == nil {
			t.Logf("initramfs: %d bytes, built in %v", fi.Size(),
				time.Since(start).Round(time.Millisecond))
		}
	})
	if shared.err != nil {
		t.Fatalf("building the initramfs: %v", shared.err)
	}
	return shared.path
}

// runChain runs the chain c describes in QEMU and returns what each
// boot printed. It fills in c.Initramfs (with sharedInitramfs) and
// c.QEMU when they are empty, logs the console with the prefix name,
// always waits for the VM, and reports a broken run (chain.Read's
// error, QEMU's exit) with t.Errorf, so the caller can still check the
// boots that ran. It logs how long the VM ran.
func runChain(t *testing.T, name string, c chain.Config) []chain.Boot {
	t.Helper()
	return runChainIn(t, name, testtmp.TempDir(t), c)
}

// runChainIn is runChain laying out the run in dir (see chain.Setup),
// for a caller that reads what the guest left there.
func runChainIn(t *testing.T, name, dir string,
	c chain.Config) []chain.Boot {
	t.Helper()
	if c.Initramfs == "" {
		c.Initramfs = sharedInitramfs(t)
	}
	if c.QEMU == "" {
		cmd, err := chain.QEMUCommand()
		if err != nil {
			t.Fatal(err)
		}
		c.QEMU = cmd
	}
	for i, k := range c.Boots {
		t.Logf("boot %d: %s (%s) %s", i+1, k.Series, k.Release, k.Path)
	}
	fns, err := chain.Setup(dir, c)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	vm := qemu.StartT(t, name, chain.Arch, fns...)
	got, err := chain.Read(vm.Console, len(c.Boots), chain.IdleTimeout)
	if err != nil {
		t.Errorf("chain.Read: %v", err)
		err := vm.Kill()
		if err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("killing the VM: %v", err)
		}
	}
	if err := vm.Wait(); err != nil {
		t.Errorf("VM: %v", err)
	}
	t.Logf("%s: %d boots ran in %v", name, len(got),
		time.Since(start).Round(time.Millisecond))
	return got
}

// TestKexecChain cold-boots 7.2, kexecs 7.2 -> 7.3 -> 7.2 -> 7.2 with
// `kexecmeta boot`, and checks what `kexecmeta status --json` reported on
// each boot: the release, the kexec count, the previous release from the
// inherited record, read through debugfs, and the record handed on.
func TestKexecChain(t *testing.T) {
	qemuCmd, boots := requireVM(t)
	got := runChain(t, "chain", chain.Config{
		Boots: boots,
		QEMU:  qemuCmd,
	})
	for _, b := range got {
		t.Logf("boot %d status: %s", b.N, b.JSON)
		if b.Handoff != "" {
			t.Logf("boot %d handoff: %s", b.N, b.Handoff)
		}
	}
	if err := chain.Check(boots, got); err != nil {
		t.Errorf("chain.Check:\n%v", err)
	}
}
