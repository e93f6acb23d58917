package chain

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
)

// Status is the part of `kexecmeta status --json` (schema 1) the chain
// checks; other fields are ignored. It is written from the documented
// output, not shared with the command, so the test checks the contract
// rather than the code.
type Status struct {
	Schema          int      `json:"schema"`
	Release         string   `json:"release"`
	Arch            string   `json:"arch"`
	PreviousRelease string   `json:"previous_release"`
	KexecCount      uint32   `json:"kexec_count"`
	KHO             KHO      `json:"kho"`
	Inherited       Handover `json:"inherited"`
	Outgoing        Handover `json:"outgoing"`
}

// KHO is the "kho" object: "yes", "no" or "unknown" for each.
type KHO struct {
	Built   string `json:"built"`
	Enabled string `json:"enabled"`
	Debugfs string `json:"debugfs"`
}

// Handover is the "inherited" or "outgoing" object: the kexec-metadata
// record this kernel received or will hand over, where it was read from,
// or why it is absent.
type Handover struct {
	Found  bool    `json:"found"`
	Source string  `json:"source"`
	Reason string  `json:"reason"`
	Detail string  `json:"detail"`
	Record *Record `json:"record"`
}

// Record is a kexec-metadata record.
type Record struct {
	Version         uint32 `json:"version"`
	PreviousRelease string `json:"previous_release"`
	KexecCount      uint32 `json:"kexec_count"`
}

// Check compares what each boot reported with the kernels booted:
// boots[i] must have run kernels[i], and every boot but the first must
// have received the record of the one before it through debugfs. It
// returns nil or one error per mismatch, joined.
func Check(kernels []Kernel, boots []Boot) error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if len(boots) != len(kernels) {
		fail("chain: got %d boots, want %d", len(boots), len(kernels))
	}
	for i, b := range boots {
		if i >= len(kernels) {
			break
		}
		k, s := kernels[i], b.Status
		want := uint32(i)
		if b.Exit != 0 {
			fail("boot %d: kexecmeta status exit %d, want 0", b.N, b.Exit)
		}
		if s.Schema != 1 {
			fail("boot %d: schema = %d, want 1", b.N, s.Schema)
		}
		if s.Release != k.Release {
			fail("boot %d: release = %q, want %q (series %s)", b.N,
				s.Release, k.Release, k.Series)
		}
		if s.KexecCount != want {
			fail("boot %d: kexec_count = %d, want %d", b.N,
				s.KexecCount, want)
		}

		// What this kernel received.
		in := s.Inherited
		if i == 0 {
			if in.Found {
				fail("boot %d: inherited.found = true on a cold boot",
					b.N)
			}
			if s.PreviousRelease != "" {
				fail("boot %d: previous_release = %q on a cold boot, "+
					"want \"\"", b.N, s.PreviousRelease)
			}
		} else {
			prev := kernels[i-1].Release
			if s.PreviousRelease != prev {
				fail("boot %d: previous_release = %q, want %q", b.N,
					s.PreviousRelease, prev)
			}
			switch {
			case !in.Found:
				fail("boot %d: inherited.found = false (reason %q, "+
					"detail %q), want true", b.N, in.Reason, in.Detail)
			case in.Source != "debugfs":
				fail("boot %d: inherited.source = %q, want \"debugfs\"",
					b.N, in.Source)
			}
			checkRecord(fail, b.N, "inherited", in.Record, prev, want)
		}

		// What this kernel will hand over.
		if !s.Outgoing.Found {
			fail("boot %d: outgoing.found = false (reason %q), want true",
				b.N, s.Outgoing.Reason)
		}
		checkRecord(fail, b.N, "outgoing", s.Outgoing.Record, k.Release,
			want+1)

		// How this boot ended.
		if i < len(kernels)-1 && b.Handoff == "" {
			fail("boot %d: no %q line before the kexec", b.N,
				HandoffPrefix)
		}
	}
	return errors.Join(errs...)
}

// checkRecord checks one kexec-metadata record.
func checkRecord(fail func(string, ...any), n int, which string, r *Record,
	prev string, count uint32) {
	if r == nil {
		fail("boot %d: %s.record = null, want a record", n, which)
		return
	}
	if r.Version != 1 {
		fail("boot %d: %s.record.version = %d, want 1", n, which,
			r.Version)
	}
	if r.PreviousRelease != prev {
		fail("boot %d: %s.record.previous_release = %q, want %q", n,
			which, r.PreviousRelease, prev)
	}
	if r.KexecCount != count {
		fail("boot %d: %s.record.kexec_count = %d, want %d", n, which,
			r.KexecCount, count)
	}
}

// WriteTable writes one row per boot: its number, release, the release
// it was kexec'd from, its kexec count and where its record was read
// from (or why there was none).
func WriteTable(w io.Writer, boots []Boot) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "BOOT\tRELEASE\tPREVIOUS\tCOUNT\tRECORD FROM")
	for _, b := range boots {
		s := b.Status
		prev := s.PreviousRelease
		if prev == "" {
			prev = "-"
		}
		from := s.Inherited.Source
		if !s.Inherited.Found {
			from = "absent: " + s.Inherited.Reason
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\n", b.N, s.Release, prev,
			s.KexecCount, from)
	}
	return tw.Flush()
}
