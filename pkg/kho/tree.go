package kho

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/u-root/u-root/pkg/dt"
)

// ErrMissingProperty means an FDT node lacks a property its format needs.
var ErrMissingProperty = errors.New("missing property")

// Generation is the KHO ABI generation that a root handover FDT's
// compatible string names. A kernel accepts a handover only of its own
// generation.
type Generation int

// The KHO ABI generations, each named by its root compatible string.
const (
	// GenerationUnknown: a compatible string this package does not know.
	GenerationUnknown Generation = iota

	// GenerationV1 is "kho-v1" (Linux 6.16-7.0): each sub-node's `fdt`
	// property holds the physical address of a sub-FDT, which carries
	// its own size.
	GenerationV1

	// GenerationV3 is "kho-v3" (Linux 7.1): each sub-node has
	// `preserved-data` and `blob-size`, and blobs may be raw.
	GenerationV3

	// GenerationV4 is "kho-v4" (Linux 7.2, 7.3), laid out as kho-v3.
	GenerationV4
)

var generations = [...]struct{ compatible, kernels string }{
	GenerationUnknown: {"unknown", ""},
	GenerationV1:      {"kho-v1", "6.16-7.0"},
	GenerationV3:      {"kho-v3", "7.1"},
	GenerationV4:      {"kho-v4", "7.2-7.3"},
}

func (g Generation) known() bool {
	return g > GenerationUnknown && int(g) < len(generations)
}

// String returns the generation's compatible string, or "unknown".
func (g Generation) String() string {
	if !g.known() {
		return generations[GenerationUnknown].compatible
	}
	return generations[g].compatible
}

// Kernels returns the Linux releases that write the generation, such as
// "7.2-7.3", or "" when unknown.
func (g Generation) Kernels() string {
	if !g.known() {
		return ""
	}
	return generations[g].kernels
}

// MarshalText encodes g as its String.
func (g Generation) MarshalText() ([]byte, error) {
	return []byte(g.String()), nil
}

// UnmarshalText decodes a String; any other text is GenerationUnknown.
func (g *Generation) UnmarshalText(b []byte) error {
	*g = generationOf(string(b))
	return nil
}

func generationOf(compatible string) Generation {
	for i := range generations {
		if g := Generation(i); g.known() &&
			generations[g].compatible == compatible {
			return g
		}
	}
	return GenerationUnknown
}

// Property names of the root handover FDT, from
// include/linux/kho/abi/kexec_handover.h (7.1+) and
// kernel/kexec_handover.c (6.16-7.0).
const (
	propCompatible    = "compatible"
	propMemoryMap     = "preserved-memory-map" // all generations
	propSubFDT        = "fdt"                  // kho-v1
	propPreservedData = "preserved-data"       // kho-v3, kho-v4
	propBlobSize      = "blob-size"            // kho-v3, kho-v4
)

// Tree is a decoded root handover FDT, debugfs kho/in/fdt or kho/out/fdt.
type Tree struct {
	// Compatible is the root node's first compatible string.
	Compatible string `json:"compatible"`

	// Generation is the KHO ABI that Compatible names.
	Generation Generation `json:"generation"`

	// MemoryMap is the physical address of the preserved memory map
	// (preserved-memory-map), valid when MemoryMapErr is nil.
	MemoryMap uint64 `json:"preserved_memory_map"`

	// MemoryMapErr says why MemoryMap could not be read.
	MemoryMapErr error `json:"-"`

	// Subtrees lists the root's sub-nodes, one per preserved blob, in
	// FDT order.
	Subtrees []Subtree `json:"subtrees"`
}

// MarshalJSON adds the kernels of the generation and MemoryMapErr as
// "kernels" and "preserved_memory_map_error".
func (t Tree) MarshalJSON() ([]byte, error) {
	type plain Tree
	return json.Marshal(struct {
		plain
		Kernels string `json:"kernels,omitempty"`
		Err     string `json:"preserved_memory_map_error,omitempty"`
	}{plain(t), t.Generation.Kernels(), errString(t.MemoryMapErr)})
}

