package kho

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/dt"
)

// le64 encodes v as KHO stores u64 payloads on x86_64 and arm64.
func le64(v uint64) []byte {
	return binary.LittleEndian.AppendUint64(nil, v)
}

// writeFDT serialises root with pkg/dt, as libfdt lays out a version 17
// FDT.
func writeFDT(tb testing.TB, root *dt.Node) []byte {
	tb.Helper()
	fdt := &dt.FDT{
		Header:   dt.Header{Magic: dt.Magic, Version: 17, LastCompVersion: 16},
		RootNode: root,
	}
	var buf bytes.Buffer
	if _, err := fdt.Write(&buf); err != nil {
		tb.Fatalf("writing FDT: %v", err)
	}
	return buf.Bytes()
}

func prop(name string, v []byte) dt.Property {
	return dt.Property{Name: name, Value: v}
}

func compatible(s ...string) dt.Property {
	return prop("compatible", []byte(strings.Join(s, "\x00")+"\x00"))
}

// khoTree builds a root handover FDT as kho_out_fdt_setup and
// kho_add_subtree do: compatible, preserved-memory-map, sub-nodes.
func khoTree(tb testing.TB, compat string, memMap uint64,
	subs ...*dt.Node) []byte {
	tb.Helper()
	return writeFDT(tb, dt.NewNode("",
		dt.WithProperty(compatible(compat), prop(propMemoryMap,
			le64(memMap))),
		dt.WithChildren(subs...)))
}

// v1Sub is a kho-v1 sub-node: fdt = <address>.
func v1Sub(name string, addr uint64) *dt.Node {
	return dt.NewNode(name, dt.WithProperty(prop(propSubFDT, le64(addr))))
}

// v4Sub is a kho-v3/v4 sub-node: preserved-data and blob-size.
func v4Sub(name string, addr, size uint64) *dt.Node {
	return dt.NewNode(name, dt.WithProperty(
		prop(propPreservedData, le64(addr)), prop(propBlobSize, le64(size))))
}

// Trees as each generation writes them, also fuzz seeds.
func v1Tree(tb testing.TB) []byte {
	return khoTree(tb, "kho-v1", 0x1_2345_6000,
		v1Sub("memblock", 0x1_0000_1000), v1Sub("LUO", 0x1_0000_2000))
}

func v3Tree(tb testing.TB) []byte {
	return khoTree(tb, "kho-v3", 0x7000,
		v4Sub(MetadataName, 0x3000, RecordSize))
}

func v4Tree(tb testing.TB) []byte {
	return khoTree(tb, "kho-v4", 0x1_0bad_f000,
		v4Sub(MetadataName, 0x1_0000_3000, RecordSize),
		v4Sub(LUOName, 0x1_0000_4000, 32),
		v4Sub(MemblockName, 0x1_0000_5000, 4096))
}

