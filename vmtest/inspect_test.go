package vmtest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hugelgupf/vmtest/testtmp"
	"github.com/kexecmeta/kexecmeta/pkg/kho"
	"github.com/kexecmeta/kexecmeta/vmtest/chain"
)

// lateParams turn on the two subsystems that add blobs to the handover
// besides kexec-metadata: LUO (liveupdate=on; 7.2 and 7.3 share its
// ABI, luo-v5) and memblock (one reserve_mem= region). Both add their
// subtrees after the kernel exposed out/fdt in debugfs, which keeps the
// size it had then, so on a cold boot with them out/fdt reads truncated
// (TestInspectLateSubtrees). TestInspect turns them on from its second
// boot, so its cold boot shows out/fdt whole.
var lateParams = []string{"liveupdate=on",
	"reserve_mem=1M:4096:" + reserveMemName}

// lateArgs are lateParams as `kexecmeta boot` options.
var lateArgs = []string{"--append", lateParams[0], "--append",
	lateParams[1]}

// reserveMemName names the reserve_mem= region of TestInspect.
const reserveMemName = "kexecmeta"

// updateTestdata says whether TestInspect copies its captures into
// pkg/kho/testdata (KEXECMETA_UPDATE_TESTDATA=1).
func updateTestdata() bool {
	return os.Getenv("KEXECMETA_UPDATE_TESTDATA") == "1"
}

// inspectJSON is what the test checks of `kexecmeta inspect --json`.
// Errors (the "*_error" and "error" keys) are checked apart: kho's
// types drop them when decoding.
type inspectJSON struct {
	Schema          int             `json:"schema"`
	Release         string          `json:"release"`
	PreviousRelease string          `json:"previous_release"`
	KexecCount      uint32          `json:"kexec_count"`
	ABI             kho.Generation  `json:"abi"`
	Inherited       kho.Inheritance `json:"inherited"`
	Outgoing        kho.Outgoing    `json:"outgoing"`
	Handover        *kho.State      `json:"handover"`
	HandoverError   string          `json:"handover_error"`
}

// TestInspect cold-boots 7.2 and kexecs 7.2 -> 7.3 -> 7.2. On each boot
// the guest prints `kexecmeta inspect --json` and runs `kexecmeta
// capture` into the writable share; the host then runs `kexecmeta
// inspect --dir --json` on each capture and checks that it says what
// the guest said, and checks what the guest said against the chain:
// the ABI, the records on both sides, the scratch areas, and the blobs
// LUO and memblock hand over.
//
// With KEXECMETA_UPDATE_TESTDATA=1 it copies the captures into
// pkg/kho/testdata (see the README there).
func TestInspect(t *testing.T) {
	qemuCmd, all := requireVM(t)
	if len(all) < 3 || all[0].Series != "7.2" || all[1].Series != "7.3" ||
		all[2].Series != "7.2" {
		t.Fatalf("chain.DefaultChain starts %v, want 7.2, 7.3, 7.2", all)
	}
	boots := all[:3]
	host := buildHostKexecmeta(t)

	// On each boot: inspect, capture, then kexec into the next kernel.
	steps := make([]string, len(boots))
	for i := range boots {
		steps[i] = inspectSteps()
		switch {
		case i == 0:
			steps[i] += chain.BootStep(boots[i+1].Series, lateArgs...)
		case i+1 < len(boots):
			steps[i] += chain.BootStep(boots[i+1].Series)
		}
	}
	dir, got := runInspect(t, "inspect", chain.Config{
		Boots: boots,
		QEMU:  qemuCmd,
		Steps: steps,
	})

	for _, b := range got {
		k := boots[b.N-1]
		t.Run(fmt.Sprintf("boot%d-%s", b.N, k.Release), func(t *testing.T) {
			guest := guestInspect(t, b)
			captured := capturePath(dir, b.N)
			onHost := hostInspect(t, host, captured)
			compareInspect(t, guest, onHost)
			checkInspect(t, boots, b.N, guest)
			if updateTestdata() {
				copyTestdata(t, captured, testdataName(boots, b.N))
			}
		})
	}
}