// Subtree is one sub-node of the root handover FDT: the name a subsystem
// registered with kho_add_subtree and where its blob lies.
type Subtree struct {
	// Name is the node name, such as "kexec-metadata" or "memblock".
	Name string `json:"name"`

	// Address is the blob's physical address (preserved-data, or fdt on
	// kho-v1).
	Address uint64 `json:"address"`

	// Size is the blob's size in bytes (blob-size); valid when HasSize.
	Size uint64 `json:"size"`

	// HasSize is false on kho-v1, whose sub-nodes carry no size (the
	// blob is an FDT that holds its own).
	HasSize bool `json:"-"`

	// Err says why the node is broken (a property missing or of the
	// wrong length); the kernel skips such a node. Address and Size are
	// then valid only as far as they were read.
	Err error `json:"-"`
}

// MarshalJSON omits "size" when not HasSize and adds Err as "error".
func (s Subtree) MarshalJSON() ([]byte, error) {
	type plain Subtree
	var size *uint64
	if s.HasSize {
		size = &s.Size
	}
	return json.Marshal(struct {
		plain
		Size *uint64 `json:"size,omitempty"`
		Err  string  `json:"error,omitempty"`
	}{plain(s), size, errString(s.Err)})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ParseTree decodes a root handover FDT. The FDT must be well formed and
// at most MaxFDTSize bytes; errors about it are *FormatError. Within a
// valid FDT, an unknown compatible still parses (GenerationUnknown, each
// sub-node read by whichever property it has), and faults in the memory
// map property or in single sub-nodes are kept in the Tree, not
// returned, as the kernel skips a broken sub-node and goes on.
func ParseTree(b []byte) (*Tree, error) {
	fdt, err := readFDT(b)
	if err != nil {
		return nil, fmt.Errorf("reading root handover FDT: %w", err)
	}
	root := fdt.RootNode

	t := &Tree{Subtrees: []Subtree{}}
	if p, ok := root.LookProperty(propCompatible); ok {
		list := stringList(p.Value)
		if len(list) > 0 {
			t.Compatible = list[0]
		}
		// Like fdt_node_check_compatible, match any entry.
		for _, c := range list {
			if g := generationOf(c); g != GenerationUnknown {
				t.Generation = g
				break
			}
		}
	}
	t.MemoryMap, t.MemoryMapErr = u64Prop(root, propMemoryMap)

	for _, n := range root.Children {
		t.Subtrees = append(t.Subtrees, parseSubtree(n, t.Generation))
	}
	return t, nil
}

// parseSubtree reads one sub-node by the rules of generation g, or for
// an unknown generation by whichever address property it has.
func parseSubtree(n *dt.Node, g Generation) Subtree {
	s := Subtree{Name: n.Name}
	v1 := g == GenerationV1
	if g == GenerationUnknown {
		_, hasData := n.LookProperty(propPreservedData)
		_, hasFDT := n.LookProperty(propSubFDT)
		v1 = hasFDT && !hasData
	}
	if v1 {
		s.Address, s.Err = u64Prop(n, propSubFDT)
		return s
	}

	if s.Address, s.Err = u64Prop(n, propPreservedData); s.Err != nil {
		return s
	}
	s.Size, s.Err = u64Prop(n, propBlobSize)
	s.HasSize = s.Err == nil
	return s
}

// u64Prop reads a CPU-native u64 property, as the kernel stores
// physical addresses and sizes in the handover FDTs.
func u64Prop(n *dt.Node, name string) (uint64, error) {
	p, ok := n.LookProperty(name)
	if !ok {
		return 0, fmt.Errorf("property %q: %w", name, ErrMissingProperty)
	}
	if len(p.Value) != 8 {
		return 0, fmt.Errorf("property %q is %d bytes, want 8: %w",
			name, len(p.Value), ErrMalformed)
	}
	return NativeEndian.Uint64(p.Value), nil
}

// stringList splits an FDT string list (NUL-terminated strings back to
// back). A missing final NUL ends the list at the value's end. pkg/dt's
// Property.AsStringList is not used: in u-root v0.16.0 it can panic.
func stringList(v []byte) []string {
	s := strings.TrimSuffix(string(v), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}
