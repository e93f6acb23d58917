package kho

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/u-root/u-root/pkg/dt"
)

// ErrIncompatible means a blob's compatible string is not the one this
// package decodes.
var ErrIncompatible = errors.New("incompatible")

// Names of the sub-blobs this package decodes besides MetadataName.
const (
	// MemblockName is the blob of reserve_mem= regions
	// (MEMBLOCK_KHO_FDT, include/linux/kho/abi/memblock.h).
	MemblockName = "memblock"

	// LUOName is the Live Update Orchestrator's blob
	// (LUO_KHO_ENTRY_NAME, include/linux/kho/abi/luo.h). The incoming one
	// is freed early in boot and must never be read.
	LUOName = "LUO"
)

// ScratchKind says what a scratch area is reserved for.
type ScratchKind string

// Scratch area kinds, in the order kho_reserve_scratch creates them.
const (
	// ScratchLowmem is the first area, in low memory, for the next
	// kernel's low-memory allocations.
	ScratchLowmem ScratchKind = "lowmem"

	// ScratchGlobal is the second area, for allocations without a node.
	ScratchGlobal ScratchKind = "global"

	// ScratchNode is each further area, one per NUMA node with memory,
	// in node order.
	ScratchNode ScratchKind = "node"
)

// ScratchArea is one KHO scratch area: memory that stays free across
// kexecs, where the next kernel's segments must be loaded.
type ScratchArea struct {
	// Kind says what the area is for; it follows from the position.
	Kind ScratchKind `json:"kind"`

	// Phys is the physical start address.
	Phys uint64 `json:"phys"`

	// Len is the length in bytes.
	Len uint64 `json:"len"`
}

// ParseScratch decodes the debugfs files kho/out/scratch_phys and
// kho/out/scratch_len, in which the kernel prints one "0x%llx\n" line per
// area (kexec_handover_debugfs.c). The two must list the same number of
// areas. The final newline may be missing; nothing else is tolerated.
func ParseScratch(phys, length []byte) ([]ScratchArea, error) {
	addrs, err := parseHexLines(phys)
	if err != nil {
		return nil, fmt.Errorf("parsing scratch_phys: %w", err)
	}
	lens, err := parseHexLines(length)
	if err != nil {
		return nil, fmt.Errorf("parsing scratch_len: %w", err)
	}
	if len(addrs) != len(lens) {
		return nil, fmt.Errorf("parsing scratch areas: %d in scratch_phys, "+
			"%d in scratch_len: %w", len(addrs), len(lens), ErrMalformed)
	}

	areas := make([]ScratchArea, len(addrs))
	for i := range areas {
		kind := ScratchNode
		switch i {
		case 0:
			kind = ScratchLowmem
		case 1:
			kind = ScratchGlobal
		}
		areas[i] = ScratchArea{Kind: kind, Phys: addrs[i], Len: lens[i]}
	}
	return areas, nil
}

// parseHexLines parses lines of the form "0x<hex>".
func parseHexLines(b []byte) ([]uint64, error) {
	var (
		vals []uint64
		off  int
	)
	for off < len(b) {
		line := b[off:]
		next := len(b)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, next = line[:i], off+i+1
		}
		hex, ok := bytes.CutPrefix(line, []byte("0x"))
		// ParseUint would accept "_" and a sign; the kernel prints
		// neither.
		if !ok || len(hex) == 0 || len(hex) > 16 || !isHex(hex) {
			return nil, formatErr(uint64(off), ErrMalformed,
				"line %d: got %q, want 0x and 1-16 hex digits",
				len(vals)+1, clip(line))
		}
		v, err := strconv.ParseUint(string(hex), 16, 64)
		if err != nil { // not reached after isHex
			return nil, formatErr(uint64(off), ErrMalformed,
				"line %d: %v", len(vals)+1, err)
		}
		vals = append(vals, v)
		off = next
	}
	return vals, nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f',
			'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// clip shortens input quoted in an error message.
func clip(b []byte) []byte {
	const n = 32
	if len(b) > n {
		return b[:n]
	}
	return b
}

// The memblock blob's compatible strings, from
// include/linux/kho/abi/memblock.h.
const (
	memblockCompatible   = "memblock-v1"
	reserveMemCompatible = "reserve-mem-v1"
)