// inspectSteps returns the guest step that prints `kexecmeta inspect
// --json` in the block "inspect" and captures into the state share as
// capture.N, in the block "capture".
func inspectSteps() string {
	return chain.Block("inspect", "kexecmeta inspect --json") +
		chain.Block("capture", `kexecmeta capture "$state/capture.$n"`)
}

// runInspect runs the chain c (its initramfs filled in) in QEMU, with
// the console logged with the prefix name, and returns the directory
// chain.Setup laid out (the captures are in its state/) and the boots
// read. A broken run is reported with t.Errorf.
func runInspect(t *testing.T, name string, c chain.Config) (string,
	[]chain.Boot) {
	t.Helper()
	dir := testtmp.TempDir(t)
	got := runChainIn(t, name, dir, c)
	if err := chain.Check(c.Boots, got); err != nil {
		t.Errorf("chain.Check:\n%v", err)
	}
	return dir, got
}

// capturePath is where boot n captured into, under runInspect's dir.
func capturePath(dir string, n int) string {
	return filepath.Join(dir, "state", fmt.Sprintf("capture.%d", n))
}

// TestInspectLateSubtrees cold-boots 7.2 with LUO and a reserve_mem=
// region, whose subtrees join the outgoing root FDT after the kernel
// exposed it in debugfs: 7.2's kho_init creates out/fdt with the FDT's
// size at that moment, and the file keeps that size, so reading it
// gives a truncated FDT. The test pins that kernel behaviour, checks
// that inspect reports it as a tree error while the blobs still decode,
// and that a capture reads back the same on the host.
func TestInspectLateSubtrees(t *testing.T) {
	qemuCmd, all := requireVM(t)
	boots := all[:1]
	host := buildHostKexecmeta(t)
	dir, got := runInspect(t, "late", chain.Config{
		Boots:        boots,
		QEMU:         qemuCmd,
		Steps:        []string{inspectSteps()},
		ColdBootArgs: lateParams,
	})
	if len(got) != 1 {
		t.Fatalf("got %d boots, want 1", len(got))
	}

	guest := guestInspect(t, got[0])
	captured := capturePath(dir, 1)
	compareInspect(t, guest, hostInspect(t, host, captured))

	// The kernel's debugfs file is shorter than the FDT it holds.
	fdt, err := os.ReadFile(filepath.Join(captured, "kho", "out", "fdt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(fdt) < 8 {
		t.Fatalf("out/fdt is %d bytes, want an FDT header", len(fdt))
	}
	total := binary.BigEndian.Uint32(fdt[4:8])
	t.Logf("out/fdt: %d bytes read, FDT totalsize %d", len(fdt), total)
	if int(total) <= len(fdt) {
		t.Errorf("out/fdt is %d bytes with totalsize %d: the kernel "+
			"now exposes it whole; update this test and the README "+
			"of pkg/kho/testdata", len(fdt), total)
	}

	var r struct {
		Handover struct {
			Out map[string]json.RawMessage `json:"out"`
		} `json:"handover"`
	}
	if err := json.Unmarshal(guest, &r); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Handover.Out["tree_error"]; !ok {
		t.Errorf("handover.out = %s, want a tree_error", guest)
	}
	var full inspectJSON
	if err := json.Unmarshal(guest, &full); err != nil {
		t.Fatal(err)
	}
	if full.Handover == nil || full.Handover.Out == nil {
		t.Fatalf("handover.out = null")
	}
	out := full.Handover.Out
	checkBlobs(t, "out", out, blobNames(true))
	checkBlobRecord(t, "out", out, kho.Record{Version: 1,
		PreviousRelease: boots[0].Release, KexecCount: 1})
	checkReserveMem(t, "out", out)
	if updateTestdata() {
		copyTestdata(t, captured, boots[0].Release+"-cold-late-subtrees")
	}
}

// buildHostKexecmeta builds kexecmeta for the host.
func buildHostKexecmeta(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(testtmp.TempDir(t), "kexecmeta")
	cmd := exec.Command("go", "build", "-o", bin,
		"github.com/kexecmeta/kexecmeta/cmds/kexecmeta")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kexecmeta for the host: %v\n%s", err, out)
	}
	return bin
}

