package kho

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/u-root/u-root/pkg/dt"
)

// MaxFDTSize caps the size of any FDT this package parses: the root
// handover FDT and the FDT sub-blobs. The kernel builds each of them in
// one page, so 1 MiB leaves a wide margin.
const MaxFDTSize = 1 << 20

// Limits on the FDT structure block, checked before u-root's pkg/dt sees
// the bytes. pkg/dt builds node names a byte at a time, so a long name
// costs quadratic time; KHO names are short subsystem names.
const (
	maxFDTDepth   = 64
	maxFDTNameLen = 256
)

// Errors that ParseTree, ParseMemblock, ParseLUO, ParseScratch and the
// per-node checks wrap. Match them with errors.Is.
var (
	// ErrNotFDT means the data does not start with the FDT magic.
	ErrNotFDT = errors.New("not an FDT")

	// ErrTruncated means the data ends before a length it declares.
	ErrTruncated = errors.New("truncated")

	// ErrTooLarge means the data exceeds a size cap of this package.
	ErrTooLarge = errors.New("too large")

	// ErrFDTVersion means the FDT header version is not one this package
	// reads (17, or later versions compatible with 17).
	ErrFDTVersion = errors.New("unsupported FDT version")

	// ErrMalformed means the data breaks its format's rules.
	ErrMalformed = errors.New("malformed")
)

// FormatError reports malformed binary input at a byte offset.
type FormatError struct {
	// Offset is the byte offset of the fault in the input.
	Offset int64

	// Msg says what is wrong, with got and want.
	Msg string

	// Err is the sentinel this fault belongs to (ErrTruncated, ...).
	Err error
}

func (e *FormatError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("offset %#x: %s", e.Offset, e.Msg)
	}
	return fmt.Sprintf("offset %#x: %s: %v", e.Offset, e.Msg, e.Err)
}

// Unwrap returns the sentinel, so errors.Is(err, ErrTruncated) matches.
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off uint64, sentinel error, format string,
	a ...any) *FormatError {
	return &FormatError{
		Offset: int64(off),
		Msg:    fmt.Sprintf(format, a...),
		Err:    sentinel,
	}
}

// fdtHeaderSize is the size of a version 17 FDT header (struct
// fdt_header in scripts/dtc/libfdt/fdt.h): ten big-endian u32 fields.
const fdtHeaderSize = 40

// FDT structure tokens, from the Devicetree Specification, section 5.4.
const (
	fdtBeginNode = 0x1
	fdtEndNode   = 0x2
	fdtProp      = 0x3
	fdtNop       = 0x4
	fdtEnd       = 0x9
)

// The FDT structure itself is big-endian by specification, whatever the
// CPU; only the KHO payloads inside properties are CPU-native
// (NativeEndian).
var fdtOrder = binary.BigEndian

// hasFDTMagic says whether b starts with the FDT magic.
func hasFDTMagic(b []byte) bool {
	return len(b) >= 4 && fdtOrder.Uint32(b) == dt.Magic
}

// readFDT validates b as an FDT, header and structure block, and only
// then hands the bytes to pkg/dt. u-root v0.16.0 pkg/dt allocates from
// unchecked header and property sizes, so every size it will use is
// checked here first. Bytes after the header's totalsize are ignored.
func readFDT(b []byte) (*dt.FDT, error) {
	size, err := checkFDT(b)
	if err != nil {
		return nil, err
	}
	b = b[:size:size]
	if fdtOrder.Uint32(b[12:]) == size {
		// pkg/dt reads the strings block with one Read, which fails
		// with io.EOF when the block is empty and ends the data.
		b = append(b, 0)
	}
	fdt, err := dt.ReadFDT(bytes.NewReader(b))
	if err != nil {
		// checkFDT accepts nothing pkg/dt rejects, as far as known.
		return nil, &FormatError{Msg: "reading FDT", Err: fmt.Errorf(
			"%w: %w", ErrMalformed, err)}
	}
	return fdt, nil
}

