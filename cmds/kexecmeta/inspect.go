package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kexecmeta/kexecmeta/pkg/kho"
)

// inspectReport is what `inspect --json` prints: the status and the whole
// handover state. README documents each field.
type inspectReport struct {
	statusReport

	// ABI is the KHO generation this kernel's release writes and
	// accepts, "unknown" outside the releases kexecmeta knows.
	ABI kho.Generation `json:"abi"`

	// Handover is the debugfs kho directory decoded; null without it.
	Handover *kho.State `json:"handover"`

	// HandoverError says why the directory could not be read.
	HandoverError string `json:"handover_error,omitempty"`
}

func newInspect(s *kho.System, mounted string) inspectReport {
	r := inspectReport{statusReport: newStatus(s, mounted)}
	if v, err := kho.ParseRelease(s.Release); err == nil &&
		r.KHO.Built != kho.No {
		r.ABI, _ = kho.GenerationOfRelease(v)
	}
	if s.KHO != nil {
		st, err := kho.ReadState(s.KHO)
		if err != nil {
			r.HandoverError = err.Error()
		}
		r.Handover = st
	}
	return r
}

func (e *env) inspect(args []string) error {
	fs := newFlagSet("inspect")
	asJSON := fs.Bool("json", false, "print one JSON object")
	dir := fs.String("dir", "", "read a capture instead of this kernel")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("inspect takes no arguments, got %q", pos)
	}
	fromDir := flagGiven(fs, "dir")
	if fromDir && *dir == "" {
		return usageError("--dir needs a directory, got \"\"")
	}

	var r inspectReport
	if fromDir {
		s, err := kho.ReadCapture(*dir)
		if err != nil {
			return err
		}
		r = newInspect(s, "")
	} else {
		live, err := e.readLive()
		if err != nil {
			return err
		}
		r = newInspect(&live.System, live.Mounted())
		if err := live.Close(); err != nil {
			return err
		}
	}

	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(r)
	}
	if err := printStatus(e.stdout, r.statusReport); err != nil {
		return err
	}
	return printHandover(e.stdout, r)
}

// printHandover writes the handover state for people.
func printHandover(w io.Writer, r inspectReport) error {
	fmt.Fprintf(w, "abi:         %s\n", r.ABI)
	if r.Handover == nil {
		_, err := fmt.Fprintln(w, "handover:    no KHO debugfs directory")
		return err
	}
	if r.HandoverError != "" {
		fmt.Fprintf(w, "handover:    %s\n", r.HandoverError)
	}
	for _, side := range []struct {
		name string
		s    *kho.Side
	}{{"in", r.Handover.In}, {"out", r.Handover.Out}} {
		if side.s == nil {
			fmt.Fprintf(w, "%s:\n  absent\n", side.name)
			continue
		}
		fmt.Fprintf(w, "%s:\n", side.name)
		printSide(w, side.s)
	}
	return nil
}

func printSide(w io.Writer, s *kho.Side) {
	switch {
	case s.Tree != nil:
		t := s.Tree
		fmt.Fprintf(w, "  fdt: %s (%s), preserved-memory-map %#x\n",
			t.Compatible, t.Generation, t.MemoryMap)
		for _, st := range t.Subtrees {
			fmt.Fprintf(w, "    %-16s at %#x", st.Name, st.Address)
			if st.HasSize {
				fmt.Fprintf(w, ", %d bytes", st.Size)
			}
			if st.Err != nil {
				fmt.Fprintf(w, " (broken: %v)", st.Err)
			}
			fmt.Fprintln(w)
		}
	case s.TreeErr != nil:
		fmt.Fprintf(w, "  fdt: %v\n", s.TreeErr)
	default:
		fmt.Fprintf(w, "  fdt: absent\n")
	}
	for _, b := range s.Blobs {
		fmt.Fprintf(w, "  blob %-16s %6d bytes", b.Name, b.Size)
		switch {
		case b.Skipped:
			fmt.Fprint(w, "  (not read: freed early in boot)")
		case b.Err != nil:
			fmt.Fprintf(w, "  %v", b.Err)
		case b.KexecMetadata != nil:
			m := b.KexecMetadata
			fmt.Fprintf(w, "  v%d %s, count %d", m.Version,
				m.PreviousRelease, m.KexecCount)
		case b.ReserveMem != nil:
			for _, rm := range b.ReserveMem {
				fmt.Fprintf(w, "  %s %#x+%#x", rm.Name, rm.Start, rm.Size)
			}
		case b.LUOCompatible != "":
			fmt.Fprintf(w, "  %s", b.LUOCompatible)
		}
		fmt.Fprintln(w)
	}
	for _, a := range s.Scratch {
		fmt.Fprintf(w, "  scratch %-7s %#x, %d MiB\n", a.Kind, a.Phys,
			a.Len>>20)
	}
	if s.ScratchErr != nil {
		fmt.Fprintf(w, "  scratch: %v\n", s.ScratchErr)
	}
	if s.Finalized != nil {
		fmt.Fprintf(w, "  finalized: %v\n", *s.Finalized)
	}
}

func (e *env) capture(args []string) error {
	fs := newFlagSet("capture")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return usageError("capture takes one DIR, got %q", pos)
	}
	// The directory is made, but not its parents: a typo should not
	// leave a tree behind.
	if _, err := os.Stat(filepath.Dir(filepath.Clean(pos[0]))); err != nil {
		return fmt.Errorf("capture directory: %w", err)
	}

	live, err := e.readLive()
	if err != nil {
		return err
	}
	defer live.Close()
	if live.Denied != "" {
		return fmt.Errorf("capture needs root: %s", live.Denied)
	}
	if err := kho.WriteCapture(pos[0], &live.System); err != nil {
		return err
	}
	if err := live.Close(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "kexecmeta: captured %s into %s\n", live.Release,
		pos[0])
	return nil
}