func TestParseTree(t *testing.T) {
	for _, tt := range []struct {
		name    string
		fdt     []byte
		compat  string
		gen     Generation
		memMap  uint64
		mmErr   error
		subs    []Subtree
		subErrs []error // per sub-node, nil for a good one
	}{
		{
			name:   "kho-v1",
			fdt:    v1Tree(t),
			compat: "kho-v1", gen: GenerationV1, memMap: 0x1_2345_6000,
			subs: []Subtree{
				{Name: "memblock", Address: 0x1_0000_1000},
				{Name: "LUO", Address: 0x1_0000_2000},
			},
		},
		{
			name:   "kho-v3",
			fdt:    v3Tree(t),
			compat: "kho-v3", gen: GenerationV3, memMap: 0x7000,
			subs: []Subtree{{Name: MetadataName, Address: 0x3000,
				Size: RecordSize, HasSize: true}},
		},
		{
			name:   "kho-v4",
			fdt:    v4Tree(t),
			compat: "kho-v4", gen: GenerationV4, memMap: 0x1_0bad_f000,
			subs: []Subtree{
				{Name: MetadataName, Address: 0x1_0000_3000,
					Size: RecordSize, HasSize: true},
				{Name: LUOName, Address: 0x1_0000_4000, Size: 32,
					HasSize: true},
				{Name: MemblockName, Address: 0x1_0000_5000, Size: 4096,
					HasSize: true},
			},
		},
		{
			name:   "kho-v4 no sub-nodes",
			fdt:    khoTree(t, "kho-v4", 0x1000),
			compat: "kho-v4", gen: GenerationV4, memMap: 0x1000,
			subs: []Subtree{},
		},
		{
			name: "payloads are little-endian",
			fdt: khoTree(t, "kho-v4", 0x0102030405060708,
				v4Sub("a", 0x1112131415161718, 0x21)),
			compat: "kho-v4", gen: GenerationV4, memMap: 0x0102030405060708,
			subs: []Subtree{{Name: "a", Address: 0x1112131415161718,
				Size: 0x21, HasSize: true}},
		},
		{
			name: "unknown compatible reads each node by its property",
			fdt: khoTree(t, "kho-v9", 0x1000,
				v4Sub("raw", 0x2000, 5), v1Sub("old", 0x3000)),
			compat: "kho-v9", gen: GenerationUnknown, memMap: 0x1000,
			subs: []Subtree{
				{Name: "raw", Address: 0x2000, Size: 5, HasSize: true},
				{Name: "old", Address: 0x3000},
			},
		},
		{
			name: "compatible list matches any entry",
			fdt: writeFDT(t, dt.NewNode("", dt.WithProperty(
				compatible("vendor,kho", "kho-v4"),
				prop(propMemoryMap, le64(1))))),
			compat: "vendor,kho", gen: GenerationV4, memMap: 1,
			subs: []Subtree{},
		},
		{
			name: "no compatible, no memory map",
			fdt:  writeFDT(t, dt.NewNode("")),
			gen:  GenerationUnknown, mmErr: ErrMissingProperty,
			subs: []Subtree{},
		},
		{
			name: "short memory map",
			fdt: writeFDT(t, dt.NewNode("", dt.WithProperty(
				compatible("kho-v4"),
				prop(propMemoryMap, []byte{1, 2, 3, 4})))),
			compat: "kho-v4", gen: GenerationV4, mmErr: ErrMalformed,
			subs: []Subtree{},
		},
		{
			name: "broken kho-v4 sub-nodes are kept with their error",
			fdt: khoTree(t, "kho-v4", 0x1000,
				v4Sub("good", 0x2000, 8),
				dt.NewNode("no-size", dt.WithProperty(
					prop(propPreservedData, le64(0x3000)))),
				dt.NewNode("short-size", dt.WithProperty(
					prop(propPreservedData, le64(0x4000)),
					prop(propBlobSize, []byte{8, 0, 0, 0}))),
				dt.NewNode("short-data", dt.WithProperty(
					prop(propPreservedData, []byte{0, 0x50, 0, 0}),
					prop(propBlobSize, le64(8)))),
				v1Sub("v1-style", 0x6000),
				dt.NewNode("empty")),
			compat: "kho-v4", gen: GenerationV4, memMap: 0x1000,
			subs: []Subtree{
				{Name: "good", Address: 0x2000, Size: 8, HasSize: true},
				{Name: "no-size", Address: 0x3000},
				{Name: "short-size", Address: 0x4000},
				{Name: "short-data"},
				{Name: "v1-style"},
				{Name: "empty"},
			},
			subErrs: []error{nil, ErrMissingProperty, ErrMalformed,
				ErrMalformed, ErrMissingProperty, ErrMissingProperty},
		},
		{
			name: "broken kho-v1 sub-nodes are kept with their error",
			fdt: khoTree(t, "kho-v1", 0x1000,
				dt.NewNode("short", dt.WithProperty(
					prop(propSubFDT, []byte{1, 2, 3, 4}))),
				v4Sub("v4-style", 0x2000, 8)),
			compat: "kho-v1", gen: GenerationV1, memMap: 0x1000,
			subs:    []Subtree{{Name: "short"}, {Name: "v4-style"}},
			subErrs: []error{ErrMalformed, ErrMissingProperty},
		},
		{
			name: "grandchildren are ignored",
			fdt: khoTree(t, "kho-v4", 0x1000, dt.NewNode("a",
				dt.WithProperty(prop(propPreservedData, le64(0x2000)),
					prop(propBlobSize, le64(1))),
				dt.WithChildren(v4Sub("deep", 0x3000, 1)))),
			compat: "kho-v4", gen: GenerationV4, memMap: 0x1000,
			subs: []Subtree{{Name: "a", Address: 0x2000, Size: 1,
				HasSize: true}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tree, err := ParseTree(tt.fdt)
			if err != nil {
				t.Fatalf("ParseTree() = %v, want nil error", err)
			}
			if tree.Compatible != tt.compat || tree.Generation != tt.gen {
				t.Errorf("ParseTree() compatible, generation = %q, %v, "+
					"want %q, %v", tree.Compatible, tree.Generation,
					tt.compat, tt.gen)
			}
			if !errors.Is(tree.MemoryMapErr, tt.mmErr) ||
				(tt.mmErr == nil && tree.MemoryMap != tt.memMap) {
				t.Errorf("ParseTree() memory map = %#x, %v, want %#x, %v",
					tree.MemoryMap, tree.MemoryMapErr, tt.memMap, tt.mmErr)
			}
			if len(tree.Subtrees) != len(tt.subs) {
				t.Fatalf("ParseTree() has %d subtrees, want %d: %+v",
					len(tree.Subtrees), len(tt.subs), tree.Subtrees)
			}
			for i, got := range tree.Subtrees {
				var wantErr error
				if tt.subErrs != nil {
					wantErr = tt.subErrs[i]
				}
				if !errors.Is(got.Err, wantErr) {
					t.Errorf("subtree %q error = %v, want %v", got.Name,
						got.Err, wantErr)
				}
				got.Err = nil
				if got != tt.subs[i] {
					t.Errorf("subtree %d = %+v, want %+v", i, got,
						tt.subs[i])
				}
			}
		})
	}
}