// guestInspect returns the JSON line `kexecmeta inspect --json` printed
// on boot b, and checks that capture succeeded there.
func guestInspect(t *testing.T, b chain.Boot) []byte {
	t.Helper()
	if c, ok := b.Block("capture"); !ok || c.Exit != 0 {
		t.Errorf("boot %d: kexecmeta capture: exit %d:\n%s", b.N, c.Exit,
			c.Text())
	}
	o, ok := b.Block("inspect")
	if !ok || o.Exit != 0 {
		t.Fatalf("boot %d: kexecmeta inspect --json: exit %d:\n%s", b.N,
			o.Exit, o.Text())
	}
	var js []string
	for _, l := range o.Lines {
		if strings.HasPrefix(l, "{") {
			js = append(js, l)
		}
	}
	if len(js) != 1 {
		t.Fatalf("boot %d: kexecmeta inspect --json printed %d JSON "+
			"lines, want 1:\n%s", b.N, len(js), o.Text())
	}
	t.Logf("boot %d inspect: %s", b.N, js[0])
	return []byte(js[0])
}

// hostInspect runs `kexecmeta inspect --dir DIR --json` on the host.
func hostInspect(t *testing.T, bin, dir string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "inspect", "--dir", dir, "--json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kexecmeta inspect --dir %s --json: %v\n%s", dir, err,
			stderr.String())
	}
	return stdout.Bytes()
}

// compareInspect checks that the host read the capture as the guest
// read its own state. Only kho.mounted may differ: kexecmeta names
// debugfs there when it had to mount it, and reading a capture mounts
// nothing. (In these VMs debugfs is mounted already, so neither side
// has the key.)
func compareInspect(t *testing.T, guest, host []byte) {
	t.Helper()
	var g, h map[string]any
	if err := json.Unmarshal(guest, &g); err != nil {
		t.Fatalf("decoding the guest's inspect: %v", err)
	}
	if err := json.Unmarshal(host, &h); err != nil {
		t.Fatalf("decoding the host's inspect: %v", err)
	}
	for _, m := range []map[string]any{g, h} {
		if k, ok := m["kho"].(map[string]any); ok {
			delete(k, "mounted")
		}
	}
	if !reflect.DeepEqual(g, h) {
		gi, _ := json.MarshalIndent(g, "", "  ")
		hi, _ := json.MarshalIndent(h, "", "  ")
		t.Errorf("inspect --dir on the host differs from inspect in the "+
			"guest\nguest:\n%s\nhost:\n%s", gi, hi)
	}
}

// errorKeys returns the paths of the error keys in a decoded JSON value.
func errorKeys(v any, path string) []string {
	var keys []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == "error" || strings.HasSuffix(k, "_error") {
				keys = append(keys, path+"."+k)
			}
			keys = append(keys, errorKeys(e, path+"."+k)...)
		}
	case []any:
		for i, e := range v {
			keys = append(keys, errorKeys(e, fmt.Sprintf("%s[%d]", path,
				i))...)
		}
	}
	return keys
}

// blobNames returns the blobs a side holds in TestInspect, sorted as
// ReadState lists them: kexec-metadata, and LUO's and memblock's when
// the kernel that wrote the side ran with lateArgs.
func blobNames(late bool) []string {
	if late {
		return []string{kho.LUOName, kho.MetadataName, kho.MemblockName}
	}
	return []string{kho.MetadataName}
}

