package kho

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// The captures in testdata/, made by TestInspect and
// TestInspectLateSubtrees in ../../vmtest (see testdata/README.md).
const (
	capCold      = "7.2.13-cold"
	capAfter72   = "7.3.4-after-7.2.13"
	capAfter73   = "7.2.13-after-7.3.4"
	capColdLate  = "7.2.13-cold-late-subtrees"
	testdataRoot = "testdata"
)

// testdataCaptures returns the name of each capture in testdata/.
func testdataCaptures(tb testing.TB) []string {
	tb.Helper()
	m, err := filepath.Glob(filepath.Join(testdataRoot, "*", CaptureFile))
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, p := range m {
		names = append(names, filepath.Base(filepath.Dir(p)))
	}
	return names
}

// testdataFile returns the file name (slash-separated, under kho/) of
// the capture c, empty when it has none.
func testdataFile(tb testing.TB, c, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(testdataRoot, c, CaptureKHODir,
		filepath.FromSlash(name)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		tb.Fatal(err)
	}
	return b
}

// testdataFiles returns the file name (slash-separated, under kho/) of
// each capture that has it, deduplicated by content.
func testdataFiles(tb testing.TB, name string) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, c := range testdataCaptures(tb) {
		b, err := os.ReadFile(filepath.Join(testdataRoot, c, CaptureKHODir,
			filepath.FromSlash(name)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			tb.Fatal(err)
		}
		if !slices.ContainsFunc(out, func(o []byte) bool {
			return bytes.Equal(o, b)
		}) {
			out = append(out, b)
		}
	}
	return out
}

// testdataFDTs returns every FDT in the captures: the root trees of
// both sides and the memblock blobs.
func testdataFDTs(tb testing.TB) [][]byte {
	var out [][]byte
	for _, name := range []string{"in/fdt", "out/fdt",
		"in/sub_fdts/" + MemblockName, "out/sub_fdts/" + MemblockName} {
		out = append(out, testdataFiles(tb, name)...)
	}
	return out
}

// readTestdata reads one capture and its state.
func readTestdata(t *testing.T, name string) (*System, *State) {
	t.Helper()
	s, err := ReadCapture(filepath.Join(testdataRoot, name))
	if err != nil {
		t.Fatalf("ReadCapture(%s) = %v", name, err)
	}
	if s.KHO == nil {
		t.Fatalf("ReadCapture(%s).KHO = nil, want kho/", name)
	}
	st, err := ReadState(s.KHO)
	if err != nil {
		t.Fatalf("ReadState(%s) = %v", name, err)
	}
	return s, st
}

// stateJSON returns the JSON of what inspect decides from s: the
// state, the inherited and outgoing records, Built and Enabled.
func stateJSON(t *testing.T, s *System) string {
	t.Helper()
	st, err := ReadState(s.KHO)
	if err != nil {
		t.Fatalf("ReadState() = %v", err)
	}
	b, err := json.MarshalIndent(struct {
		State     *State
		Inherited Inheritance
		Outgoing  Outgoing
		Built     Tristate
		Enabled   Tristate
	}{st, s.Inherited(), s.Outgoing(), s.Built(), s.Enabled()}, "", " ")
	if err != nil {
		t.Fatalf("json.Marshal() = %v", err)
	}
	return string(b)
}

// sideWant is what a side of a capture must decode to. Physical
// addresses are checked for page alignment only: the kernel places the
// blobs it allocates after boot differently from one run to the next
// (TestTestdataChain checks how they carry over).
type sideWant struct {
	// tree is the root tree's subtrees as "name+size", nil when the
	// tree must be absent.
	tree []string

	// treeErr is the sentinel of the tree's error, nil for none.
	treeErr error

	// blobs are the blob names in order; record the kexec-metadata
	// record; luo says the LUO blob is there (skipped on the in side,
	// luo-v5 on the out side); reserveMem that the memblock blob holds
	// the one reserve_mem region of TestInspect.
	blobs      []string
	record     Record
	luo        bool
	reserveMem bool
}