func TestTreeJSON(t *testing.T) {
	tree, err := ParseTree(khoTree(t, "kho-v1", 0x1000, v1Sub("a", 0x20),
		dt.NewNode("b")))
	if err != nil {
		t.Fatalf("ParseTree() = %v", err)
	}
	got, err := json.Marshal(tree)
	if err != nil {
		t.Fatalf("json.Marshal() = %v", err)
	}
	want := `{"compatible":"kho-v1","generation":"kho-v1",` +
		`"preserved_memory_map":4096,"subtrees":[` +
		`{"name":"a","address":32},` +
		`{"name":"b","address":0,` +
		`"error":"property \"fdt\": missing property"}],` +
		`"kernels":"6.16-7.0"}`
	if string(got) != want {
		t.Errorf("json.Marshal() =\n%s\nwant\n%s", got, want)
	}

	tree, err = ParseTree(v3Tree(t))
	if err != nil {
		t.Fatalf("ParseTree() = %v", err)
	}
	got, err = json.Marshal(tree)
	if err != nil {
		t.Fatalf("json.Marshal() = %v", err)
	}
	want = `{"compatible":"kho-v3","generation":"kho-v3",` +
		`"preserved_memory_map":28672,"subtrees":[` +
		`{"name":"kexec-metadata","address":12288,"size":73}],` +
		`"kernels":"7.1"}`
	if string(got) != want {
		t.Errorf("json.Marshal() =\n%s\nwant\n%s", got, want)
	}
}

func TestGeneration(t *testing.T) {
	for _, tt := range []struct {
		name    string
		g       Generation
		text    string
		kernels string
	}{
		{name: "unknown", g: GenerationUnknown, text: "unknown"},
		{name: "out of range", g: Generation(99), text: "unknown"},
		{name: "v1", g: GenerationV1, text: "kho-v1", kernels: "6.16-7.0"},
		{name: "v3", g: GenerationV3, text: "kho-v3", kernels: "7.1"},
		{name: "v4", g: GenerationV4, text: "kho-v4", kernels: "7.2-7.3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.g.String(); got != tt.text {
				t.Errorf("String() = %q, want %q", got, tt.text)
			}
			if got := tt.g.Kernels(); got != tt.kernels {
				t.Errorf("Kernels() = %q, want %q", got, tt.kernels)
			}
			b, err := tt.g.MarshalText()
			if err != nil || string(b) != tt.text {
				t.Errorf("MarshalText() = %q, %v, want %q", b, err,
					tt.text)
			}
			var back Generation
			if err := back.UnmarshalText(b); err != nil {
				t.Fatalf("UnmarshalText(%q) = %v", b, err)
			}
			if want := generationOf(tt.text); back != want {
				t.Errorf("UnmarshalText(%q) = %v, want %v", b, back, want)
			}
		})
	}
}