// checkInspect checks what inspect said on boot n (from 1) of a chain
// of boots in which boot 2 and later run with lateArgs.
func checkInspect(t *testing.T, boots []chain.Kernel, n int, js []byte) {
	t.Helper()
	var raw any
	if err := json.Unmarshal(js, &raw); err != nil {
		t.Fatal(err)
	}
	if keys := errorKeys(raw, ""); len(keys) > 0 {
		t.Errorf("inspect reports errors at %v", keys)
	}
	var r inspectJSON
	if err := json.Unmarshal(js, &r); err != nil {
		t.Fatalf("decoding inspect: %v", err)
	}

	k := boots[n-1]
	if r.Schema != 1 || r.Release != k.Release ||
		r.ABI != kho.GenerationV4 {
		t.Errorf("schema, release, abi = %d, %q, %v, want 1, %q, kho-v4",
			r.Schema, r.Release, r.ABI, k.Release)
	}
	if r.Handover == nil || r.Handover.Out == nil {
		t.Fatalf("handover = %+v, want an out side", r.Handover)
	}

	// The outgoing side: this kernel's record, its scratch areas.
	out := r.Handover.Out
	checkBlobs(t, "out", out, blobNames(n > 1))
	checkBlobRecord(t, "out", out, kho.Record{Version: 1,
		PreviousRelease: k.Release, KexecCount: uint32(n)})
	if b := out.Blob(kho.MetadataName); b != nil &&
		(!r.Outgoing.Found || r.Outgoing.Record == nil ||
			b.KexecMetadata == nil ||
			*r.Outgoing.Record != *b.KexecMetadata) {
		t.Errorf("outgoing = %+v, want the out blob's record",
			r.Outgoing)
	}
	var kinds []kho.ScratchKind
	for _, a := range out.Scratch {
		kinds = append(kinds, a.Kind)
	}
	// The global area may be empty: on this one-node VM 7.2 sizes it
	// 0 bytes.
	if len(kinds) < 3 || kinds[0] != kho.ScratchLowmem ||
		kinds[1] != kho.ScratchGlobal || kinds[2] != kho.ScratchNode ||
		out.Scratch[0].Len == 0 || out.Scratch[2].Len == 0 {
		t.Errorf("out scratch = %+v, want lowmem, global, node..., "+
			"lowmem and node not empty", out.Scratch)
	}
	if n > 1 {
		if luo := out.Blob(kho.LUOName); luo == nil ||
			luo.LUOCompatible != "luo-v5" {
			t.Errorf("out blob LUO = %+v, want luo-v5", luo)
		}
		checkReserveMem(t, "out", out)
	}
	// Only a cold-booted kernel shows out/fdt (kho_init in 7.2).
	if n == 1 {
		checkTree(t, "out", out.Tree, blobNames(false))
	} else if out.Tree != nil {
		t.Errorf("out tree = %+v, want none after a kexec", out.Tree)
	}

	// The incoming side.
	if n == 1 {
		if r.Handover.In != nil || r.Inherited.Found ||
			r.Inherited.Reason != kho.ReasonColdBoot {
			t.Errorf("in, inherited = %+v, %+v, want absent, cold-boot",
				r.Handover.In, r.Inherited)
		}
		return
	}
	in := r.Handover.In
	if in == nil {
		t.Fatalf("handover.in = null, want what boot %d handed over",
			n-1)
	}
	want := kho.Record{Version: 1, PreviousRelease: boots[n-2].Release,
		KexecCount: uint32(n - 1)}
	checkTree(t, "in", in.Tree, blobNames(n > 2))
	checkBlobs(t, "in", in, blobNames(n > 2))
	checkBlobRecord(t, "in", in, want)
	if !r.Inherited.Found || r.Inherited.Source != kho.SourceDebugfs ||
		r.Inherited.Record == nil || *r.Inherited.Record != want ||
		r.PreviousRelease != want.PreviousRelease ||
		r.KexecCount != want.KexecCount {
		t.Errorf("inherited = %+v (previous_release %q, kexec_count %d), "+
			"want %+v from debugfs", r.Inherited, r.PreviousRelease,
			r.KexecCount, want)
	}
	if n > 2 {
		// Listed with the tree's size, never read.
		var size uint64
		if in.Tree != nil {
			for _, st := range in.Tree.Subtrees {
				if st.Name == kho.LUOName {
					size = st.Size
				}
			}
		}
		if luo := in.Blob(kho.LUOName); luo == nil || !luo.Skipped ||
			luo.Size == 0 || uint64(luo.Size) != size {
			t.Errorf("in blob LUO = %+v, want it skipped, %d bytes", luo,
				size)
		}
		checkReserveMem(t, "in", in)
	}
}

