package kho

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/dt"
)

func TestParseScratch(t *testing.T) {
	for _, tt := range []struct {
		name      string
		phys, len string
		want      []ScratchArea
		err       error
		off       int64 // FormatError offset, when set
	}{
		{
			name: "one NUMA node",
			phys: "0x1000000\n0x23e000000\n0x23c000000\n",
			len:  "0x2000000\n0x2000000\n0x1000000\n",
			want: []ScratchArea{
				{Kind: ScratchLowmem, Phys: 0x1000000, Len: 0x2000000},
				{Kind: ScratchGlobal, Phys: 0x23e000000, Len: 0x2000000},
				{Kind: ScratchNode, Phys: 0x23c000000, Len: 0x1000000},
			},
		},
		{
			name: "two NUMA nodes, no final newline",
			phys: "0x0\n0x1\n0x2\n0xffffffffffffffff",
			len:  "0x10\n0x11\n0x12\n0x13",
			want: []ScratchArea{
				{Kind: ScratchLowmem, Phys: 0, Len: 0x10},
				{Kind: ScratchGlobal, Phys: 1, Len: 0x11},
				{Kind: ScratchNode, Phys: 2, Len: 0x12},
				{Kind: ScratchNode, Phys: 1<<64 - 1, Len: 0x13},
			},
		},
		{name: "upper-case digits", phys: "0xABC\n", len: "0x1\n",
			want: []ScratchArea{{Kind: ScratchLowmem, Phys: 0xabc,
				Len: 1}}},
		{name: "empty", want: []ScratchArea{}},
		{name: "count mismatch", phys: "0x1\n0x2\n", len: "0x1\n",
			err: ErrMalformed},
		{name: "no prefix", phys: "1000\n", len: "0x1\n",
			err: ErrMalformed},
		{name: "prefix only", phys: "0x1\n0x\n", len: "0x1\n0x1\n",
			err: ErrMalformed, off: 4},
		{name: "not hex", phys: "0x1\n", len: "0xg\n", err: ErrMalformed},
		{name: "17 digits", phys: "0x10000000000000000\n", len: "0x1\n",
			err: ErrMalformed},
		{name: "underscore", phys: "0x1_0\n", len: "0x1\n",
			err: ErrMalformed},
		{name: "sign", phys: "+0x1\n", len: "0x1\n", err: ErrMalformed},
		{name: "empty line", phys: "0x1\n\n0x2\n", len: "0x1\n0x1\n",
			err: ErrMalformed, off: 4},
		{name: "CRLF", phys: "0x1\r\n", len: "0x1\r\n", err: ErrMalformed},
		{name: "spaces", phys: " 0x1\n", len: "0x1\n", err: ErrMalformed},
		{name: "long garbage", phys: strings.Repeat("z", 100), len: "",
			err: ErrMalformed},
		{name: "decimal", phys: "0x1\n", len: "4096\n", err: ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScratch([]byte(tt.phys), []byte(tt.len))
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseScratch() = %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				var fe *FormatError
				if tt.off != 0 && (!errors.As(err, &fe) ||
					fe.Offset != tt.off) {
					t.Errorf("ParseScratch() = %v, want offset %#x", err,
						tt.off)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseScratch() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// memblockFDT builds a memblock blob as prepare_kho_fdt does.
func memblockFDT(tb testing.TB, regions ...*dt.Node) []byte {
	tb.Helper()
	return writeFDT(tb, dt.NewNode("",
		dt.WithProperty(compatible(memblockCompatible)),
		dt.WithChildren(regions...)))
}

func reserveMem(name string, start, size uint64) *dt.Node {
	return dt.NewNode(name, dt.WithProperty(
		compatible(reserveMemCompatible),
		prop("start", le64(start)), prop("size", le64(size))))
}

func TestParseMemblock(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    []byte
		want []ReserveMem
		errs []error // per region
		err  error
	}{
		{
			name: "two regions",
			b: memblockFDT(t, reserveMem("oops", 0x1_0000_0000, 0x100000),
				reserveMem("trace", 0x2000_0000, 0x400000)),
			want: []ReserveMem{
				{Name: "oops", Start: 0x1_0000_0000, Size: 0x100000},
				{Name: "trace", Start: 0x2000_0000, Size: 0x400000},
			},
		},
		{name: "no regions", b: memblockFDT(t), want: []ReserveMem{}},
		{
			name: "broken regions are kept with their error",
			b: memblockFDT(t,
				dt.NewNode("no-compat", dt.WithProperty(
					prop("start", le64(1)), prop("size", le64(2)))),
				dt.NewNode("wrong-compat", dt.WithProperty(
					compatible("reserve-mem-v2"),
					prop("start", le64(1)), prop("size", le64(2)))),
				dt.NewNode("short-start", dt.WithProperty(
					compatible(reserveMemCompatible),
					prop("start", []byte{1}), prop("size", le64(2)))),
				dt.NewNode("no-size", dt.WithProperty(
					compatible(reserveMemCompatible),
					prop("start", le64(1)))),
				reserveMem("good", 3, 4)),
			want: []ReserveMem{{Name: "no-compat"}, {Name: "wrong-compat"},
				{Name: "short-start"}, {Name: "no-size", Start: 1},
				{Name: "good", Start: 3, Size: 4}},
			errs: []error{ErrIncompatible, ErrIncompatible, ErrMalformed,
				ErrMissingProperty, nil},
		},
		{name: "wrong root compatible", b: writeFDT(t, dt.NewNode("",
			dt.WithProperty(compatible("memblock-v2")))),
			err: ErrIncompatible},
		{name: "no root compatible", b: writeFDT(t, dt.NewNode("")),
			err: ErrIncompatible},
		{name: "not an FDT", b: []byte(strings.Repeat("x", 64)),
			err: ErrNotFDT},
		{name: "truncated", b: memblockFDT(t)[:50], err: ErrTruncated},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMemblock(tt.b)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseMemblock() = %v, want %v", err, tt.err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseMemblock() = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				var wantErr error
				if tt.errs != nil {
					wantErr = tt.errs[i]
				}
				if !errors.Is(got[i].Err, wantErr) {
					t.Errorf("region %q error = %v, want %v",
						got[i].Name, got[i].Err, wantErr)
				}
				got[i].Err = nil
				if got[i] != tt.want[i] {
					t.Errorf("region %d = %+v, want %+v", i, got[i],
						tt.want[i])
				}
			}
		})
	}
}

