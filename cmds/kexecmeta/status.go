package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/kexecmeta/kexecmeta/pkg/kho"
)

// statusSchema is the version of the status JSON; it changes only when a
// field changes meaning or goes away.
const statusSchema = 1

// statusReport is what `status --json` prints. README documents each
// field.
type statusReport struct {
	Schema          int             `json:"schema"`
	Release         string          `json:"release"`
	Arch            string          `json:"arch"`
	PreviousRelease string          `json:"previous_release"`
	KexecCount      uint32          `json:"kexec_count"`
	KHO             khoReport       `json:"kho"`
	Inherited       kho.Inheritance `json:"inherited"`
	Outgoing        kho.Outgoing    `json:"outgoing"`
}

// khoReport says whether KHO can work on this kernel.
type khoReport struct {
	Built   kho.Tristate `json:"built"`
	Enabled kho.Tristate `json:"enabled"`
	Debugfs kho.Tristate `json:"debugfs"`
	// Mounted is the debugfs kexecmeta mounted to read it (and has
	// unmounted again), "" when it was mounted already or not needed.
	Mounted string `json:"mounted,omitempty"`
}

// newStatus builds the report from one boot's evidence.
func newStatus(s *kho.System, mounted string) statusReport {
	r := statusReport{
		Schema:  statusSchema,
		Release: s.Release,
		Arch:    s.Arch,
		KHO: khoReport{
			Built:   s.Built(),
			Enabled: s.Enabled(),
			Debugfs: kho.No,
			Mounted: mounted,
		},
		Inherited: s.Inherited(),
		Outgoing:  s.Outgoing(),
	}
	switch {
	case s.KHO != nil:
		r.KHO.Debugfs = kho.Yes
	case s.Denied != "":
		r.KHO.Debugfs = kho.Unknown
	}
	if rec := r.Inherited.Record; rec != nil {
		r.PreviousRelease = rec.PreviousRelease
		r.KexecCount = rec.KexecCount
	}
	return r
}

func (e *env) status(args []string) error {
	fs := newFlagSet("status")
	asJSON := fs.Bool("json", false, "print one JSON object")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("status takes no arguments, got %q", pos)
	}

	live, err := e.readLive()
	if err != nil {
		return err
	}
	r := newStatus(&live.System, live.Mounted())
	if err := live.Close(); err != nil {
		return err
	}

	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(r)
	}
	return printStatus(e.stdout, r)
}

// printStatus writes the report for people.
func printStatus(w io.Writer, r statusReport) error {
	fmt.Fprintf(w, "kernel:      %s (%s)\n", r.Release, r.Arch)
	fmt.Fprintf(w, "kho:         built %s, enabled %s, debugfs %s\n",
		r.KHO.Built, r.KHO.Enabled, r.KHO.Debugfs)
	in := r.Inherited
	if in.Found {
		fmt.Fprintf(w, "exec from:   %s (record v%d, from %s)\n",
			in.Record.PreviousRelease, in.Record.Version, in.Source)
	} else {
		fmt.Fprintf(w, "exec from:   none (%s: %s)\n", in.Reason, in.Detail)
	}
	fmt.Fprintf(w, "kexec count: %d\n", r.KexecCount)
	out := r.Outgoing
	if out.Found {
		_, err := fmt.Fprintf(w, "hands on:    %s, count %d (from %s)\n",
			out.Record.PreviousRelease, out.Record.KexecCount, out.Source)
		return err
	}
	_, err := fmt.Fprintf(w, "hands on:    nothing (%s: %s)\n", out.Reason,
		out.Detail)
	return err
}