// checkFDT checks the header and structure block of an FDT and returns
// its totalsize.
func checkFDT(b []byte) (uint32, error) {
	// The header.
	if len(b) < fdtHeaderSize {
		return 0, formatErr(0, ErrTruncated,
			"FDT header: got %d bytes, want %d", len(b), fdtHeaderSize)
	}
	u32 := func(off int) uint32 { return fdtOrder.Uint32(b[off:]) }
	var (
		magic       = u32(0)
		total       = u32(4)
		offStruct   = u32(8)
		offStrings  = u32(12)
		offRsvmap   = u32(16)
		version     = u32(20)
		lastComp    = u32(24)
		sizeStrings = u32(32)
		sizeStruct  = u32(36)
	)
	if magic != dt.Magic {
		return 0, formatErr(0, ErrNotFDT, "magic %#08x, want %#08x",
			magic, dt.Magic)
	}
	switch {
	case total < fdtHeaderSize:
		return 0, formatErr(4, ErrMalformed,
			"totalsize %d is under the header size %d", total,
			fdtHeaderSize)
	case total > MaxFDTSize:
		return 0, formatErr(4, ErrTooLarge, "totalsize %d, cap %d",
			total, MaxFDTSize)
	case uint64(total) > uint64(len(b)):
		return 0, formatErr(4, ErrTruncated,
			"totalsize %d, but only %d bytes", total, len(b))
	}
	if version < 17 || lastComp > 17 {
		return 0, formatErr(20, ErrFDTVersion,
			"version %d last compatible with %d, want 17 or compatible",
			version, lastComp)
	}

	// The blocks lie inside totalsize, past the header.
	blocks := []struct {
		what      string
		hdrOff    uint64
		off, size uint32
		align     uint32
	}{
		{"memory reservation block", 16, offRsvmap, 16, 8},
		{"structure block", 8, offStruct, sizeStruct, 4},
		{"strings block", 12, offStrings, sizeStrings, 1},
	}
	for _, blk := range blocks {
		end := uint64(blk.off) + uint64(blk.size)
		switch {
		case blk.off < fdtHeaderSize:
			return 0, formatErr(blk.hdrOff, ErrMalformed,
				"%s at %#x overlaps the header", blk.what, blk.off)
		case blk.off%blk.align != 0:
			return 0, formatErr(blk.hdrOff, ErrMalformed,
				"%s at %#x, want %d-byte alignment", blk.what, blk.off,
				blk.align)
		case end > uint64(total):
			return 0, formatErr(blk.hdrOff, ErrTruncated,
				"%s %#x+%#x ends past totalsize %#x", blk.what, blk.off,
				blk.size, total)
		}
	}

	// The memory reservation block: 16-byte entries up to an all-zero
	// one, which must come before the structure block.
	rsvEnd := uint64(offRsvmap)
	for {
		if rsvEnd+16 > uint64(total) {
			return 0, formatErr(rsvEnd, ErrTruncated,
				"memory reservation block has no terminating entry")
		}
		e := b[rsvEnd : rsvEnd+16]
		rsvEnd += 16
		if fdtOrder.Uint64(e) == 0 && fdtOrder.Uint64(e[8:]) == 0 {
			break
		}
	}
	if uint64(offStruct) < rsvEnd {
		return 0, formatErr(8, ErrMalformed,
			"structure block at %#x overlaps the memory reservation "+
				"block, which ends at %#x", offStruct, rsvEnd)
	}

	err := checkStruct(b[offStruct:offStruct+sizeStruct], uint64(offStruct),
		b[offStrings:offStrings+sizeStrings])
	if err != nil {
		return 0, err
	}
	return total, nil
}

// checkStruct walks the tokens of a structure block. base is the block's
// offset in the FDT, for error offsets.
func checkStruct(s []byte, base uint64, strs []byte) error {
	var (
		off   uint64
		depth int
		roots int
	)
	at := func() uint64 { return base + off }
	n := uint64(len(s))
	for {
		if off+4 > n {
			return formatErr(at(), ErrTruncated,
				"structure block ends without an FDT_END token")
		}
		tok := fdtOrder.Uint32(s[off:])
		tokOff := off
		off += 4

		switch tok {
		case fdtBeginNode:
			if depth == 0 {
				if roots++; roots > 1 {
					return formatErr(base+tokOff, ErrMalformed,
						"second root node")
				}
			}
			if depth++; depth > maxFDTDepth {
				return formatErr(base+tokOff, ErrTooLarge,
					"nodes nested %d deep, cap %d", depth, maxFDTDepth)
			}
			i := bytes.IndexByte(s[off:], 0)
			if i < 0 {
				return formatErr(at(), ErrTruncated,
					"node name has no terminating NUL")
			}
			if i > maxFDTNameLen {
				return formatErr(at(), ErrTooLarge,
					"node name is %d bytes, cap %d", i, maxFDTNameLen)
			}
			off += uint64(i) + 1

		case fdtEndNode:
			if depth == 0 {
				return formatErr(base+tokOff, ErrMalformed,
					"FDT_END_NODE outside any node")
			}
			depth--

		case fdtProp:
			if off+8 > n {
				return formatErr(at(), ErrTruncated,
					"property header: got %d bytes, want 8", n-off)
			}
			plen := uint64(fdtOrder.Uint32(s[off:]))
			nameOff := fdtOrder.Uint32(s[off+4:])
			off += 8
			if depth == 0 {
				return formatErr(base+tokOff, ErrMalformed,
					"property outside any node")
			}
			if plen > n-off {
				return formatErr(base+tokOff+4, ErrTruncated,
					"property length %d, but %d bytes left in the "+
						"structure block", plen, n-off)
			}
			if uint64(nameOff) >= uint64(len(strs)) ||
				bytes.IndexByte(strs[nameOff:], 0) < 0 {
				return formatErr(base+tokOff+8, ErrMalformed,
					"property name offset %#x: no NUL-terminated "+
						"string in the %d-byte strings block", nameOff,
					len(strs))
			}
			off += plen

		case fdtNop:

		case fdtEnd:
			if depth != 0 || roots == 0 {
				return formatErr(base+tokOff, ErrMalformed,
					"FDT_END with %d nodes open and %d root nodes",
					depth, roots)
			}
			if off != n {
				return formatErr(at(), ErrMalformed,
					"%d bytes after FDT_END in the structure block",
					n-off)
			}
			return nil

		default:
			return formatErr(base+tokOff, ErrMalformed,
				"unknown token %#x", tok)
		}

		// Tokens are 4-byte aligned.
		off = (off + 3) &^ 3
	}
}
