package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/kexecmeta/kexecmeta/pkg/kexecload"
	"github.com/kexecmeta/kexecmeta/pkg/kho"
	"github.com/u-root/u-root/pkg/uroot/unixflag"
)

// loadOpts are the options of load and boot.
type loadOpts struct {
	initrds         unixflag.StringArray
	cmdline         string
	reuse           bool
	appends         unixflag.StringArray
	removes         unixflag.StringArray
	noKHOParam      bool
	requireHandover bool
	dryRun          bool
	json            bool
}

func (o *loadOpts) flags(fs *flag.FlagSet) {
	fs.Var(&o.initrds, "initrd", "an initrd (repeatable, joined in order)")
	fs.StringVar(&o.cmdline, "cmdline", "", "the new kernel's command line")
	fs.BoolVar(&o.reuse, "reuse-cmdline", false,
		"start from this kernel's command line")
	fs.Var(&o.appends, "append", "add to the command line (repeatable)")
	fs.Var(&o.removes, "remove", "drop KEY and KEY=... (repeatable)")
	fs.BoolVar(&o.noKHOParam, "no-kho-param", false,
		"do not add kho=on when this kernel has KHO on")
	fs.BoolVar(&o.requireHandover, "require-handover", false,
		"refuse a kexec that will not carry the KHO handover")
	fs.BoolVar(&o.dryRun, "dry-run", false,
		"print the plan and load nothing")
	fs.BoolVar(&o.json, "json", false, "with --dry-run: print JSON")
}

func (e *env) load(args []string) error {
	fs := newFlagSet("load")
	var o loadOpts
	o.flags(fs)
	kernel, err := parseKernelArgs(fs, args)
	if err != nil {
		return err
	}
	return e.doLoad(kernel, o)
}

func (e *env) boot(args []string) error {
	fs := newFlagSet("boot")
	var lo loadOpts
	var xo execOpts
	lo.flags(fs)
	xo.flags(fs)
	kernel, err := parseKernelArgs(fs, args)
	if err != nil {
		return err
	}
	if err := xo.check(fs); err != nil {
		return err
	}
	if err := e.doLoad(kernel, lo); err != nil {
		return err
	}
	if lo.dryRun {
		return nil
	}
	return e.handoff(xo)
}

// parseKernelArgs parses flags around exactly one KERNEL.
func parseKernelArgs(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", err
	}
	switch len(pos) {
	case 0:
		return "", usageError("no KERNEL given")
	case 1:
		return pos[0], nil
	}
	return "", usageError("one KERNEL wanted, got %q", pos)
}

// loadPlan is everything load decided before the call; `load --dry-run
// --json` prints it.
type loadPlan struct {
	Schema   int       `json:"schema"`
	Kernel   string    `json:"kernel"`
	Image    planImage `json:"image"`
	Initrds  []string  `json:"initrds"`
	Initrd   int64     `json:"initrd_size"`
	Cmdline  string    `json:"cmdline"`
	CmdLen   int       `json:"cmdline_len"`
	CmdMax   int       `json:"cmdline_max"`
	KHOParam bool      `json:"kho_param_added"`
	Flags    int       `json:"flags"`
	KHO      planKHO   `json:"kho"`
}

type planImage struct {
	Format    kexecload.Format `json:"format"`
	Arch      string           `json:"arch"`
	Release   string           `json:"release"`
	Size      int64            `json:"size"`
	MemSize   uint64           `json:"mem_size"`
	Unwrapped bool             `json:"unwrapped"`
	Notes     []string         `json:"notes,omitempty"`
}

// planKHO is the KHO verdict: whether this kernel runs KHO, whether the
// segments fit the scratch areas, and whether the next kernel will take
// the handover.
type planKHO struct {
	On       bool                `json:"on"`
	Scratch  []kho.ScratchArea   `json:"scratch,omitempty"`
	Segments []kexecload.Segment `json:"segments,omitempty"`
	Fits     bool                `json:"fits"`
	FitError string              `json:"fit_error,omitempty"`
	Carries  bool                `json:"carries_handover"`
	Why      string              `json:"handover_note,omitempty"`
	Finalize string              `json:"finalize"`
}

// planSchema is the version of the `load --dry-run --json` output.
const planSchema = 1

// check refuses options that contradict each other.
func (o loadOpts) check() error {
	switch {
	case o.reuse && o.cmdline != "":
		return usageError("--cmdline and --reuse-cmdline exclude each " +
			"other: use --reuse-cmdline with --append and --remove")
	case o.json && !o.dryRun:
		return usageError("--json goes with --dry-run")
	}
	return nil
}

// Finalize moments, for 6.16-7.0 kernels.
const (
	finalizeNone         = "none"
	finalizeBeforeLoad   = "before-load"
	finalizeBeforeReboot = "before-reboot"
)

