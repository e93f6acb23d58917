package kexecload

import (
	"errors"
	"strings"
	"testing"

	"github.com/kexecmeta/kexecmeta/pkg/kho"
)

func TestFitScratch(t *testing.T) {
	const mb = 1 << 20
	// The areas a 1 GiB x86 guest gets by default: 64 MiB low, then
	// global and one node area.
	vm := []kho.ScratchArea{
		{Kind: kho.ScratchLowmem, Phys: 0x1000000, Len: 64 * mb},
		{Kind: kho.ScratchGlobal, Phys: 0x20000000, Len: 192 * mb},
		{Kind: kho.ScratchNode, Phys: 0x30000000, Len: 192 * mb},
	}
	small := []kho.ScratchArea{
		{Kind: kho.ScratchLowmem, Len: 4 * mb},
		{Kind: kho.ScratchGlobal, Len: 4 * mb},
	}
	img := &Image{Size: 2 * mb, MemSize: 20 * mb, KernelAlign: 2 * mb}
	for _, tt := range []struct {
		name    string
		initrd  int64
		areas   []kho.ScratchArea
		wantErr bool
		wantSeg string
	}{
		{name: "fits", initrd: 3 * mb, areas: vm},
		{name: "large initrd goes to the global area", initrd: 150 * mb,
			areas: vm},
		{name: "initrd larger than any area", initrd: 200 * mb, areas: vm,
			wantErr: true, wantSeg: "initrd"},
		{name: "kernel larger than small areas", areas: small,
			wantErr: true, wantSeg: "kernel"},
		{name: "no areas", areas: nil, wantErr: true, wantSeg: "kernel"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := FitScratch(Segments(img, tt.initrd), tt.areas)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("FitScratch() = %v, want nil", err)
				}
				return
			}
			var se *ScratchError
			if !errors.As(err, &se) || !errors.Is(err, ErrScratchTooSmall) {
				t.Fatalf("FitScratch() = %v, want a *ScratchError", err)
			}
			if se.Segment.Name != tt.wantSeg {
				t.Errorf("FitScratch() blames %q, want %q", se.Segment.Name,
					tt.wantSeg)
			}
			if !strings.Contains(err.Error(), "MiB") {
				t.Errorf("error %q gives no sizes", err)
			}
		})
	}
}

func TestPredictHandover(t *testing.T) {
	for _, tt := range []struct {
		running, next string
		carries       bool
		wantIn        string
	}{
		{"7.2.13", "7.3.4", true, ""},
		{"7.3.4", "7.2.13", true, ""},
		{"7.1.2", "7.2.13", false, "kho-v3 (7.1.2) to kho-v4 (7.2.13)"},
		{"7.0.1", "7.1.0", false, "kho-v1 (7.0.1) to kho-v3"},
		{"6.19.3", "7.0.1", true, "reads no kexec-metadata record"},
		{"7.2.13", "", false, "not in its image"},
		{"7.2.13", "7.9.0", false, "no known KHO ABI"},
		{"7.2.13", "6.1.0", false, "no known KHO ABI"},
	} {
		h := PredictHandover(tt.running, tt.next)
		if h.Carries != tt.carries || !strings.Contains(h.Reason, tt.wantIn) {
			t.Errorf("PredictHandover(%q, %q) = %+v, want carries %v and "+
				"reason with %q", tt.running, tt.next, h, tt.carries,
				tt.wantIn)
		}
		if err := h.Err(); (err == nil) != tt.carries ||
			(err != nil && !errors.Is(err, ErrNoHandover)) {
			t.Errorf("PredictHandover(%q, %q).Err() = %v", tt.running,
				tt.next, err)
		}
	}
}