// checkBlobs checks the names of the blobs of one side.
func checkBlobs(t *testing.T, side string, s *kho.Side, want []string) {
	t.Helper()
	var names []string
	for _, b := range s.Blobs {
		names = append(names, b.Name)
	}
	if !slices.Equal(names, want) {
		t.Errorf("%s blobs = %v, want %v", side, names, want)
	}
}

// checkTree checks a root handover FDT as 7.2 and 7.3 write it, with a
// subtree for each blob of want.
func checkTree(t *testing.T, side string, tr *kho.Tree, want []string) {
	t.Helper()
	if tr == nil {
		t.Errorf("%s tree = null, want one", side)
		return
	}
	if tr.Compatible != "kho-v4" || tr.Generation != kho.GenerationV4 ||
		tr.MemoryMap == 0 {
		t.Errorf("%s tree = %q (%v), preserved-memory-map %#x, want "+
			"kho-v4 and an address", side, tr.Compatible, tr.Generation,
			tr.MemoryMap)
	}
	var names []string
	for _, s := range tr.Subtrees {
		names = append(names, s.Name)
		if s.Address == 0 || s.Size == 0 {
			t.Errorf("%s subtree %+v: want an address and a size", side, s)
		}
		if s.Name == kho.MetadataName && s.Size != kho.RecordSize {
			t.Errorf("%s subtree %s is %d bytes, want %d", side, s.Name,
				s.Size, kho.RecordSize)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("%s subtrees = %v, want %v", side, names, want)
	}
}

// checkBlobRecord checks the kexec-metadata blob of one side.
func checkBlobRecord(t *testing.T, side string, s *kho.Side,
	want kho.Record) {
	t.Helper()
	b := s.Blob(kho.MetadataName)
	if b == nil || b.KexecMetadata == nil || b.Size != kho.RecordSize {
		t.Errorf("%s blob %s = %+v, want a %d-byte record", side,
			kho.MetadataName, b, kho.RecordSize)
		return
	}
	if *b.KexecMetadata != want {
		t.Errorf("%s record = %+v, want %+v", side, *b.KexecMetadata,
			want)
	}
}

// checkReserveMem checks the memblock blob of one side: the
// reserve_mem= region of lateArgs.
func checkReserveMem(t *testing.T, side string, s *kho.Side) {
	t.Helper()
	b := s.Blob(kho.MemblockName)
	if b == nil || len(b.ReserveMem) != 1 {
		t.Errorf("%s blob %s = %+v, want one region", side,
			kho.MemblockName, b)
		return
	}
	if r := b.ReserveMem[0]; r.Name != reserveMemName ||
		r.Size != 1<<20 || r.Start == 0 || r.Start%4096 != 0 {
		t.Errorf("%s reserve_mem = %+v, want %s, 1 MiB, page aligned",
			side, r, reserveMemName)
	}
}

// testdataName names the capture of boot n in pkg/kho/testdata:
// RELEASE-cold or RELEASE-after-PREVIOUS.
func testdataName(boots []chain.Kernel, n int) string {
	if n == 1 {
		return boots[0].Release + "-cold"
	}
	return boots[n-1].Release + "-after-" + boots[n-2].Release
}

// copyTestdata replaces pkg/kho/testdata/NAME with the capture src.
func copyTestdata(t *testing.T, src, name string) {
	t.Helper()
	dst := filepath.Join("..", "pkg", "kho", "testdata", name)
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	// Copy what capture wrote, not QEMU's 9p metadata (security_model
	// mapped-file keeps the guest's file modes in .virtfs_metadata),
	// readable by all.
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry,
		err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".virtfs_metadata" {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s to %s: %v", src, dst, err)
	}
	t.Logf("updated %s", dst)
}
