package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kexecmeta/kexecmeta/pkg/kexecload"
	"github.com/kexecmeta/kexecmeta/pkg/kho"
)

// execOpts are the options of exec and boot.
type execOpts struct {
	syncTimeout time.Duration
	noSync      bool
}

// check refuses options that contradict each other, after parsing fs.
func (o execOpts) check(fs *flag.FlagSet) error {
	switch {
	case o.syncTimeout < 0:
		return usageError("--sync-timeout %v: want 0 (no limit) or more",
			o.syncTimeout)
	case flagGiven(fs, "sync-timeout") && o.noSync:
		return usageError("--sync-timeout and --no-sync exclude each other")
	}
	return nil
}

func (o *execOpts) flags(fs *flag.FlagSet) {
	fs.DurationVar(&o.syncTimeout, "sync-timeout", 30*time.Second,
		"give up on sync after this long without progress (0: never)")
	fs.BoolVar(&o.noSync, "no-sync", false,
		"do not flush filesystems before the handoff")
}

// loadedImage is what load remembers for exec, in stateDir.
type loadedImage struct {
	Kernel  string   `json:"kernel"`
	Release string   `json:"release,omitempty"`
	Initrds []string `json:"initrds,omitempty"`
	Cmdline string   `json:"cmdline"`
}

func (e *env) loadedPath() string {
	return filepath.Join(e.stateDir, "loaded.json")
}

func (e *env) saveLoaded(li loadedImage) error {
	if err := os.MkdirAll(e.stateDir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(li)
	if err != nil {
		return err
	}
	return os.WriteFile(e.loadedPath(), b, 0o600)
}

// readLoaded returns what load remembered, nil when it remembers
// nothing (the image may have been loaded by another tool).
func (e *env) readLoaded() *loadedImage {
	b, err := os.ReadFile(e.loadedPath())
	if err != nil {
		return nil
	}
	var li loadedImage
	if json.Unmarshal(b, &li) != nil {
		return nil
	}
	return &li
}

func (e *env) exec(args []string) error {
	fs := newFlagSet("exec")
	var o execOpts
	o.flags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("exec takes no arguments, got %q; "+
			"use boot KERNEL to load and exec", pos)
	}
	if err := o.check(fs); err != nil {
		return err
	}
	return e.handoff(o)
}

// handoff checks the loaded image and the outgoing record, reports the
// handoff, flushes the filesystems and kexecs.
func (e *env) handoff(o execOpts) error {
	// Refuse before anything else when nothing is loaded.
	loaded, err := e.sys.Loaded()
	if err != nil {
		return err
	}
	if !loaded {
		return kexecload.ErrNotLoaded
	}

	// Read and verify what this kernel hands on.
	live, err := e.readLive()
	if err != nil {
		return err
	}
	defer live.Close()
	r := newStatus(&live.System, live.Mounted())
	if err := verifyOutgoing(r); err != nil {
		return err
	}

	// Say what is about to happen, to the console and the kernel log.
	line := handoffLine(r, e.readLoaded())
	fmt.Fprintln(e.stdout, line)
	if f, err := os.OpenFile(e.kmsg, os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(f, line)
		f.Close()
	}

	// Flush, unmount what was mounted, and go.
	if !o.noSync {
		err := e.sys.SyncWatched(o.syncTimeout, func(p kexecload.SyncProgress) {
			fmt.Fprintf(e.stderr, "kexecmeta: syncing: %d kB dirty after %v\n",
				p.DirtyKB, p.Elapsed.Round(time.Second))
		})
		if err != nil {
			fmt.Fprintf(e.stderr, "kexecmeta: warning: %v; handing off "+
				"anyway\n", err)
		}
	}
	// 6.16-7.0 kernels attach the handover only once finalized.
	if finalizeMoment(live.Release, live.Cmdline) == finalizeBeforeReboot &&
		live.KHO != nil {
		if err := e.finalize(); err != nil {
			return err
		}
	}
	if err := live.Close(); err != nil {
		return err
	}
	return e.sys.Exec()
}

// verifyOutgoing checks the record this kernel will hand on: written by
// this kernel, one more than the count it inherited. Without KHO debugfs
// there is nothing to check.
func verifyOutgoing(r statusReport) error {
	out := r.Outgoing
	if !out.Found {
		return nil
	}
	if got := out.Record.PreviousRelease; got != r.Release {
		return fmt.Errorf("outgoing kexec-metadata names release %q, "+
			"want this kernel's %q", got, r.Release)
	}
	if r.Inherited.Found || r.Inherited.Reason == kho.ReasonColdBoot {
		want := r.KexecCount + 1
		if got := out.Record.KexecCount; got != want {
			return fmt.Errorf("outgoing kexec-metadata count is %d, "+
				"want %d (inherited %d + 1)", got, want, r.KexecCount)
		}
	}
	return nil
}

// handoffLine is the one line printed before the kexec.
func handoffLine(r statusReport, li *loadedImage) string {
	from := "cold boot"
	if r.Inherited.Found {
		from = "from " + r.Inherited.Record.PreviousRelease
	} else if r.Inherited.Reason != kho.ReasonColdBoot {
		from = "from unknown: " + string(r.Inherited.Reason)
	}
	target := "the loaded image"
	if li != nil {
		target = li.Kernel
		if li.Release != "" {
			target += " (" + li.Release + ")"
		}
	}
	next := "next count unknown: " + string(r.Outgoing.Reason)
	if r.Outgoing.Found {
		next = fmt.Sprintf("next kernel sees count %d",
			r.Outgoing.Record.KexecCount)
	}
	return fmt.Sprintf("kexecmeta: handoff: %s count %d (%s) -> %s; %s",
		r.Release, r.KexecCount, from, target, next)
}

func (e *env) unload(args []string) error {
	fs := newFlagSet("unload")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("unload takes no arguments, got %q", pos)
	}
	loaded, err := e.sys.Loaded()
	if err != nil {
		return err
	}
	if err := e.sys.Unload(); err != nil {
		return err
	}
	os.Remove(e.loadedPath())
	if !loaded {
		fmt.Fprintln(e.stdout, "kexecmeta: nothing was loaded")
		return nil
	}
	fmt.Fprintln(e.stdout, "kexecmeta: unloaded")
	return nil
}
