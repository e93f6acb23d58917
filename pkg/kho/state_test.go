package kho

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func record(tb testing.TB, release string, count uint32) []byte {
	tb.Helper()
	b, err := Record{Version: 1, PreviousRelease: release,
		KexecCount: count}.MarshalBinary()
	if err != nil {
		tb.Fatalf("MarshalBinary() = %v", err)
	}
	return b
}

func file(b []byte) *fstest.MapFile { return &fstest.MapFile{Data: b} }
func text(s string) *fstest.MapFile { return file([]byte(s)) }
func ptr[T any](v T) *T             { return &v }

// coldBoot72 is kho/ on a 7.2 kernel after a cold boot with kho=on.
func coldBoot72(tb testing.TB) fstest.MapFS {
	return fstest.MapFS{
		"out/fdt": file(khoTree(tb, "kho-v4", 0x1_0000_0000,
			v4Sub(MetadataName, 0x1_0000_3000, RecordSize))),
		"out/sub_fdts/" + MetadataName: file(record(tb, "", 0)),
		"out/scratch_phys": text(
			"0x1000000\n0x23e000000\n0x23c000000\n"),
		"out/scratch_len": text(
			"0x2000000\n0x2000000\n0x1000000\n"),
	}
}

// kexecd72 is kho/ on a 7.2 kernel that booted through KHO with LUO and
// reserve_mem: out/fdt is absent, in/ holds what 7.2.13 handed over.
func kexecd72(tb testing.TB) fstest.MapFS {
	return fstest.MapFS{
		"in/fdt": file(khoTree(tb, "kho-v4", 0x1_0000_0000,
			v4Sub(MetadataName, 0x1_0000_3000, RecordSize),
			v4Sub(LUOName, 0x1_0000_4000, 32),
			v4Sub(MemblockName, 0x1_0000_5000, 4096))),
		"in/sub_fdts/" + MetadataName: file(record(tb, "7.2.13", 2)),
		"in/sub_fdts/" + LUOName:      file([]byte("freed memory")),
		"in/sub_fdts/" + MemblockName: file(memblockFDT(tb,
			reserveMem("oops", 0x2000_0000, 0x100000))),
		"out/sub_fdts/" + MetadataName: file(record(tb, "7.2.13", 3)),
		"out/sub_fdts/" + LUOName:      file(luoRaw("luo-v5")),
		"out/scratch_phys":             text("0x1000000\n0x2000000\n"),
		"out/scratch_len":              text("0x100000\n0x200000\n"),
	}
}

// v1Finalized is kho/ on 6.18 after writing 1 to out/finalize.
func v1Finalized(tb testing.TB) fstest.MapFS {
	return fstest.MapFS{
		"out/fdt": file(khoTree(tb, "kho-v1", 0x5000,
			v1Sub(MemblockName, 0x6000))),
		"out/sub_fdts/" + MemblockName: file(memblockFDT(tb)),
		"out/scratch_phys":             text("0x1000\n0x2000\n"),
		"out/scratch_len":              text("0x10\n0x20\n"),
		"out/finalize":                 text("1\n"),
	}
}

// spyFS records the files opened and can fail some of them.
type spyFS struct {
	fs.FS
	opened []string
	fail   map[string]error
}

func (s *spyFS) Open(name string) (fs.File, error) {
	s.opened = append(s.opened, name)
	if err := s.fail[name]; err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f, err := s.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return zeroStat{f}, nil
}

// zeroStat makes every file stat as size 0, as debugfs files do.
type zeroStat struct{ fs.File }

func (z zeroStat) Stat() (fs.FileInfo, error) {
	fi, err := z.File.Stat()
	if err != nil {
		return nil, err
	}
	return zeroInfo{fi}, nil
}

func (z zeroStat) ReadDir(n int) ([]fs.DirEntry, error) {
	d, ok := z.File.(fs.ReadDirFile)
	if !ok {
		return nil, errors.New("not a directory")
	}
	return d.ReadDir(n)
}

type zeroInfo struct{ fs.FileInfo }

func (zeroInfo) Size() int64 { return 0 }

