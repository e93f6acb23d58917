package vmtest

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
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

// TestKexecChain cold-boots 7.2, kexecs 7.2 -> 7.3 -> 7.2 -> 7.2 with
// `kexecmeta boot`, and checks what `kexecmeta status --json` reported on
// each boot: the release, the kexec count, the previous release from the
// inherited record, read through debugfs, and the record handed on.
func TestKexecChain(t *testing.T) {
	qemuCmd, boots := requireVM(t)
	for i, k := range boots {
		t.Logf("boot %d: %s (%s) %s", i+1, k.Series, k.Release, k.Path)
	}

	// Build the initramfs the guest boots and kexecs with.
	initrd := filepath.Join(testtmp.TempDir(t), "initramfs.cpio")
	start := time.Now()
	l := llog.New(slog.LevelInfo, t.Logf)
	if err := chain.BuildInitramfs(l, initrd, testtmp.TempDir(t)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(initrd); err == nil {
		t.Logf("initramfs: %d bytes, built in %v", fi.Size(),
			time.Since(start).Round(time.Millisecond))
	}

	fns, err := chain.Setup(testtmp.TempDir(t), chain.Config{
		Boots:     boots,
		Initramfs: initrd,
		QEMU:      qemuCmd,
	})
	if err != nil {
		t.Fatal(err)
	}

	// Run the chain; qemu.StartT logs the console with the prefix
	// "chain".
	start = time.Now()
	vm := qemu.StartT(t, "chain", chain.Arch, fns...)
	got, err := chain.Read(vm.Console, len(boots), chain.IdleTimeout)
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
	t.Logf("chain of %d boots ran in %v", len(got),
		time.Since(start).Round(time.Millisecond))

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
