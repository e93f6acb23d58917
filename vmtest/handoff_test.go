package vmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hugelgupf/vmtest/testtmp"
	"github.com/kexecmeta/kexecmeta/vmtest/chain"
	"github.com/u-root/mkuimage/cpio"
)

// VM tests for GitHub issue 4, "Loading and handoff that operators can
// trust": kexecmeta refuses what cannot work before the kernel is
// asked, says why, and a handoff it does make keeps the command line,
// every initrd and the data written just before it.

// blockOf returns the block named name of boot n (from 1), failing the
// test when the guest did not print it whole.
func blockOf(t *testing.T, boots []chain.Boot, n int,
	name string) chain.Output {
	t.Helper()
	o, ok := chain.BlockOf(boots, n, name)
	switch {
	case !ok:
		t.Fatalf("boot %d printed no block %q", n, name)
	case !o.Ended:
		t.Fatalf("boot %d block %q has no end marker:\n%s", n, name,
			o.Text())
	}
	t.Logf("boot %d %s (exit %d):\n%s", n, name, o.Exit, o.Text())
	return o
}

// wantExit checks a block's exit status and that its text holds each
// of subs.
func wantExit(t *testing.T, o chain.Output, exit int, subs ...string) {
	t.Helper()
	if o.Exit != exit {
		t.Errorf("%s: exit %d, want %d", o.Name, o.Exit, exit)
	}
	for _, s := range subs {
		if !strings.Contains(o.Text(), s) {
			t.Errorf("%s: output lacks %q:\n%s", o.Name, s, o.Text())
		}
	}
}

// loadCmd is the `kexecmeta load` of the 7.2 kernel and the u-root
// initramfs, as the chain boots it, followed by args (shell text).
func loadCmd(args ...string) string {
	return strings.Join(append([]string{`kexecmeta load "$share/7.2/bzImage"`,
		`--initrd "$share/initramfs.cpio" --reuse-cmdline`}, args...), " ")
}

// scratchArgs are the cold boot's scratch sizes in TestLoadRefusals:
// low memory, global and per node. The kernel rounds each up to 4 MiB
// (PAGE_SIZE * MAX_ORDER_NR_PAGES), far less than the 7.2 kernel
// needs in memory or the 8 MiB u-root initramfs.
const scratchArgs = "kho_scratch=2M,2M,2M"

// TestLoadRefusals cold-boots 7.2 with scratch areas too small for the
// next kernel and checks, in one boot, that kexecmeta refuses what
// cannot work before any kexec syscall and the system runs on:
//   - `load --dry-run --json` shows fits=false;
//   - `load` exits 1 naming the scratch areas and kho_scratch=, and
//     nothing is loaded;
//   - `exec` with nothing loaded exits 1, "no kernel is loaded", and the
//     next step still runs.
func TestLoadRefusals(t *testing.T) {
	qemuCmd, boots := requireVM(t)
	start := time.Now()

	step := chain.Block("cmdline", "cat /proc/cmdline") +
		chain.Block("dry-run", loadCmd("--dry-run --json")) +
		chain.Block("load", loadCmd()) +
		chain.Block("loaded", "cat /sys/kernel/kexec_loaded") +
		chain.Block("exec", "kexecmeta exec") +
		chain.Block("after-exec", "echo still running on boot $n")
	got := runChain(t, "refusals", chain.Config{
		Boots:        boots[:1],
		QEMU:         qemuCmd,
		Steps:        []string{step},
		ColdBootArgs: []string{scratchArgs},
	})
	if len(got) != 1 {
		t.Fatalf("got %d boots, want 1", len(got))
	}

	// The kernel took the scratch sizes and still runs KHO.
	wantExit(t, blockOf(t, got, 1, "cmdline"), 0, scratchArgs)
	if s := got[0].Status; s.KHO.Enabled != "yes" || !s.Outgoing.Found {
		t.Fatalf("with %s: kho.enabled = %q, outgoing.found = %v, want "+
			"\"yes\", true (status: %s)", scratchArgs, s.KHO.Enabled,
			s.Outgoing.Found, got[0].JSON)
	}

	t.Run("dry run shows fits false", func(t *testing.T) {
		o := blockOf(t, got, 1, "dry-run")
		wantExit(t, o, 0)
		var plan struct {
			KHO struct {
				On      bool `json:"on"`
				Fits    bool `json:"fits"`
				Scratch []struct {
					Len uint64 `json:"len"`
				} `json:"scratch"`
				FitError string `json:"fit_error"`
			} `json:"kho"`
		}
		js := jsonLine(o)
		if err := json.Unmarshal([]byte(js), &plan); err != nil {
			t.Fatalf("decoding the plan %q: %v", js, err)
		}
		k := plan.KHO
		if !k.On || k.Fits || len(k.Scratch) == 0 ||
			!strings.Contains(k.FitError, "scratch") {
			t.Errorf("plan kho: on %v, fits %v, %d scratch areas, "+
				"fit_error %q; want on, not fitting, areas, an error "+
				"naming scratch", k.On, k.Fits, len(k.Scratch),
				k.FitError)
		}
		for i, a := range k.Scratch {
			if a.Len > 4<<20 {
				t.Errorf("scratch area %d: %d bytes, want at most 4 "+
					"MiB with %s", i, a.Len, scratchArgs)
			}
		}
	})

	t.Run("load refuses before the syscall", func(t *testing.T) {
		o := blockOf(t, got, 1, "load")
		wantExit(t, o, 1, "scratch", "kho_scratch=")
		// A refusal by the kernel would show the call.
		if strings.Contains(o.Text(), "kexec_file_load(") {
			t.Errorf("load reached kexec_file_load:\n%s", o.Text())
		}
		l := blockOf(t, got, 1, "loaded")
		if strings.TrimSpace(l.Text()) != "0" {
			t.Errorf("/sys/kernel/kexec_loaded = %q, want 0", l.Text())
		}
	})

	t.Run("exec with nothing loaded", func(t *testing.T) {
		wantExit(t, blockOf(t, got, 1, "exec"), 1, "no kernel is loaded")
		wantExit(t, blockOf(t, got, 1, "after-exec"), 0,
			"still running on boot 1")
	})
	t.Logf("TestLoadRefusals took %v", time.Since(start).Round(
		time.Millisecond))
}