// ReserveMem is one reserve_mem= region that memblock hands over.
type ReserveMem struct {
	// Name is the region's name from reserve_mem=size:align:name.
	Name string `json:"name"`

	// Start is the physical start address, valid when Err is nil.
	Start uint64 `json:"start"`

	// Size is the size in bytes, valid when Err is nil.
	Size uint64 `json:"size"`

	// Err says why the node is broken; the next kernel does not revive
	// such a region.
	Err error `json:"-"`
}

// MarshalJSON adds Err as "error".
func (r ReserveMem) MarshalJSON() ([]byte, error) {
	type plain ReserveMem
	return json.Marshal(struct {
		plain
		Err string `json:"error,omitempty"`
	}{plain(r), errString(r.Err)})
}

// ParseMemblock decodes the memblock blob: an FDT with compatible
// "memblock-v1" whose sub-nodes, one per reserve_mem= region, have
// compatible "reserve-mem-v1" and CPU-native u64 start and size
// properties (mm/memblock.c, prepare_kho_fdt). A broken sub-node is kept
// with its Err set, as the kernel skips only that region.
func ParseMemblock(b []byte) ([]ReserveMem, error) {
	fdt, err := readFDT(b)
	if err != nil {
		return nil, fmt.Errorf("reading memblock FDT: %w", err)
	}
	root := fdt.RootNode
	if err := checkCompatible(root, memblockCompatible); err != nil {
		return nil, fmt.Errorf("reading memblock FDT: %w", err)
	}

	regions := []ReserveMem{}
	for _, n := range root.Children {
		r := ReserveMem{Name: n.Name}
		r.Err = checkCompatible(n, reserveMemCompatible)
		if r.Err == nil {
			r.Start, r.Err = u64Prop(n, "start")
		}
		if r.Err == nil {
			r.Size, r.Err = u64Prop(n, "size")
		}
		regions = append(regions, r)
	}
	return regions, nil
}

// checkCompatible checks that a node's compatible list holds want, as
// fdt_node_check_compatible does.
func checkCompatible(n *dt.Node, want string) error {
	p, ok := n.LookProperty(propCompatible)
	if !ok {
		return fmt.Errorf("no compatible property, want %q: %w", want,
			ErrIncompatible)
	}
	list := stringList(p.Value)
	for _, c := range list {
		if c == want {
			return nil
		}
	}
	return fmt.Errorf("compatible %q, want %q: %w", list, want,
		ErrIncompatible)
}

// maxLUOCompatible caps the compatible string at the start of a raw LUO
// blob. LUO_ABI_COMPAT_LEN is 8 in 7.2 and 7.3.
const maxLUOCompatible = 64

// ParseLUO returns the ABI compatible string of an outgoing LUO blob
// (debugfs kho/out/sub_fdts/LUO), such as "luo-v5". From 7.1 the blob is
// a raw struct luo_ser that starts with a NUL-terminated compatible
// string (include/linux/kho/abi/luo.h); before, it was an FDT whose root
// compatible is returned. Nothing else in the blob is decoded.
//
// Never pass it the incoming LUO blob: LUO frees that memory early in
// boot, so debugfs kho/in/sub_fdts/LUO must not be read.
func ParseLUO(b []byte) (string, error) {
	if hasFDTMagic(b) {
		fdt, err := readFDT(b)
		if err != nil {
			return "", fmt.Errorf("reading LUO FDT: %w", err)
		}
		p, ok := fdt.RootNode.LookProperty(propCompatible)
		if !ok {
			return "", fmt.Errorf("reading LUO FDT: property %q: %w",
				propCompatible, ErrMissingProperty)
		}
		list := stringList(p.Value)
		if len(list) == 0 || !printable(list[0]) {
			return "", fmt.Errorf("reading LUO FDT: compatible %q: %w",
				p.Value, ErrMalformed)
		}
		return list[0], nil
	}

	head := b[:min(len(b), maxLUOCompatible)]
	i := bytes.IndexByte(head, 0)
	if i < 0 {
		return "", formatErr(0, ErrMalformed,
			"LUO compatible: no NUL in the first %d bytes", len(head))
	}
	if i == 0 || !printable(string(head[:i])) {
		return "", formatErr(0, ErrMalformed, "LUO compatible %q",
			head[:i])
	}
	return string(head[:i]), nil
}

// printable says whether s is non-empty printable ASCII, as every
// compatible string the kernel writes is.
func printable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