func TestReadStateColdBoot(t *testing.T) {
	fsys := &spyFS{FS: coldBoot72(t)}
	st, err := ReadState(fsys)
	if err != nil {
		t.Fatalf("ReadState() = %v", err)
	}
	if st.In != nil {
		t.Errorf("ReadState().In = %+v, want nil on a cold boot", st.In)
	}
	out := st.Out
	if out == nil || out.Tree == nil || out.TreeErr != nil {
		t.Fatalf("ReadState().Out = %+v, want a tree", out)
	}
	if out.Tree.Generation != GenerationV4 {
		t.Errorf("Out.Tree.Generation = %v, want kho-v4",
			out.Tree.Generation)
	}
	md := out.Blob(MetadataName)
	if md == nil || md.Err != nil || md.KexecMetadata == nil {
		t.Fatalf("Out.Blob(%q) = %+v, want a record", MetadataName, md)
	}
	if *md.KexecMetadata != (Record{Version: 1}) || md.Size != RecordSize ||
		len(md.Data) != RecordSize {
		t.Errorf("Out.Blob(%q) = %+v, want an empty v1 record of %d "+
			"bytes", MetadataName, md, RecordSize)
	}
	if len(out.Scratch) != 3 || out.ScratchErr != nil ||
		out.Scratch[2].Kind != ScratchNode {
		t.Errorf("Out.Scratch = %+v, %v, want 3 areas", out.Scratch,
			out.ScratchErr)
	}
	if out.Finalized != nil || out.FinalizeErr != nil {
		t.Errorf("Out.Finalized = %v, %v, want nil on 7.2",
			out.Finalized, out.FinalizeErr)
	}
}

func TestReadStateKexecd(t *testing.T) {
	fsys := &spyFS{FS: kexecd72(t)}
	st, err := ReadState(fsys)
	if err != nil {
		t.Fatalf("ReadState() = %v", err)
	}
	for _, name := range fsys.opened {
		if name == "in/sub_fdts/"+LUOName {
			t.Errorf("ReadState() opened %s, which must never be read",
				name)
		}
	}

	in := st.In
	if in == nil || in.Tree == nil || len(in.Tree.Subtrees) != 3 {
		t.Fatalf("ReadState().In = %+v, want a tree of 3", in)
	}
	if got := in.Blob(MetadataName); got == nil ||
		got.KexecMetadata == nil || *got.KexecMetadata !=
		(Record{Version: 1, PreviousRelease: "7.2.13", KexecCount: 2}) {
		t.Errorf("In.Blob(%q) = %+v, want 7.2.13 count 2", MetadataName,
			got)
	}
	luo := in.Blob(LUOName)
	if luo == nil || !luo.Skipped || luo.Size != 32 || luo.Data != nil ||
		luo.LUOCompatible != "" || luo.Err != nil {
		t.Errorf("In.Blob(LUO) = %+v, want skipped, size 32 from the "+
			"tree", luo)
	}
	mb := in.Blob(MemblockName)
	if mb == nil || mb.Err != nil || len(mb.ReserveMem) != 1 ||
		mb.ReserveMem[0].Name != "oops" {
		t.Errorf("In.Blob(memblock) = %+v, want region oops", mb)
	}
	if in.Scratch != nil || in.Finalized != nil {
		t.Errorf("In has scratch %v or finalize %v, want neither",
			in.Scratch, in.Finalized)
	}

	out := st.Out
	if out == nil || out.Tree != nil || out.TreeErr != nil {
		t.Fatalf("ReadState().Out = %+v, want no tree, no error", out)
	}
	if got := out.Blob(LUOName); got == nil ||
		got.LUOCompatible != "luo-v5" || got.Err != nil {
		t.Errorf("Out.Blob(LUO) = %+v, want luo-v5", got)
	}
	if got := out.Blob(MetadataName); got == nil ||
		got.KexecMetadata == nil || got.KexecMetadata.KexecCount != 3 {
		t.Errorf("Out.Blob(%q) = %+v, want count 3", MetadataName, got)
	}
	if out.Blob("nonexistent") != nil {
		t.Error("Out.Blob(nonexistent) != nil")
	}
}

func TestReadStateFinalize(t *testing.T) {
	for _, tt := range []struct {
		name string
		text string
		want *bool
		err  error
	}{
		{name: "finalized", text: "1\n", want: ptr(true)},
		{name: "not finalized", text: "0\n", want: ptr(false)},
		{name: "no newline", text: "1", want: ptr(true)},
		{name: "other value", text: "2\n", err: ErrMalformed},
		{name: "empty", text: "", err: ErrMalformed},
		{name: "huge", text: strings.Repeat("1", maxTextSize+1),
			err: ErrTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fsys := v1Finalized(t)
			fsys["out/finalize"] = text(tt.text)
			st, err := ReadState(fsys)
			if err != nil {
				t.Fatalf("ReadState() = %v", err)
			}
			out := st.Out
			if !errors.Is(out.FinalizeErr, tt.err) {
				t.Fatalf("Out.FinalizeErr = %v, want %v", out.FinalizeErr,
					tt.err)
			}
			if (out.Finalized == nil) != (tt.want == nil) ||
				(tt.want != nil && *out.Finalized != *tt.want) {
				t.Errorf("Out.Finalized = %v, want %v", out.Finalized,
					tt.want)
			}
			if out.Tree == nil || out.Tree.Generation != GenerationV1 {
				t.Errorf("Out.Tree = %+v, want kho-v1", out.Tree)
			}
		})
	}
}