// The scratch areas of the 1 GiB VM that the cold boot of TestInspect
// reserves and every later kernel of the chain inherits.
var vmScratch = []ScratchArea{
	{ScratchLowmem, 0x39c00000, 0x4800000},
	{ScratchGlobal, 0x39c00000, 0},
	{ScratchNode, 0x2c400000, 0xd800000},
}

// pageAligned says whether a physical address is a non-zero multiple
// of 4 KiB.
func pageAligned(a uint64) bool { return a != 0 && a%4096 == 0 }

func TestTestdata(t *testing.T) {
	all := []string{LUOName, MetadataName, MemblockName}
	meta := []string{MetadataName}
	for _, tt := range []struct {
		name      string
		release   string
		setupData []uint32
		logLines  int
		inherited Inheritance
		outgoing  Record
		in        *sideWant
		out       sideWant
		scratch   []ScratchArea
	}{
		{
			name:    capCold,
			release: "7.2.13",
			inherited: Inheritance{Reason: ReasonColdBoot,
				Detail: "no incoming handover (debugfs kho/in is absent)"},
			outgoing: Record{1, "7.2.13", 1},
			out: sideWant{
				tree:   []string{"kexec-metadata+73"},
				blobs:  meta,
				record: Record{1, "7.2.13", 1},
			},
			scratch: vmScratch,
		},
		{
			name:      capAfter72,
			release:   "7.3.4",
			setupData: []uint32{setupKexecKHO},
			logLines:  2,
			inherited: Inheritance{Found: true, Source: SourceDebugfs,
				Evidence: InMetadataPath,
				Record:   &Record{1, "7.2.13", 1}},
			outgoing: Record{1, "7.3.4", 2},
			in: &sideWant{
				tree:   []string{"kexec-metadata+73"},
				blobs:  meta,
				record: Record{1, "7.2.13", 1},
			},
			out: sideWant{
				blobs:      all,
				record:     Record{1, "7.3.4", 2},
				luo:        true,
				reserveMem: true,
			},
			scratch: vmScratch,
		},
		{
			name:      capAfter73,
			release:   "7.2.13",
			setupData: []uint32{setupKexecKHO},
			logLines:  2,
			inherited: Inheritance{Found: true, Source: SourceDebugfs,
				Evidence: InMetadataPath,
				Record:   &Record{1, "7.3.4", 2}},
			outgoing: Record{1, "7.2.13", 3},
			in: &sideWant{
				tree: []string{"memblock+214", "LUO+32",
					"kexec-metadata+73"},
				blobs:      all,
				record:     Record{1, "7.3.4", 2},
				luo:        true,
				reserveMem: true,
			},
			out: sideWant{
				blobs:      all,
				record:     Record{1, "7.2.13", 3},
				luo:        true,
				reserveMem: true,
			},
			scratch: vmScratch,
		},
		{
			// out/fdt holds the 233 bytes the tree had when kho_init
			// exposed it, of the 345 it has after LUO and memblock.
			name:    capColdLate,
			release: "7.2.13",
			inherited: Inheritance{Reason: ReasonColdBoot,
				Detail: "no incoming handover (debugfs kho/in is absent)"},
			outgoing: Record{1, "7.2.13", 1},
			out: sideWant{
				treeErr:    ErrTruncated,
				blobs:      all,
				record:     Record{1, "7.2.13", 1},
				luo:        true,
				reserveMem: true,
			},
			scratch: []ScratchArea{
				{ScratchLowmem, 0x39800000, 0x4c00000},
				{ScratchGlobal, 0x39800000, 0},
				{ScratchNode, 0x2b400000, 0xe400000},
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, st := readTestdata(t, tt.name)
			if s.Release != tt.release || s.Arch != "x86_64" ||
				s.Debugfs != Yes {
				t.Errorf("release, arch, debugfs = %q, %q, %q, want "+
					"%q, x86_64, yes", s.Release, s.Arch, s.Debugfs,
					tt.release)
			}
			if !reflect.DeepEqual(s.SetupData, tt.setupData) ||
				len(s.Log) != tt.logLines {
				t.Errorf("setup_data, log = %v, %q, want %v and %d "+
					"lines", s.SetupData, s.Log, tt.setupData,
					tt.logLines)
			}
			if s.Built() != Yes || s.Enabled() != Yes ||
				s.debugfsBuilt() != Yes {
				t.Errorf("Built, Enabled, debugfsBuilt = %v, %v, %v, "+
					"want yes", s.Built(), s.Enabled(), s.debugfsBuilt())
			}

			if got := s.Inherited(); !reflect.DeepEqual(got, tt.inherited) {
				t.Errorf("Inherited() = %+v, want %+v", got, tt.inherited)
			}
			out := s.Outgoing()
			if !out.Found || out.Record == nil || *out.Record != tt.outgoing {
				t.Errorf("Outgoing() = %+v, want %+v", out, tt.outgoing)
			}

			if tt.in == nil {
				if st.In != nil {
					t.Errorf("In = %+v, want nil", st.In)
				}
			} else {
				checkSide(t, "in", st.In, *tt.in)
			}
			checkSide(t, "out", st.Out, tt.out)
			if st.Out != nil && (!reflect.DeepEqual(st.Out.Scratch,
				tt.scratch) || st.Out.ScratchErr != nil) {
				t.Errorf("Out.Scratch = %+v, %v, want %+v",
					st.Out.Scratch, st.Out.ScratchErr, tt.scratch)
			}
			if st.Out != nil && (st.Out.Finalized != nil ||
				st.Out.FinalizeErr != nil) {
				t.Errorf("Out.Finalized = %v, %v, want none on 7.x",
					st.Out.Finalized, st.Out.FinalizeErr)
			}
		})
	}
}

