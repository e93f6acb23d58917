package kho

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
)

// Caps on what ReadState reads. debugfs files may stat as size 0, so
// sizes are never taken from Stat: every read goes through a limit.
const (
	// MaxBlobSize caps one sub-blob. Known blobs are far smaller
	// (kexec-metadata 73 bytes, memblock one page).
	MaxBlobSize = 1 << 20

	// maxBlobs caps the entries read from one sub_fdts directory.
	maxBlobs = 1024

	// maxTextSize caps scratch_phys, scratch_len and finalize: at 19
	// bytes a line, 64 KiB holds over 3000 scratch areas.
	maxTextSize = 64 << 10
)

// State is the KHO state under the debugfs kho directory: what this
// kernel received (In) and what it will hand over (Out).
type State struct {
	// In is the incoming side, kho/in; nil when absent, as on a cold
	// boot or when this kernel refused the handover.
	In *Side `json:"in"`

	// Out is the outgoing side, kho/out; nil when absent.
	Out *Side `json:"out"`
}

// Side is one side, kho/in or kho/out. Each part that could not be read
// or decoded keeps its error next to it; a part that is simply absent
// has neither value nor error.
type Side struct {
	// Tree is the decoded root handover FDT (fdt); nil when the file is
	// absent (kho/out/fdt is absent on a kernel that itself booted
	// through KHO) or TreeErr is set.
	Tree *Tree `json:"tree"`

	// TreeErr says why fdt could not be read or decoded.
	TreeErr error `json:"-"`

	// Blobs lists the files of sub_fdts, sorted by name.
	Blobs []Blob `json:"blobs"`

	// BlobsErr says why sub_fdts could not be listed in full.
	BlobsErr error `json:"-"`

	// Scratch lists the scratch areas (scratch_phys, scratch_len); out
	// side only, nil when absent or ScratchErr is set.
	Scratch []ScratchArea `json:"scratch,omitempty"`

	// ScratchErr says why the scratch areas could not be read.
	ScratchErr error `json:"-"`

	// Finalized is the finalize state (finalize) on 6.16-7.0; out side
	// only, nil when absent (7.1 and later have no finalize step).
	Finalized *bool `json:"finalized,omitempty"`

	// FinalizeErr says why finalize could not be read.
	FinalizeErr error `json:"-"`
}

// MarshalJSON adds each error as "<part>_error".
func (s Side) MarshalJSON() ([]byte, error) {
	type plain Side
	return json.Marshal(struct {
		plain
		TreeErr     string `json:"tree_error,omitempty"`
		BlobsErr    string `json:"blobs_error,omitempty"`
		ScratchErr  string `json:"scratch_error,omitempty"`
		FinalizeErr string `json:"finalize_error,omitempty"`
	}{plain(s), errString(s.TreeErr), errString(s.BlobsErr),
		errString(s.ScratchErr), errString(s.FinalizeErr)})
}

// Blob returns the blob called name, or nil.
func (s *Side) Blob(name string) *Blob {
	for i := range s.Blobs {
		if s.Blobs[i].Name == name {
			return &s.Blobs[i]
		}
	}
	return nil
}

// Blob is one file of sub_fdts: a preserved sub-blob.
type Blob struct {
	// Name is the subsystem's name for the blob.
	Name string `json:"name"`

	// Size is the number of bytes read. For a Skipped blob it is the
	// root tree's blob-size when known, else 0.
	Size int `json:"size"`

	// Skipped is true for a blob that must not be read: the incoming
	// LUO blob, whose memory LUO frees early in boot.
	Skipped bool `json:"skipped,omitempty"`

	// Data holds the raw bytes of a known blob (kexec-metadata,
	// memblock, outgoing LUO); nil for others.
	Data []byte `json:"-"`

	// KexecMetadata is the decoded kexec-metadata record.
	KexecMetadata *Record `json:"kexec_metadata,omitempty"`

	// ReserveMem lists the regions of the memblock blob.
	ReserveMem []ReserveMem `json:"reserve_mem,omitempty"`

	// LUOCompatible is the ABI of the outgoing LUO blob.
	LUOCompatible string `json:"luo_compatible,omitempty"`

	// Err says why the blob could not be read or decoded. A
	// kexec-metadata record the kernel would ignore is a *RecordError.
	Err error `json:"-"`
}

// MarshalJSON adds Err as "error".
func (b Blob) MarshalJSON() ([]byte, error) {
	type plain Blob
	return json.Marshal(struct {
		plain
		Err string `json:"error,omitempty"`
	}{plain(b), errString(b.Err)})
}

// ReadState reads the KHO state from fsys, rooted at the debugfs kho
// directory: os.DirFS("/sys/kernel/debug/kho") or a captured copy. Any
// file may be absent. It fails only when the directory itself cannot be
// listed (match fs.ErrNotExist, fs.ErrPermission); every other fault is
// kept in the State. Reads are capped (MaxFDTSize, MaxBlobSize), and
// kho/in/sub_fdts/LUO is never read.
func ReadState(fsys fs.FS) (*State, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("reading KHO directory: %w", err)
	}
	st := &State{}
	for _, e := range entries {
		switch e.Name() {
		case "in":
			st.In = readSide(fsys, "in")
		case "out":
			st.Out = readSide(fsys, "out")
		}
	}
	return st, nil
}