// rawFDT lays out an FDT by hand around a structure block and strings
// block, so tests can write token streams pkg/dt would never write.
func rawFDT(structBlk, strs []byte) []byte {
	const rsvOff = fdtHeaderSize
	structOff := rsvOff + 16
	strsOff := structOff + len(structBlk)
	total := strsOff + len(strs)
	h := []uint32{dt.Magic, uint32(total), uint32(structOff),
		uint32(strsOff), rsvOff, 17, 16, 0, uint32(len(strs)),
		uint32(len(structBlk))}
	var b []byte
	for _, v := range h {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = append(b, make([]byte, 16)...)
	b = append(b, structBlk...)
	return append(b, strs...)
}

// tokens assembles a structure block from big-endian words and strings,
// each string NUL-terminated and padded to 4 bytes.
func tokens(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case int:
			b = binary.BigEndian.AppendUint32(b, uint32(v))
		case string:
			b = append(b, v...)
			b = append(b, 0)
			for len(b)%4 != 0 {
				b = append(b, 0)
			}
		case []byte:
			b = append(b, v...)
		}
	}
	return b
}

// be32 sets a big-endian u32 in a copy of b.
func be32(b []byte, off int, v uint32) []byte {
	c := bytes.Clone(b)
	binary.BigEndian.PutUint32(c[off:], v)
	return c
}