// TestReadStateFaults checks that every fault is kept next to the part
// it spoils and the rest is still read.
func TestReadStateFaults(t *testing.T) {
	big := bytes.Repeat([]byte{0}, MaxBlobSize+1)
	for _, tt := range []struct {
		name   string
		edit   func(fstest.MapFS)
		fail   map[string]error
		check  func(*State) error
		wantIs error
	}{
		{
			name: "garbage in/fdt",
			edit: func(m fstest.MapFS) { m["in/fdt"] = text("garbage") },
			check: func(s *State) error {
				if s.In.Tree != nil {
					return errors.New("tree is set")
				}
				return s.In.TreeErr
			},
			wantIs: ErrTruncated,
		},
		{
			name: "not an FDT",
			edit: func(m fstest.MapFS) {
				m["in/fdt"] = text(strings.Repeat("x", 64))
			},
			check:  func(s *State) error { return s.In.TreeErr },
			wantIs: ErrNotFDT,
		},
		{
			name: "in/fdt over the cap",
			edit: func(m fstest.MapFS) {
				m["in/fdt"] = file(make([]byte, MaxFDTSize+1))
			},
			check:  func(s *State) error { return s.In.TreeErr },
			wantIs: ErrTooLarge,
		},
		{
			name: "in/fdt unreadable",
			fail: map[string]error{"in/fdt": fs.ErrPermission},
			check: func(s *State) error {
				if len(s.In.Blobs) != 3 {
					return errors.New("blobs not read")
				}
				return s.In.TreeErr
			},
			wantIs: fs.ErrPermission,
		},
		{
			name: "record the kernel would ignore",
			edit: func(m fstest.MapFS) {
				m["in/sub_fdts/"+MetadataName] = file([]byte{1, 0, 0})
			},
			check: func(s *State) error {
				b := s.In.Blob(MetadataName)
				if b.KexecMetadata != nil || b.Size != 3 {
					return errors.New("record decoded")
				}
				return b.Err
			},
			wantIs: ErrRecordRejected,
		},
		{
			name: "blob over the cap",
			edit: func(m fstest.MapFS) { m["in/sub_fdts/big"] = file(big) },
			check: func(s *State) error {
				if s.In.Blob(MetadataName).Err != nil {
					return errors.New("other blob spoiled")
				}
				return s.In.Blob("big").Err
			},
			wantIs: ErrTooLarge,
		},
		{
			name: "broken memblock",
			edit: func(m fstest.MapFS) {
				m["in/sub_fdts/"+MemblockName] = file(v4Tree(t))
			},
			check:  func(s *State) error { return s.In.Blob(MemblockName).Err },
			wantIs: ErrIncompatible,
		},
		{
			name: "broken outgoing LUO",
			edit: func(m fstest.MapFS) {
				m["out/sub_fdts/"+LUOName] = text("no NUL")
			},
			check:  func(s *State) error { return s.Out.Blob(LUOName).Err },
			wantIs: ErrMalformed,
		},
		{
			name: "sub_fdts unreadable",
			fail: map[string]error{"out/sub_fdts": fs.ErrPermission},
			check: func(s *State) error {
				if len(s.Out.Scratch) != 2 {
					return errors.New("scratch not read")
				}
				return s.Out.BlobsErr
			},
			wantIs: fs.ErrPermission,
		},
		{
			name: "too many blobs",
			edit: func(m fstest.MapFS) {
				for i := range maxBlobs {
					m[fmt.Sprintf("out/sub_fdts/b%04d", i)] = text("")
				}
			},
			check: func(s *State) error {
				if len(s.Out.Blobs) != maxBlobs {
					return fmt.Errorf("%d blobs, want %d",
						len(s.Out.Blobs), maxBlobs)
				}
				return s.Out.BlobsErr
			},
			wantIs: ErrTooLarge,
		},
		{
			name: "scratch_phys unreadable",
			fail: map[string]error{"out/scratch_phys": fs.ErrPermission},
			check: func(s *State) error {
				if s.Out.Scratch != nil {
					return errors.New("scratch set")
				}
				return s.Out.ScratchErr
			},
			wantIs: fs.ErrPermission,
		},
		{
			name: "scratch count mismatch",
			edit: func(m fstest.MapFS) {
				m["out/scratch_len"] = text("0x1\n")
			},
			check:  func(s *State) error { return s.Out.ScratchErr },
			wantIs: ErrMalformed,
		},
		{
			name: "scratch_len missing",
			edit: func(m fstest.MapFS) { delete(m, "out/scratch_len") },
			check: func(s *State) error {
				if s.Out.Scratch != nil {
					return errors.New("scratch set")
				}
				return s.Out.ScratchErr
			},
			wantIs: fs.ErrNotExist,
		},
		{
			name: "both scratch files missing",
			edit: func(m fstest.MapFS) {
				delete(m, "out/scratch_len")
				delete(m, "out/scratch_phys")
			},
			check: func(s *State) error {
				if s.Out.Scratch != nil || s.Out.ScratchErr != nil {
					return errors.New("scratch or error set")
				}
				return nil
			},
		},
		{
			name: "directory in sub_fdts is ignored",
			edit: func(m fstest.MapFS) { m["in/sub_fdts/dir/x"] = text("") },
			check: func(s *State) error {
				if s.In.Blob("dir") != nil {
					return errors.New("directory listed as a blob")
				}
				return nil
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := kexecd72(t)
			if tt.edit != nil {
				tt.edit(m)
			}
			st, err := ReadState(&spyFS{FS: m, fail: tt.fail})
			if err != nil {
				t.Fatalf("ReadState() = %v", err)
			}
			if err := tt.check(st); !errors.Is(err, tt.wantIs) {
				t.Errorf("ReadState(): %v, want %v", err, tt.wantIs)
			}
		})
	}
}