// buildCmdline makes the new kernel's command line from the options.
func (e *env) buildCmdline(o loadOpts, khoOn bool) (string, bool, error) {
	line, err := kexecload.BuildCmdline(kexecload.CmdlineOptions{
		Base:        o.cmdline,
		Reuse:       o.reuse,
		ProcCmdline: e.procCmdline,
		Append:      o.appends,
		Remove:      o.removes,
	})
	if err != nil {
		return "", false, err
	}
	if !khoOn || o.noKHOParam {
		return line, false, nil
	}
	return kexecload.EnsureParam(line, "kho", "on")
}

// finalizeMoment says when a kernel of this release needs out/finalize.
func finalizeMoment(release, cmdline string) string {
	v, err := kho.ParseRelease(release)
	if err != nil || !kho.NeedsFinalize(v) {
		return finalizeNone
	}
	if on, _ := kho.ParamOn(cmdline, "liveupdate"); on {
		// LUO finalizes by itself on these kernels.
		return finalizeNone
	}
	if kho.FinalizeBeforeLoad(v) {
		return finalizeBeforeLoad
	}
	return finalizeBeforeReboot
}

// doLoad plans, checks and loads one kernel.
func (e *env) doLoad(kernel string, o loadOpts) error {
	live, err := e.readLive()
	if err != nil {
		return err
	}
	defer live.Close()
	if err := o.check(); err != nil {
		return err
	}
	p := loadPlan{Schema: planSchema, Kernel: kernel, Initrds: o.initrds}
	p.KHO.On = live.KHO != nil

	// The command line.
	p.Cmdline, p.KHOParam, err = e.buildCmdline(o, p.KHO.On)
	if err != nil {
		return err
	}

	// The kernel image: identified, unwrapped when the kernel would
	// refuse it raw, checked against the line.
	kf, img, err := openKernel(kernel, &p.Image)
	if err != nil {
		return err
	}
	defer kf.Close()
	p.CmdLen, p.CmdMax = len(p.Cmdline), img.MaxCmdlineLen()
	if err := kexecload.CheckCmdlineLen(p.Cmdline, p.CmdMax); err != nil {
		return fmt.Errorf("kernel %s: %w", kernel, err)
	}

	// The initrds, checked without reading them.
	if len(o.initrds) > 0 {
		if p.Initrd, err = kexecload.InitrdSize(o.initrds); err != nil {
			return err
		}
	} else {
		p.Flags |= kexecload.FileNoInitramfs
	}

	// KHO: scratch room, the next kernel's ABI, and finalize.
	if err := e.preflightKHO(&p, &live.System, img, o); err != nil {
		return err
	}

	if o.dryRun {
		return printPlan(e.stdout, p, o.json)
	}
	if p.KHOParam {
		fmt.Fprintln(e.stderr, "kexecmeta: added kho=on to the command "+
			"line (this kernel has KHO on; --no-kho-param leaves it out)")
	}

	// Join the initrds and load.
	var initrd *os.File
	if len(o.initrds) > 0 {
		initrd, p.Initrd, err = kexecload.JoinInitrds(o.initrds)
		if err != nil {
			return err
		}
		defer initrd.Close()
	}
	if p.KHO.Finalize == finalizeBeforeLoad {
		if err := e.finalize(); err != nil {
			return err
		}
	}
	if err := e.sys.FileLoad(kf, initrd, p.Cmdline, 0); err != nil {
		return err
	}

	li := loadedImage{Kernel: kernel, Release: img.Release,
		Initrds: o.initrds, Cmdline: p.Cmdline}
	if err := e.saveLoaded(li); err != nil {
		fmt.Fprintf(e.stderr, "kexecmeta: warning: remembering the "+
			"loaded image: %v\n", err)
	}
	fmt.Fprintf(e.stdout, "kexecmeta: loaded %s (%s %s), %d initrd(s), "+
		"cmdline: %s\n", kernel, img.Format, img.Release, len(o.initrds),
		p.Cmdline)
	return nil
}

// openKernel opens and identifies a kernel, unwrapping it into memory
// when kexec_file_load would refuse its compressed form.
func openKernel(path string, pi *planImage) (*os.File, *kexecload.Image,
	error) {
	// Stat first: opening a FIFO would block.
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("opening kernel: %w", err)
	case !fi.Mode().IsRegular():
		return nil, nil, kexecload.NotRegular("kernel", path, fi.Mode())
	case fi.Size() == 0:
		return nil, nil, fmt.Errorf("kernel %s: the file is empty", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening kernel: %w", err)
	}
	var img *kexecload.Image
	if err == nil {
		img, err = kexecload.IdentifyKernel(f, fi.Size())
	}
	if err == nil {
		err = img.CheckKexecFile(runtime.GOARCH)
		if errors.Is(err, kexecload.ErrNeedsUnwrap) {
			var u *os.File
			u, img, err = kexecload.UnwrapKernel(f, img)
			if err == nil {
				f.Close()
				f, pi.Unwrapped = u, true
				err = img.CheckKexecFile(runtime.GOARCH)
			}
		}
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("kernel %s: %w", path, err)
	}
	*pi = planImage{Format: img.Format, Arch: img.Arch,
		Release: img.Release, Size: img.Size, MemSize: img.MemSize,
		Unwrapped: pi.Unwrapped, Notes: img.Notes}
	return f, img, nil
}