// jsonLine returns the first line of o that starts with "{".
func jsonLine(o chain.Output) string {
	for _, l := range o.Lines {
		if strings.HasPrefix(l, "{") {
			return l
		}
	}
	return ""
}

// extraMarker is the file the second initrd of TestHandoffKeeps holds.
const extraMarker = "/kexecmeta-extra/marker"

// writeExtraInitrd writes a newc cpio archive holding extraMarker with
// content, for the kernel to unpack after the u-root initramfs.
func writeExtraInitrd(t *testing.T, path, content string) {
	t.Helper()
	var b bytes.Buffer
	w := cpio.Newc.Writer(&b)
	recs := []cpio.Record{
		cpio.Directory(filepath.Dir(extraMarker[1:]), 0o755),
		cpio.StaticFile(extraMarker[1:], content, 0o644),
	}
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hopArg is what every hop of TestHandoffKeeps appends to the reused
// command line. The kernel passes it to init's environment.
const hopArg = "kexecmeta_hop=1"

// TestHandoffKeeps runs the chain 7.2 -> 7.3 -> 7.2 -> 7.2 and checks
// that the handoffs keep what they should:
//   - the command line, reused with the same --append on every hop, is
//     the same on boots 2, 3 and 4 and holds the appended word once;
//   - two initrds (--initrd A --initrd B) both reach the next kernel:
//     it boots u-root from A and has B's marker file, which the boot
//     after it, given A only, has not;
//   - a token written to a virtio disk just before `kexecmeta boot`,
//     while another process holds the disk open (so closing it does not
//     flush it), is read back intact after the kexec, and is in the
//     disk image when QEMU has exited; as a control, a token written
//     the same way before `kexecmeta boot --no-sync` is lost (without
//     the other opener, the last close would flush it);
//   - with kernel.kexec_load_disabled set, `load` exits 1 and its hint
//     names kexec_load_disabled.
//
// The KHO records must still follow the chain, as in TestKexecChain.
func TestHandoffKeeps(t *testing.T) {
	qemuCmd, boots := requireVM(t)
	start := time.Now()
	dir := testtmp.TempDir(t)

	// The second initrd and the disk.
	mark := fmt.Sprintf("kexecmeta-extra-%x", time.Now().UnixNano())
	extra := filepath.Join(dir, "extra.cpio")
	writeExtraInitrd(t, extra, mark+"\n")
	token := fmt.Sprintf("kexecmeta-disk-%x\n", time.Now().UnixNano())
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	lost := fmt.Sprintf("kexecmeta-lost-%x", time.Now().UnixNano())
	appendArg := "--append " + chain.Quote(hopArg)
	cmdline := chain.Block("cmdline", "cat /proc/cmdline")
	marker := chain.Block("marker", "cat "+extraMarker)
	steps := []string{
		// Boot 1, 7.2: no marker yet; write the token with the disk
		// held open by a reader, then hand off with two initrds.
		cmdline + marker +
			"sleep 600 </dev/vda &\n" +
			chain.Block("disk-write", "echo "+chain.Quote(
				strings.TrimSuffix(token, "\n"))+
				" | dd of=/dev/vda bs=512 conv=notrunc status=none") +
			chain.BootStep("7.3", `--initrd "$share/extra.cpio"`,
				appendArg),
		// Boot 2, 7.3: the marker from the second initrd, the token.
		// Then the control: a second token, held open the same way,
		// handed off with --no-sync.
		cmdline + marker +
			chain.Block("disk-read", fmt.Sprintf("dd if=/dev/vda "+
				"bs=%d count=1 status=none", len(token))) +
			"sleep 600 </dev/vda &\n" +
			chain.Block("disk-write-nosync", "echo "+lost+
				" | dd of=/dev/vda bs=512 seek=8 conv=notrunc "+
				"status=none") +
			chain.BootStep("7.2", appendArg, "--no-sync"),
		// Boot 3, 7.2: the initramfs alone, so no marker; the second
		// token is lost.
		cmdline + marker +
			chain.Block("disk-read-nosync", "dd if=/dev/vda bs=512 "+
				"skip=8 count=1 status=none | grep -c "+lost) +
			chain.BootStep("7.2", appendArg),
		// Boot 4, 7.2: kexec disabled.
		cmdline +
			chain.Block("disable", "echo 1 "+
				">/proc/sys/kernel/kexec_load_disabled && "+
				"cat /proc/sys/kernel/kexec_load_disabled") +
			chain.Block("load-disabled", loadCmd()) +
			chain.Block("loaded", "cat /sys/kernel/kexec_loaded"),
	}
	got := runChain(t, "handoff", chain.Config{
		Boots: boots,
		QEMU:  qemuCmd,
		Steps: steps,
		Files: map[string]string{"extra.cpio": extra},
		QEMUArgs: []string{"-drive",
			"file=" + disk + ",if=virtio,format=raw"},
	})
	if err := chain.Check(boots, got); err != nil {
		t.Errorf("chain.Check:\n%v", err)
	}
	if len(got) != len(boots) {
		t.Fatalf("got %d boots, want %d", len(got), len(boots))
	}

	t.Run("command line kept over three hops", func(t *testing.T) {
		var lines []string
		for n := 1; n <= 4; n++ {
			o := blockOf(t, got, n, "cmdline")
			wantExit(t, o, 0)
			lines = append(lines, strings.TrimSpace(o.Text()))
		}
		if strings.Contains(lines[0], hopArg) {
			t.Errorf("boot 1 command line %q already has %s", lines[0],
				hopArg)
		}
		for n := 3; n <= 4; n++ {
			if lines[n-1] != lines[1] {
				t.Errorf("boot %d command line\n%s\ndiffers from boot "+
					"2's\n%s", n, lines[n-1], lines[1])
			}
		}
		if c := strings.Count(" "+lines[1]+" ", " "+hopArg+" "); c != 1 {
			t.Errorf("boot 2 command line %q has %s %d times, want 1",
				lines[1], hopArg, c)
		}
	})

	t.Run("two initrds", func(t *testing.T) {
		wantExit(t, blockOf(t, got, 2, "marker"), 0, mark)
		for _, n := range []int{1, 3} {
			o := blockOf(t, got, n, "marker")
			if o.Exit == 0 || strings.Contains(o.Text(), mark) {
				t.Errorf("boot %d: %s exists (exit %d, %q); want it "+
					"only on boot 2", n, extraMarker, o.Exit, o.Text())
			}
		}
	})

	t.Run("disk write survives the handoff", func(t *testing.T) {
		wantExit(t, blockOf(t, got, 1, "disk-write"), 0)
		o := blockOf(t, got, 2, "disk-read")
		wantExit(t, o, 0)
		if o.Text() != strings.TrimSuffix(token, "\n") {
			t.Errorf("boot 2 read %q from /dev/vda, want %q", o.Text(),
				token)
		}
		b, err := os.ReadFile(disk)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(b[:len(token)]); got != token {
			t.Errorf("disk image starts with %q, want %q", got, token)
		}
	})

	// Without the sync the write must be lost, or the test above
	// would pass without kexecmeta's sync.
	t.Run("control: without sync the write is lost", func(t *testing.T) {
		wantExit(t, blockOf(t, got, 2, "disk-write-nosync"), 0)
		o := blockOf(t, got, 3, "disk-read-nosync")
		if strings.TrimSpace(o.Text()) != "0" {
			t.Errorf("boot 3 found the token written before a "+
				"--no-sync handoff (grep -c: %q): the disk test does "+
				"not show that kexecmeta's sync matters", o.Text())
		}
		b, err := os.ReadFile(disk)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(lost)) {
			t.Errorf("disk image holds the token written before a " +
				"--no-sync handoff")
		}
	})

	t.Run("kexec_load_disabled", func(t *testing.T) {
		wantExit(t, blockOf(t, got, 4, "disable"), 0, "1")
		wantExit(t, blockOf(t, got, 4, "load-disabled"), 1,
			"kexecmeta: hint:", "kexec_load_disabled")
		l := blockOf(t, got, 4, "loaded")
		if strings.TrimSpace(l.Text()) != "0" {
			t.Errorf("/sys/kernel/kexec_loaded = %q, want 0", l.Text())
		}
	})
	t.Logf("TestHandoffKeeps took %v", time.Since(start).Round(
		time.Millisecond))
}