func TestReadStateRoot(t *testing.T) {
	for _, tt := range []struct {
		name string
		fsys fs.FS
		want error
	}{
		{name: "no such directory",
			fsys: os.DirFS(filepath.Join(t.TempDir(), "kho")),
			want: fs.ErrNotExist},
		{name: "unreadable",
			fsys: &spyFS{FS: fstest.MapFS{},
				fail: map[string]error{".": fs.ErrPermission}},
			want: fs.ErrPermission},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, err := ReadState(tt.fsys)
			if !errors.Is(err, tt.want) || st != nil {
				t.Errorf("ReadState() = %v, %v, want nil, %v", st, err,
					tt.want)
			}
		})
	}

	st, err := ReadState(fstest.MapFS{"other": text("")})
	if err != nil || st.In != nil || st.Out != nil {
		t.Errorf("ReadState(empty) = %+v, %v, want an empty state", st,
			err)
	}
}

// TestReadStateDirFS reads a captured copy from disk, as
// `kexecmeta inspect` does.
func TestReadStateDirFS(t *testing.T) {
	root := t.TempDir()
	for name, f := range kexecd72(t) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st, err := ReadState(os.DirFS(root))
	if err != nil {
		t.Fatalf("ReadState() = %v", err)
	}
	if st.In == nil || st.In.Tree == nil || len(st.In.Blobs) != 3 ||
		st.Out == nil || len(st.Out.Blobs) != 2 {
		t.Errorf("ReadState() = %+v, want both sides", st)
	}
}

func TestStateJSON(t *testing.T) {
	m := kexecd72(t)
	m["in/sub_fdts/"+MemblockName] = file(memblockFDT(t,
		reserveMem("oops", 0x2000_0000, 0x100000)))
	m["out/sub_fdts/odd"] = text("12345")
	m["out/finalize"] = text("x\n")
	m["out/scratch_len"] = text("0x1\n")
	st, err := ReadState(m)
	if err != nil {
		t.Fatalf("ReadState() = %v", err)
	}
	got, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		t.Fatalf("json.Marshal() = %v", err)
	}
	want := `{
 "in": {
  "tree": {
   "compatible": "kho-v4",
   "generation": "kho-v4",
   "preserved_memory_map": 4294967296,
   "subtrees": [
    {
     "name": "kexec-metadata",
     "address": 4294979584,
     "size": 73
    },
    {
     "name": "LUO",
     "address": 4294983680,
     "size": 32
    },
    {
     "name": "memblock",
     "address": 4294987776,
     "size": 4096
    }
   ],
   "kernels": "7.2-7.3"
  },
  "blobs": [
   {
    "name": "LUO",
    "size": 32,
    "skipped": true
   },
   {
    "name": "kexec-metadata",
    "size": 73,
    "kexec_metadata": {
     "version": 1,
     "previous_release": "7.2.13",
     "kexec_count": 2
    }
   },
   {
    "name": "memblock",
    "size": 210,
    "reserve_mem": [
     {
      "name": "oops",
      "start": 536870912,
      "size": 1048576
     }
    ]
   }
  ]
 },
 "out": {
  "tree": null,
  "blobs": [
   {
    "name": "LUO",
    "size": 32,
    "luo_compatible": "luo-v5"
   },
   {
    "name": "kexec-metadata",
    "size": 73,
    "kexec_metadata": {
     "version": 1,
     "previous_release": "7.2.13",
     "kexec_count": 3
    }
   },
   {
    "name": "odd",
    "size": 5
   }
  ],
  "scratch_error": "parsing scratch areas: 2 in scratch_phys, 1 in scratch_len: malformed",
  "finalize_error": "parsing out/finalize: got \"x\\n\", want 0 or 1: malformed"
 }
}`
	if string(got) != want {
		t.Errorf("json.MarshalIndent() =\n%s\nwant\n%s", got, want)
	}
}