// checkSide checks one side of a capture.
func checkSide(t *testing.T, name string, s *Side, want sideWant) {
	t.Helper()
	if s == nil {
		t.Fatalf("%s = nil, want a side", name)
	}
	switch {
	case want.treeErr != nil:
		if !errors.Is(s.TreeErr, want.treeErr) || s.Tree != nil {
			t.Errorf("%s: Tree, TreeErr = %+v, %v, want %v", name,
				s.Tree, s.TreeErr, want.treeErr)
		}
	case want.tree == nil:
		if s.Tree != nil || s.TreeErr != nil {
			t.Errorf("%s: Tree, TreeErr = %+v, %v, want none", name,
				s.Tree, s.TreeErr)
		}
	case s.Tree == nil:
		t.Errorf("%s: Tree = nil (%v), want one", name, s.TreeErr)
	default:
		tr := s.Tree
		var subs []string
		for _, st := range tr.Subtrees {
			subs = append(subs, fmt.Sprintf("%s+%d", st.Name, st.Size))
			if st.Err != nil || !st.HasSize || !pageAligned(st.Address) {
				t.Errorf("%s: subtree %+v, want it whole", name, st)
			}
		}
		if tr.Compatible != "kho-v4" || tr.Generation != GenerationV4 ||
			!pageAligned(tr.MemoryMap) || tr.MemoryMapErr != nil ||
			!slices.Equal(subs, want.tree) {
			t.Errorf("%s: Tree = %q %v map %#x (%v) %q, want kho-v4 %q",
				name, tr.Compatible, tr.Generation, tr.MemoryMap,
				tr.MemoryMapErr, subs, want.tree)
		}
	}

	var names []string
	for _, b := range s.Blobs {
		names = append(names, b.Name)
		if b.Err != nil {
			t.Errorf("%s: blob %s: %v", name, b.Name, b.Err)
		}
	}
	if !slices.Equal(names, want.blobs) || s.BlobsErr != nil {
		t.Errorf("%s: blobs %q (%v), want %q", name, names, s.BlobsErr,
			want.blobs)
	}
	if b := s.Blob(MetadataName); b == nil || b.KexecMetadata == nil ||
		*b.KexecMetadata != want.record || len(b.Data) != RecordSize {
		t.Errorf("%s: kexec-metadata = %+v, want %+v", name, b,
			want.record)
	}

	luo := s.Blob(LUOName)
	switch {
	case !want.luo:
	case luo == nil:
		t.Errorf("%s: no LUO blob", name)
	case name == "in" && (!luo.Skipped || luo.Size != 32 ||
		luo.Data != nil):
		t.Errorf("%s: LUO = %+v, want skipped, 32 bytes", name, luo)
	case name == "out" && luo.LUOCompatible != "luo-v5":
		t.Errorf("%s: LUO = %+v, want luo-v5", name, luo)
	}

	mb := s.Blob(MemblockName)
	switch {
	case !want.reserveMem:
	case mb == nil || len(mb.ReserveMem) != 1:
		t.Errorf("%s: memblock = %+v, want one region", name, mb)
	default:
		if r := mb.ReserveMem[0]; r.Name != "kexecmeta" ||
			r.Size != 1<<20 || !pageAligned(r.Start) || r.Err != nil {
			t.Errorf("%s: reserve_mem = %+v, want kexecmeta, 1 MiB, "+
				"page aligned", name, r)
		}
	}
}