func TestCheckFDT(t *testing.T) {
	good := v4Tree(t)
	strs := []byte("compatible\x00")
	prop8 := func(plen, nameOff int) []byte {
		return tokens(fdtProp, plen, nameOff)
	}
	deep := []any{}
	for range maxFDTDepth + 1 {
		deep = append(deep, fdtBeginNode, "n")
	}
	for _, tt := range []struct {
		name string
		b    []byte
		want error // nil: valid
		off  int64 // FormatError offset, when want is set
	}{
		{name: "valid", b: good},
		{name: "trailing bytes after totalsize",
			b: append(bytes.Clone(good), 1, 2, 3)},
		{name: "NOP tokens", b: rawFDT(tokens(fdtNop, fdtBeginNode, "",
			fdtNop, fdtEndNode, fdtNop, fdtEnd), nil)},
		{name: "empty", b: nil, want: ErrTruncated},
		{name: "short header", b: good[:fdtHeaderSize-1],
			want: ErrTruncated},
		{name: "bad magic", b: be32(good, 0, 0xfeedd00d), want: ErrNotFDT},
		{name: "totalsize under header", b: be32(good, 4, 39),
			want: ErrMalformed, off: 4},
		{name: "totalsize over cap", b: be32(good, 4, MaxFDTSize+1),
			want: ErrTooLarge, off: 4},
		{name: "totalsize past data", b: good[:len(good)-1],
			want: ErrTruncated, off: 4},
		{name: "version 16", b: be32(good, 20, 16), want: ErrFDTVersion,
			off: 20},
		{name: "last compatible 18", b: be32(good, 24, 18),
			want: ErrFDTVersion, off: 20},
		{name: "later version compatible with 17", b: be32(good, 20, 18)},
		{name: "reservation map in header", b: be32(good, 16, 8),
			want: ErrMalformed, off: 16},
		{name: "reservation map unaligned", b: be32(good, 16, 44),
			want: ErrMalformed, off: 16},
		{name: "reservation map past end",
			b: be32(good, 16, uint32(len(good))&^7), want: ErrTruncated,
			off: 16},
		{name: "structure block unaligned", b: be32(good, 8, 58),
			want: ErrMalformed, off: 8},
		{name: "structure block past end",
			b: be32(good, 36, uint32(len(good))), want: ErrTruncated,
			off: 8},
		{name: "size overflow", b: be32(good, 36, 0xffffffff),
			want: ErrTruncated, off: 8},
		{name: "strings block past end",
			b: be32(good, 32, uint32(len(good))), want: ErrTruncated,
			off: 12},
		{name: "structure block overlaps reservation map",
			b: be32(rawFDT(tokens(fdtBeginNode, "", fdtEndNode, fdtEnd),
				nil), 8, 48), want: ErrMalformed, off: 8},
		{name: "reservation map unterminated",
			b: func() []byte {
				b := rawFDT(tokens(1, 1, 1, 1), nil)
				return be32(be32(b, 16, 56), 36, 0)
			}(), want: ErrTruncated, off: 72},
		{name: "no FDT_END", b: rawFDT(tokens(fdtBeginNode, "",
			fdtEndNode), nil), want: ErrTruncated, off: 68},
		{name: "empty structure block", b: rawFDT(nil, nil),
			want: ErrTruncated, off: 56},
		{name: "second root", b: rawFDT(tokens(fdtBeginNode, "",
			fdtEndNode, fdtBeginNode, "", fdtEndNode, fdtEnd), nil),
			want: ErrMalformed, off: 68},
		{name: "too deep", b: rawFDT(tokens(deep...), nil),
			want: ErrTooLarge},
		{name: "name without NUL",
			b:    rawFDT(tokens(fdtBeginNode, []byte("abcd")), nil),
			want: ErrTruncated, off: 60},
		{name: "name too long", b: rawFDT(tokens(fdtBeginNode,
			strings.Repeat("n", maxFDTNameLen+1), fdtEndNode, fdtEnd),
			nil), want: ErrTooLarge, off: 60},
		{name: "longest name", b: rawFDT(tokens(fdtBeginNode,
			strings.Repeat("n", maxFDTNameLen), fdtEndNode, fdtEnd),
			nil)},
		{name: "END_NODE outside node", b: rawFDT(tokens(fdtEndNode,
			fdtEnd), nil), want: ErrMalformed, off: 56},
		{name: "short property header", b: rawFDT(tokens(fdtBeginNode, "",
			fdtProp, 0), strs), want: ErrTruncated, off: 68},
		{name: "property outside node", b: rawFDT(tokens(prop8(0, 0),
			fdtEnd), strs), want: ErrMalformed, off: 56},
		{name: "property longer than block", b: rawFDT(tokens(
			fdtBeginNode, "", prop8(0x7fffffff, 0), fdtEndNode, fdtEnd),
			strs), want: ErrTruncated, off: 68},
		{name: "property name past strings", b: rawFDT(tokens(
			fdtBeginNode, "", prop8(0, len(strs)), fdtEndNode, fdtEnd),
			strs), want: ErrMalformed, off: 72},
		{name: "property name without NUL", b: rawFDT(tokens(
			fdtBeginNode, "", prop8(0, 0), fdtEndNode, fdtEnd),
			[]byte("abc")), want: ErrMalformed, off: 72},
		{name: "property padded", b: rawFDT(tokens(fdtBeginNode, "",
			prop8(1, 0), []byte{7, 0, 0, 0}, fdtEndNode, fdtEnd), strs)},
		{name: "FDT_END inside node", b: rawFDT(tokens(fdtBeginNode, "",
			fdtEnd), nil), want: ErrMalformed, off: 64},
		{name: "FDT_END without root", b: rawFDT(tokens(fdtEnd), nil),
			want: ErrMalformed, off: 56},
		{name: "data after FDT_END", b: rawFDT(tokens(fdtBeginNode, "",
			fdtEndNode, fdtEnd, 0), nil), want: ErrMalformed, off: 72},
		{name: "unknown token", b: rawFDT(tokens(fdtBeginNode, "", 5,
			fdtEndNode, fdtEnd), nil), want: ErrMalformed, off: 64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readFDT(tt.b)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("readFDT() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("readFDT() = %v, want %v", err, tt.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("readFDT() = %T, want *FormatError", err)
			}
			if tt.off != 0 && fe.Offset != tt.off {
				t.Errorf("readFDT() offset = %#x, want %#x (%v)",
					fe.Offset, tt.off, err)
			}

			// ParseTree reports the same fault.
			if _, perr := ParseTree(tt.b); !errors.Is(perr, tt.want) {
				t.Errorf("ParseTree() = %v, want %v", perr, tt.want)
			}
		})
	}
}

func TestFormatError(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  *FormatError
		want string
	}{
		{name: "with sentinel", err: &FormatError{Offset: 4,
			Msg: "totalsize 9", Err: ErrTruncated},
			want: "offset 0x4: totalsize 9: truncated"},
		{name: "without sentinel", err: &FormatError{Offset: 0x10,
			Msg: "bad"}, want: "offset 0x10: bad"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if got := tt.err.Unwrap(); got != tt.err.Err {
				t.Errorf("Unwrap() = %v, want %v", got, tt.err.Err)
			}
		})
	}
}
