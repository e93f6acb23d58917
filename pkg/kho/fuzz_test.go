package kho

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/u-root/u-root/pkg/dt"
)

// fdtSeeds are well-formed FDTs of every kind this package reads, and
// the real ones (and the truncated out/fdt) of the captures in testdata.
func fdtSeeds(tb testing.TB) [][]byte {
	return append([][]byte{
		v1Tree(tb), v3Tree(tb), v4Tree(tb),
		khoTree(tb, "kho-v9", 1, v1Sub("a", 2), v4Sub("b", 3, 4)),
		memblockFDT(tb, reserveMem("oops", 0x1000, 0x2000)),
		rawFDT(tokens(fdtBeginNode, "", fdtNop, fdtEndNode, fdtEnd), nil),
	}, testdataFDTs(tb)...)
}

// checkFDTError checks what every FDT parser's error must be.
func checkFDTError(t *testing.T, b []byte, err error) {
	t.Helper()
	if _, cerr := checkFDT(b); cerr == nil {
		var fe *FormatError
		if errors.As(err, &fe) && fe.Msg == "reading FDT" {
			t.Fatalf("pkg/dt rejects what checkFDT accepts: %v", err)
		}
	}
}

func FuzzParseTree(f *testing.F) {
	for _, s := range fdtSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tree, err := ParseTree(b)
		if (tree == nil) == (err == nil) {
			t.Fatalf("ParseTree() = %v, %v: want exactly one", tree, err)
		}
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseTree() error %T is not a *FormatError", err)
			}
			checkFDTError(t, b, err)
			return
		}
		if _, err := json.Marshal(tree); err != nil {
			t.Fatalf("json.Marshal() = %v", err)
		}
		for _, s := range tree.Subtrees {
			if s.Err == nil && !s.HasSize &&
				tree.Generation != GenerationV1 &&
				tree.Generation != GenerationUnknown {
				t.Fatalf("subtree %q of %v has no size", s.Name,
					tree.Generation)
			}
		}
	})
}

func FuzzParseScratch(f *testing.F) {
	f.Add([]byte("0x1000000\n0x23e000000\n0x23c000000\n"),
		[]byte("0x2000000\n0x2000000\n0x1000000\n"))
	f.Add([]byte("0x0\n0xffffffffffffffff"), []byte("0x1\n0x2\n"))
	f.Add([]byte(""), []byte("0x1\n"))
	for _, c := range testdataCaptures(f) {
		f.Add(testdataFile(f, c, "out/scratch_phys"),
			testdataFile(f, c, "out/scratch_len"))
	}
	f.Fuzz(func(t *testing.T, phys, length []byte) {
		areas, err := ParseScratch(phys, length)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseScratch() = %v, want ErrMalformed", err)
			}
			return
		}

		// Printing the areas as the kernel does must give them back.
		var p, l bytes.Buffer
		for _, a := range areas {
			fmt.Fprintf(&p, "0x%x\n", a.Phys)
			fmt.Fprintf(&l, "0x%x\n", a.Len)
		}
		again, err := ParseScratch(p.Bytes(), l.Bytes())
		if err != nil || len(again) != len(areas) {
			t.Fatalf("round trip = %v, %v, want %v", again, err, areas)
		}
		for i := range areas {
			if again[i] != areas[i] {
				t.Fatalf("round trip area %d = %+v, want %+v", i,
					again[i], areas[i])
			}
		}
	})
}

func FuzzParseMemblock(f *testing.F) {
	for _, s := range fdtSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		regions, err := ParseMemblock(b)
		if err != nil {
			if regions != nil {
				t.Fatalf("ParseMemblock() = %v with error %v", regions,
					err)
			}
			checkFDTError(t, b, err)
			return
		}
		if _, err := json.Marshal(regions); err != nil {
			t.Fatalf("json.Marshal() = %v", err)
		}
	})
}

func FuzzParseLUO(f *testing.F) {
	f.Add(luoRaw("luo-v5"))
	for _, s := range testdataFiles(f, "out/sub_fdts/"+LUOName) {
		f.Add(s)
	}
	for _, s := range fdtSeeds(f) {
		f.Add(s)
	}
	f.Add(writeFDT(f, dt.NewNode("",
		dt.WithProperty(compatible("luo-v1")))))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseLUO(b)
		if err != nil {
			if c != "" {
				t.Fatalf("ParseLUO() = %q with error %v", c, err)
			}
			checkFDTError(t, b, err)
			return
		}
		if !printable(c) {
			t.Fatalf("ParseLUO() = %q, want printable", c)
		}
	})
}

func FuzzReadState(f *testing.F) {
	meta := record(f, "7.2.13", 1)
	mb := memblockFDT(f, reserveMem("oops", 0x1000, 0x2000))
	f.Add(v4Tree(f), v3Tree(f), meta, mb, []byte("0x1\n0x2\n"),
		[]byte("0x3\n0x4\n"), []byte("1\n"))
	f.Add(v1Tree(f), []byte{}, []byte{1, 0, 0}, v4Tree(f), []byte("0x"),
		[]byte(""), []byte("x"))
	for _, c := range testdataCaptures(f) {
		read := func(name string) []byte { return testdataFile(f, c, name) }
		f.Add(read("in/fdt"), read("out/fdt"),
			read("in/sub_fdts/"+MetadataName),
			read("in/sub_fdts/"+MemblockName), read("out/scratch_phys"),
			read("out/scratch_len"), read("out/finalize"))
	}
	f.Fuzz(func(t *testing.T, inFDT, outFDT, meta, memblock, phys,
		length, finalize []byte) {
		m := fstest.MapFS{
			"in/fdt":                       file(inFDT),
			"in/sub_fdts/" + MetadataName:  file(meta),
			"in/sub_fdts/" + MemblockName:  file(memblock),
			"in/sub_fdts/" + LUOName:       file(meta),
			"out/fdt":                      file(outFDT),
			"out/sub_fdts/" + LUOName:      file(memblock),
			"out/sub_fdts/" + MetadataName: file(meta),
			"out/scratch_phys":             file(phys),
			"out/scratch_len":              file(length),
			"out/finalize":                 file(finalize),
		}
		fsys := &spyFS{FS: m}
		st, err := ReadState(fsys)
		if err != nil {
			t.Fatalf("ReadState() = %v", err)
		}
		for _, name := range fsys.opened {
			if name == "in/sub_fdts/"+LUOName {
				t.Fatalf("ReadState() opened %s", name)
			}
		}
		if st.In == nil || st.Out == nil {
			t.Fatalf("ReadState() = %+v, want both sides", st)
		}
		if (st.In.Tree == nil) == (st.In.TreeErr == nil) {
			t.Fatalf("In.Tree, In.TreeErr = %v, %v: want exactly one",
				st.In.Tree, st.In.TreeErr)
		}
		if _, err := json.Marshal(st); err != nil {
			t.Fatalf("json.Marshal() = %v", err)
		}
	})
}
