package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kexecmeta/kexecmeta/pkg/kexecload"
	"github.com/u-root/u-root/pkg/uroot/unixflag"
)

// loadOpts are the options of load and boot.
type loadOpts struct {
	initrds     unixflag.StringArray
	cmdline     string
	reuse       bool
	appends     unixflag.StringArray
	removes     unixflag.StringArray
	noKHOParam  bool
	cmdlineSeen bool
}

func (o *loadOpts) flags(fs *flag.FlagSet) {
	fs.Var(&o.initrds, "initrd", "an initrd (repeatable, joined in order)")
	fs.Func("cmdline", "the new kernel's command line", func(s string) error {
		o.cmdline, o.cmdlineSeen = s, true
		return nil
	})
	fs.BoolVar(&o.reuse, "reuse-cmdline", false,
		"start from this kernel's command line")
	fs.Var(&o.appends, "append", "add to the command line (repeatable)")
	fs.Var(&o.removes, "remove", "drop KEY and KEY=... (repeatable)")
	fs.BoolVar(&o.noKHOParam, "no-kho-param", false,
		"do not add kho=on when this kernel has KHO on")
}

func (e *env) load(args []string) error {
	fs := newFlagSet("load")
	var o loadOpts
	o.flags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	kernel, err := oneKernel(pos)
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
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	kernel, err := oneKernel(pos)
	if err != nil {
		return err
	}
	if err := e.doLoad(kernel, lo); err != nil {
		return err
	}
	return e.handoff(xo)
}

func oneKernel(pos []string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usageError("no KERNEL given")
	case 1:
		return pos[0], nil
	}
	return "", usageError("one KERNEL wanted, got %q", pos)
}

// buildCmdline makes the new kernel's command line from the options.
func (e *env) buildCmdline(o loadOpts, khoOn bool) (string, error) {
	if o.reuse && o.cmdlineSeen {
		return "", usageError("--cmdline and --reuse-cmdline exclude " +
			"each other")
	}
	line, err := kexecload.BuildCmdline(kexecload.CmdlineOptions{
		Base:        o.cmdline,
		Reuse:       o.reuse,
		ProcCmdline: e.procCmdline,
		Append:      o.appends,
		Remove:      o.removes,
	})
	if err != nil {
		return "", err
	}
	if khoOn && !o.noKHOParam {
		var added bool
		line, added, err = kexecload.EnsureParam(line, "kho", "on")
		if err != nil {
			return "", err
		}
		if added {
			fmt.Fprintln(e.stderr, "kexecmeta: added kho=on to the "+
				"command line (this kernel has KHO on; --no-kho-param "+
				"to leave it out)")
		}
	}
	return line, nil
}

// doLoad checks and loads one kernel.
func (e *env) doLoad(kernel string, o loadOpts) error {
	// Whether this kernel runs KHO decides the kho= default.
	live, err := e.readLive()
	if err != nil {
		return err
	}
	khoOn := live.KHO != nil
	if err := live.Close(); err != nil {
		return err
	}

	line, err := e.buildCmdline(o, khoOn)
	if err != nil {
		return err
	}

	// Identify the image and check the line against its limit.
	kf, err := os.Open(kernel)
	if err != nil {
		return fmt.Errorf("opening kernel: %w", err)
	}
	defer kf.Close()
	fi, err := kf.Stat()
	if err != nil {
		return fmt.Errorf("opening kernel: %w", err)
	}
	img, err := kexecload.IdentifyKernel(kf, fi.Size())
	if err != nil {
		return fmt.Errorf("kernel %s: %w", kernel, err)
	}
	if err := kexecload.CheckCmdlineLen(line, int(img.CmdlineSize)); err != nil {
		return fmt.Errorf("kernel %s: %w", kernel, err)
	}

	// Join the initrds and load.
	var initrd *os.File
	if len(o.initrds) > 0 {
		f, _, err := kexecload.JoinInitrds(o.initrds)
		if err != nil {
			return err
		}
		defer f.Close()
		initrd = f
	}
	if err := e.sys.FileLoad(kf, initrd, line, 0); err != nil {
		return err
	}

	li := loadedImage{Kernel: kernel, Release: img.Release,
		Initrds: o.initrds, Cmdline: line}
	if err := e.saveLoaded(li); err != nil {
		fmt.Fprintf(e.stderr, "kexecmeta: warning: remembering the "+
			"loaded image: %v\n", err)
	}
	fmt.Fprintf(e.stdout, "kexecmeta: loaded %s (%s %s) with %d initrd(s); "+
		"cmdline: %s\n", kernel, img.Format, img.Release, len(o.initrds),
		line)
	return nil
}