// TestTestdataChain checks what carries over from one boot of
// TestInspect's chain to the next: each kernel receives, byte for byte,
// the root tree (when shown) and the blobs the previous one handed
// over; the reserve_mem region is revived where it was; the scratch
// areas reserved at the cold boot stay the same.
func TestTestdataChain(t *testing.T) {
	chain := []string{capCold, capAfter72, capAfter73}
	for i := 1; i < len(chain); i++ {
		prev, next := chain[i-1], chain[i]
		names := []string{"sub_fdts/" + MetadataName}
		if i == 1 {
			names = append(names, "fdt")
		} else {
			names = append(names, "sub_fdts/"+MemblockName)
		}
		for _, name := range names {
			out := testdataFile(t, prev, "out/"+name)
			in := testdataFile(t, next, "in/"+name)
			if len(out) == 0 || !bytes.Equal(out, in) {
				t.Errorf("%s in/%s = %x, want %s out/%s = %x", next, name,
					in, prev, name, out)
			}
		}
	}

	// The in tree of the last boot gives each blob the size the
	// previous kernel's blob had.
	_, st := readTestdata(t, capAfter73)
	_, prev := readTestdata(t, capAfter72)
	if st.In == nil || st.In.Tree == nil || prev.Out == nil {
		t.Fatalf("%s in/fdt or %s out/ missing", capAfter73, capAfter72)
	}
	for _, sub := range st.In.Tree.Subtrees {
		b := prev.Out.Blob(sub.Name)
		if b == nil || uint64(b.Size) != sub.Size {
			t.Errorf("%s in subtree %s: %d bytes, want the size of %s "+
				"out blob %+v", capAfter73, sub.Name, sub.Size, capAfter72,
				b)
		}
	}

	// memblock revives the region at the same address.
	in := st.In.Blob(MemblockName)
	out := st.Out.Blob(MemblockName)
	if in == nil || out == nil || !reflect.DeepEqual(in.ReserveMem,
		out.ReserveMem) {
		t.Errorf("%s reserve_mem in %+v, out %+v, want the same region",
			capAfter73, in, out)
	}

	for _, c := range chain {
		_, st := readTestdata(t, c)
		if st.Out == nil || !reflect.DeepEqual(st.Out.Scratch,
			vmScratch) {
			t.Errorf("%s scratch = %+v, want the cold boot's %+v", c,
				st.Out, vmScratch)
		}
	}
}

// TestTestdataAll checks that testdata holds the captures the tests
// name, and nothing they do not.
func TestTestdataAll(t *testing.T) {
	got := testdataCaptures(t)
	want := []string{capAfter73, capCold, capColdLate, capAfter72}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("testdata captures = %q, want %q", got, want)
	}
}