// readSide reads the directory dir, "in" or "out".
func readSide(fsys fs.FS, dir string) *Side {
	s := &Side{Blobs: []Blob{}}
	b, err := readCapped(fsys, path.Join(dir, "fdt"), MaxFDTSize)
	switch {
	case err == nil:
		s.Tree, s.TreeErr = ParseTree(b)
		s.TreeErr = explainShortFDT(s.TreeErr, b, dir)
	case !errors.Is(err, fs.ErrNotExist):
		s.TreeErr = err
	}

	s.readBlobs(fsys, dir)
	if dir == "out" {
		s.readScratch(fsys)
		s.readFinalize(fsys)
	}
	return s
}

// explainShortFDT says why an FDT read from debugfs is shorter than its
// header's totalsize. Linux 7.2 creates kho/out/fdt with the size the FDT
// has in kho_init; subtrees added later (LUO, memblock with reserve_mem=)
// grow the FDT, but not the debugfs file. The handover itself is whole.
func explainShortFDT(err error, b []byte, dir string) error {
	if !errors.Is(err, ErrTruncated) || len(b) < 8 {
		return err
	}
	total := fdtOrder.Uint32(b[4:])
	if int64(total) <= int64(len(b)) {
		return err
	}
	return fmt.Errorf("%w; debugfs %s/fdt shows %d of the FDT's %d "+
		"bytes: the kernel sized the file before later subtrees grew "+
		"the tree, and %s/sub_fdts still lists every blob", err, dir,
		len(b), total, dir)
}

// readBlobs reads dir/sub_fdts.
func (s *Side) readBlobs(fsys fs.FS, dir string) {
	sub := path.Join(dir, "sub_fdts")
	entries, err := fs.ReadDir(fsys, sub)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.BlobsErr = fmt.Errorf("listing %s: %w", sub, err)
		}
		if len(entries) == 0 {
			return
		}
	}
	if len(entries) > maxBlobs {
		s.BlobsErr = fmt.Errorf("listing %s: %d entries, cap %d: %w",
			sub, len(entries), maxBlobs, ErrTooLarge)
		entries = entries[:maxBlobs]
	}

	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		bl := Blob{Name: e.Name()}
		if dir == "in" && bl.Name == LUOName {
			bl.Skipped = true
			bl.Size = s.treeSize(bl.Name)
			s.Blobs = append(s.Blobs, bl)
			continue
		}

		b, err := readCapped(fsys, path.Join(sub, bl.Name), MaxBlobSize)
		if err != nil {
			bl.Err = err
			s.Blobs = append(s.Blobs, bl)
			continue
		}
		bl.Size = len(b)
		bl.decode(b)
		s.Blobs = append(s.Blobs, bl)
	}
}

// treeSize returns the blob-size the root tree gives name, else 0.
func (s *Side) treeSize(name string) int {
	if s.Tree == nil {
		return 0
	}
	for _, st := range s.Tree.Subtrees {
		if st.Name == name && st.HasSize && st.Size <= MaxBlobSize {
			return int(st.Size)
		}
	}
	return 0
}

// decode decodes the known blobs and keeps their bytes.
func (bl *Blob) decode(b []byte) {
	switch bl.Name {
	case MetadataName:
		r, err := ParseRecord(b)
		if err == nil {
			bl.KexecMetadata = &r
		}
		bl.Err = err
	case MemblockName:
		bl.ReserveMem, bl.Err = ParseMemblock(b)
	case LUOName:
		bl.LUOCompatible, bl.Err = ParseLUO(b)
	default:
		return
	}
	bl.Data = b
}

// readScratch reads out/scratch_phys and out/scratch_len.
func (s *Side) readScratch(fsys fs.FS) {
	phys, errP := readCapped(fsys, "out/scratch_phys", maxTextSize)
	lens, errL := readCapped(fsys, "out/scratch_len", maxTextSize)
	switch {
	case errors.Is(errP, fs.ErrNotExist) && errors.Is(errL, fs.ErrNotExist):
		return
	case errP != nil:
		s.ScratchErr = errP
	case errL != nil:
		s.ScratchErr = errL
	default:
		s.Scratch, s.ScratchErr = ParseScratch(phys, lens)
	}
}

// readFinalize reads out/finalize, which the kernel prints as "%llu\n"
// (6.16-7.0).
func (s *Side) readFinalize(fsys fs.FS) {
	b, err := readCapped(fsys, "out/finalize", maxTextSize)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		s.FinalizeErr = err
		return
	}
	var v bool
	switch string(bytes.TrimSuffix(b, []byte("\n"))) {
	case "0":
	case "1":
		v = true
	default:
		s.FinalizeErr = fmt.Errorf("parsing out/finalize: got %q, "+
			"want 0 or 1: %w", clip(b), ErrMalformed)
		return
	}
	s.Finalized = &v
}

// readCapped reads the file name from fsys, at most limit bytes; a
// larger file is an error wrapping ErrTooLarge. Errors from Open pass
// through, so errors.Is(err, fs.ErrNotExist) works.
func readCapped(fsys fs.FS, name string, limit int) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("reading %s: more than %d bytes: %w", name,
			limit, ErrTooLarge)
	}
	return b, nil
}