func TestReserveMemJSON(t *testing.T) {
	got, err := json.Marshal([]ReserveMem{
		{Name: "oops", Start: 4096, Size: 8192},
		{Name: "bad", Err: ErrMalformed},
	})
	if err != nil {
		t.Fatalf("json.Marshal() = %v", err)
	}
	want := `[{"name":"oops","start":4096,"size":8192},` +
		`{"name":"bad","start":0,"size":0,"error":"malformed"}]`
	if string(got) != want {
		t.Errorf("json.Marshal() =\n%s\nwant\n%s", got, want)
	}
}

// luoRaw builds a 7.2 struct luo_ser: compatible[8], three u64.
func luoRaw(compat string) []byte {
	b := make([]byte, 32)
	copy(b, compat)
	copy(b[8:], le64(1))
	return b
}

func TestParseLUO(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    []byte
		want string
		err  error
	}{
		{name: "raw luo-v5", b: luoRaw("luo-v5"), want: "luo-v5"},
		{name: "raw, longer compatible",
			b:    append([]byte("luo-v123\x00"), make([]byte, 31)...),
			want: "luo-v123"},
		{name: "FDT luo-v1", b: writeFDT(t, dt.NewNode("",
			dt.WithProperty(compatible("luo-v1")))), want: "luo-v1"},
		{name: "FDT without compatible", b: writeFDT(t, dt.NewNode("")),
			err: ErrMissingProperty},
		{name: "FDT with empty compatible", b: writeFDT(t, dt.NewNode("",
			dt.WithProperty(prop("compatible", nil)))), err: ErrMalformed},
		{name: "broken FDT", b: v4Tree(t)[:60], err: ErrTruncated},
		{name: "empty", err: ErrMalformed},
		{name: "no NUL", b: []byte("luo-v5"), err: ErrMalformed},
		{name: "no NUL in 64 bytes",
			b: []byte(strings.Repeat("l", 64) + "\x00"), err: ErrMalformed},
		{name: "empty compatible", b: make([]byte, 32), err: ErrMalformed},
		{name: "not printable", b: luoRaw("luo\x01v5"), err: ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLUO(tt.b)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("ParseLUO() = %q, %v, want %q, %v", got, err,
					tt.want, tt.err)
			}
		})
	}
}