// TestTestdataFromLog decides each capture again without its kho/
// directory, from the kernel log lines alone, as on a kernel without
// KHO debugfs.
func TestTestdataFromLog(t *testing.T) {
	for _, name := range testdataCaptures(t) {
		t.Run(name, func(t *testing.T) {
			s, _ := readTestdata(t, name)
			fromFS := s.Inherited()
			s.KHO = nil
			got := s.Inherited()
			if !fromFS.Found {
				// A cold boot: no handover passed, so the absent
				// setup_data (nil: not readable) leaves it unknown.
				if got.Found || got.Reason != ReasonUnknown {
					t.Errorf("Inherited() from the log = %+v, want "+
						"%s", got, ReasonUnknown)
				}
				return
			}
			want := Inheritance{Found: true, Source: SourceKmsg,
				Evidence: fmt.Sprintf("KHO: exec from: %s (count %d)",
					fromFS.Record.PreviousRelease,
					fromFS.Record.KexecCount),
				Record: fromFS.Record}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Inherited() from the log = %+v, want %+v", got,
					want)
			}
		})
	}
}

// TestTestdataRecords checks that each real record re-encodes to the
// bytes the kernel wrote: the layout of struct kho_kexec_metadata.
func TestTestdataRecords(t *testing.T) {
	blobs := testdataFiles(t, "in/sub_fdts/"+MetadataName)
	blobs = append(blobs, testdataFiles(t, "out/sub_fdts/"+MetadataName)...)
	if len(blobs) < 4 {
		t.Fatalf("%d kexec-metadata blobs in testdata, want 4 or more",
			len(blobs))
	}
	for _, b := range blobs {
		r, err := ParseRecord(b)
		if err != nil {
			t.Errorf("ParseRecord(%x) = %v", b, err)
			continue
		}
		again, err := r.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Errorf("MarshalBinary(%+v) = %x, %v, want %x", r, again,
				err, b)
		}
	}
}

// TestTestdataRecapture writes each capture again with WriteCapture and
// reads it back: the same evidence, the same decisions.
func TestTestdataRecapture(t *testing.T) {
	for _, name := range testdataCaptures(t) {
		t.Run(name, func(t *testing.T) {
			s, _ := readTestdata(t, name)
			dir := filepath.Join(t.TempDir(), "again")
			if err := WriteCapture(dir, s); err != nil {
				t.Fatalf("WriteCapture() = %v", err)
			}
			again, err := ReadCapture(dir)
			if err != nil {
				t.Fatalf("ReadCapture() = %v", err)
			}
			if g, w := stateJSON(t, again), stateJSON(t, s); g != w {
				t.Errorf("recaptured:\n%s\nwant:\n%s", g, w)
			}
			a, b := *again, *s
			a.KHO, b.KHO = nil, nil
			if !reflect.DeepEqual(a, b) {
				t.Errorf("recaptured %+v, want %+v", a, b)
			}
		})
	}
}

// fuzzCorpus is where `go test -fuzz` finds seed inputs beside those of
// f.Add; FuzzParseRecord takes the captures' records from there.
const fuzzCorpus = "testdata/fuzz"

// TestTestdataFuzzCorpus checks that testdata/fuzz/FuzzParseRecord
// holds each distinct kexec-metadata blob of the captures, named after
// the first capture and side that has it (captures in name order, in
// before out), or writes them there with KEXECMETA_UPDATE_TESTDATA=1.
func TestTestdataFuzzCorpus(t *testing.T) {
	dir := filepath.Join(fuzzCorpus, "FuzzParseRecord")
	update := os.Getenv("KEXECMETA_UPDATE_TESTDATA") == "1"
	if update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{}
	for _, c := range testdataCaptures(t) {
		for _, side := range []string{"in", "out"} {
			b, err := os.ReadFile(filepath.Join(testdataRoot, c,
				CaptureKHODir, side, "sub_fdts", MetadataName))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if !slices.Contains(slices.Collect(maps.Values(want)),
				data) {
				want[c+"-"+side] = data
			}
		}
	}
	for name, data := range want {
		p := filepath.Join(dir, name)
		if update {
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != data {
			t.Errorf("%s = %q, %v, want %q (run with "+
				"KEXECMETA_UPDATE_TESTDATA=1)", p, got, err, data)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, ok := want[e.Name()]; !ok {
			t.Errorf("%s/%s: not a capture's record (run with "+
				"KEXECMETA_UPDATE_TESTDATA=1)", dir, e.Name())
		}
	}
	if len(want) == 0 {
		t.Errorf("no records in testdata")
	}
}