// preflightKHO fills in the KHO verdict, and refuses a load that cannot
// work (segments outside scratch) or that --require-handover forbids.
func (e *env) preflightKHO(p *loadPlan, s *kho.System,
	img *kexecload.Image, o loadOpts) error {
	p.KHO.Finalize = finalizeNone
	if !p.KHO.On {
		if on, _ := kho.ParamOn(s.Cmdline, "kho"); on {
			in := s.Inherited()
			fmt.Fprintf(e.stderr, "kexecmeta: warning: this kernel was "+
				"booted with KHO on but KHO is off (%s: %s): the next "+
				"kernel gets no handover and starts a new chain\n",
				in.Reason, in.Detail)
			if o.requireHandover {
				return fmt.Errorf("%w: KHO is off in this kernel",
					kexecload.ErrNoHandover)
			}
		}
		return nil
	}
	p.KHO.Finalize = finalizeMoment(s.Release, s.Cmdline)

	h := kexecload.PredictHandover(s.Release, img.Release)
	p.KHO.Carries, p.KHO.Why = h.Carries, h.Reason
	if !h.Carries {
		if o.requireHandover {
			return h.Err()
		}
		fmt.Fprintf(e.stderr, "kexecmeta: warning: %v\n", h.Err())
	}

	st, err := kho.ReadState(s.KHO)
	if err != nil || st.Out == nil || st.Out.Scratch == nil {
		p.KHO.FitError = "scratch areas unknown"
		return nil
	}
	p.KHO.Scratch = st.Out.Scratch
	p.KHO.Segments = kexecload.Segments(img, p.Initrd)
	if err := kexecload.FitScratch(p.KHO.Segments, p.KHO.Scratch); err != nil {
		p.KHO.FitError = err.Error()
		if !o.dryRun {
			return err
		}
		return nil
	}
	p.KHO.Fits = true
	return nil
}

// finalize writes 1 to out/finalize, as 6.16-7.0 kernels need before
// the handoff. A kernel that is finalized already is left as it is.
func (e *env) finalize() error {
	path := filepath.Join(e.khoDir, "out", "finalize")
	b, err := e.sys.ReadFile(path)
	if err == nil && len(b) > 0 && b[0] == '1' {
		return nil
	}
	if err := e.sys.WriteFile(path, []byte("1\n")); err != nil {
		return &kexecload.CallError{Call: "write(" + path + ", \"1\")",
			Err: err}
	}
	return nil
}

// printPlan writes what load would do.
func printPlan(w io.Writer, p loadPlan, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(p)
	}
	fmt.Fprintf(w, "kernel:    %s: %s %s, %d bytes, %d in memory",
		p.Kernel, p.Image.Format, p.Image.Release, p.Image.Size,
		p.Image.MemSize)
	if p.Image.Unwrapped {
		fmt.Fprint(w, " (unwrapped)")
	}
	fmt.Fprintln(w)
	for _, i := range p.Initrds {
		fmt.Fprintf(w, "initrd:    %s\n", i)
	}
	fmt.Fprintf(w, "initrds:   %d bytes in all\n", p.Initrd)
	if p.Cmdline == "" {
		fmt.Fprintln(w, "cmdline:   (empty)")
	} else {
		fmt.Fprintf(w, "cmdline:   %s\n", p.Cmdline)
	}
	fmt.Fprintf(w, "length:    %d of at most %d bytes\n", p.CmdLen, p.CmdMax)
	if !p.KHO.On {
		_, err := fmt.Fprintln(w, "kho:       off in this kernel")
		return err
	}
	fmt.Fprintf(w, "kho:       on; finalize: %s\n", p.KHO.Finalize)
	fmt.Fprintf(w, "handover:  carries %v", p.KHO.Carries)
	if p.KHO.Why != "" {
		fmt.Fprintf(w, " (%s)", p.KHO.Why)
	}
	fmt.Fprintln(w)
	for _, a := range p.KHO.Scratch {
		fmt.Fprintf(w, "scratch:   %-7s %#x, %.1f MiB\n", a.Kind, a.Phys,
			float64(a.Len)/(1<<20))
	}
	if p.KHO.Fits {
		_, err := fmt.Fprintln(w, "fits:      yes")
		return err
	}
	_, err := fmt.Fprintf(w, "fits:      no: %s\n", p.KHO.FitError)
	return err
}
