package kexecload

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/kexecmeta/kexecmeta/pkg/kho"
)

// Segment is one piece of memory kexec_file_load(2) places for the next
// kernel.
type Segment struct {
	// Name says what the segment holds: "kernel", "initrd", ...
	Name string `json:"name"`

	// Size is the memory it takes, in bytes.
	Size uint64 `json:"size"`

	// Align is the alignment the kernel asks for, a power of two; 0 is
	// a page.
	Align uint64 `json:"align"`
}

const pageSize = 4096

// x86 segments besides the kernel and initrd, from
// arch/x86/kernel/kexec-bzimage64.c and kernel/liveupdate: the boot
// parameters with the command line and setup_data, the purgatory, and
// the KHO scratch table. Sizes are generous upper bounds.
var x86Extra = []Segment{
	{Name: "boot-params", Size: 64 << 10, Align: pageSize},
	{Name: "purgatory", Size: 64 << 10, Align: pageSize},
	{Name: "kho-scratch-table", Size: 64 << 10, Align: 64 << 10},
}

// Segments estimates what kexec_file_load will place for img and an initrd
// of initrdSize bytes (0 for none).
func Segments(img *Image, initrdSize int64) []Segment {
	mem := uint64(img.MemSize)
	if mem == 0 {
		// The image does not say; its file size is a lower bound.
		mem = uint64(img.Size)
	}
	segs := []Segment{{Name: "kernel", Size: pageAlign(mem),
		Align: max(img.KernelAlign, pageSize)}}
	if initrdSize > 0 {
		segs = append(segs, Segment{Name: "initrd",
			Size: pageAlign(uint64(initrdSize)), Align: pageSize})
	}
	return append(segs, x86Extra...)
}

func pageAlign(n uint64) uint64 { return (n + pageSize - 1) &^ (pageSize - 1) }

// ErrScratchTooSmall is matched by a *ScratchError.
var ErrScratchTooSmall = errors.New("segments do not fit the KHO scratch " +
	"areas")

// ScratchError says which segment found no room in the scratch areas.
type ScratchError struct {
	// Segment is the first segment that did not fit.
	Segment Segment

	// Need is the sum of all segments; Have the sum of all areas.
	Need, Have uint64

	// Largest is the largest room left when Segment was placed.
	Largest uint64
}

func (e *ScratchError) Error() string {
	return fmt.Sprintf("%v: the %s needs %s, the largest free scratch "+
		"room is %s (all segments: %s, all scratch areas: %s)",
		ErrScratchTooSmall, e.Segment.Name, mib(e.Segment.Size),
		mib(e.Largest), mib(e.Need), mib(e.Have))
}

// Unwrap returns ErrScratchTooSmall.
func (e *ScratchError) Unwrap() error { return ErrScratchTooSmall }

func mib(n uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// FitScratch checks that every segment can be placed in the scratch
// areas, as kexec_file_load must place them when KHO is on
// (kho_locate_mem_hole). It places the largest first, each in the first
// area with room, counting the worst alignment padding; the kernel's
// own placement (top down) can only do as well.
func FitScratch(segs []Segment, areas []kho.ScratchArea) error {
	free := make([]uint64, len(areas))
	var have, need uint64
	for i, a := range areas {
		free[i] = a.Len
		have += a.Len
	}
	sorted := append([]Segment(nil), segs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return sorted[i].Size > sorted[j].Size
	})
	for _, s := range sorted {
		need += s.Size
	}

	for _, s := range sorted {
		want := s.Size
		if s.Align > pageSize {
			want += s.Align - pageSize
		}
		placed := false
		var largest uint64
		for i := range free {
			if free[i] >= want {
				free[i] -= want
				placed = true
				break
			}
			largest = max(largest, free[i])
		}
		if !placed {
			return &ScratchError{Segment: s, Need: need, Have: have,
				Largest: largest}
		}
	}
	return nil
}

// Handover is the KHO verdict on a kexec from one release to another.
type Handover struct {
	// From and To are the generations of the running and the next
	// kernel, by release.
	From, To kho.Generation

	// Carries says the next kernel will accept the handover, and with
	// it the chain's record and count.
	Carries bool

	// Reason explains a Carries of false in words.
	Reason string
}

// ErrNoHandover is returned by RequireHandover when the next kernel will
// not accept the handover.
var ErrNoHandover = errors.New("the next kernel will not accept the " +
	"handover")

// PredictHandover says whether a kexec from the running release to the
// next one carries KHO data, by their releases alone (KHO.md, section 1):
// both must be of one KHO ABI generation.
func PredictHandover(running, next string) Handover {
	var h Handover
	rv, err := kho.ParseRelease(running)
	if err != nil {
		h.Reason = err.Error()
		return h
	}
	h.From, _ = kho.GenerationOfRelease(rv)
	if next == "" {
		h.Reason = "the next kernel's release is not in its image"
		return h
	}
	nv, err := kho.ParseRelease(next)
	if err != nil {
		h.Reason = err.Error()
		return h
	}
	h.To, _ = kho.GenerationOfRelease(nv)
	switch {
	case h.To == kho.GenerationUnknown:
		h.Reason = fmt.Sprintf("release %s has no known KHO ABI", next)
	case h.From != h.To:
		h.Reason = fmt.Sprintf("the KHO ABI changes from %s (%s) to %s "+
			"(%s): the next kernel boots as if cold and counts from 0",
			h.From, running, h.To, next)
	case !kho.HasRecord(nv):
		h.Carries = true
		h.Reason = fmt.Sprintf("release %s reads no kexec-metadata record",
			next)
	default:
		h.Carries = true
	}
	return h
}

// Err returns nil when the handover carries, else ErrNoHandover with the
// reason.
func (h Handover) Err() error {
	if h.Carries {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNoHandover, strings.TrimSpace(h.Reason))
}
