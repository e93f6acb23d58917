// Command kexecmeta reads the kexec chain that Linux Kexec HandOver (KHO)
// passes from kernel to kernel, and loads and hands off to the next
// kernel so that the chain goes on.
//
// Synopsis:
//
//	kexecmeta status [--json]
//	kexecmeta inspect [--dir DIR] [--json]
//	kexecmeta capture DIR
//	kexecmeta load KERNEL [--initrd FILE]... [--cmdline S | --reuse-cmdline]
//	                      [--append S]... [--remove KEY]... [--no-kho-param]
//	                      [--require-handover] [--dry-run [--json]]
//	kexecmeta exec [--sync-timeout D | --no-sync]
//	kexecmeta boot KERNEL [load options] [exec options]
//	kexecmeta unload
//
// Description:
//
// Linux 7.1 and later with KHO on (kho=on) hand a kexec-metadata record
// to the next kernel: the release of the kernel that did the kexec and
// the number of kexecs since the last cold boot. `status` shows the
// record this kernel inherited (from the KHO debugfs blob, else from the
// kernel's `KHO: exec from:` log line, else why there is none) and the
// record it will hand on. debugfs is mounted when needed and unmounted
// again. `inspect` adds the whole handover state: the root FDT of each
// side with its ABI generation and sub-nodes, each blob decoded where
// known, the scratch areas and the finalize state. `capture DIR` saves
// the evidence (the debugfs kho directory, release, command line, KHO
// config and KHO log lines) for a bug report; `inspect --dir DIR` reads
// it back on any machine.
//
// `load` loads KERNEL with kexec_file_load(2), the only call that carries
// KHO (kexecmeta never falls back to kexec_load(2)). `exec` flushes the
// filesystems, prints one handoff line to stdout and the kernel log and
// calls reboot(LINUX_REBOOT_CMD_KEXEC). `boot` is load then exec.
// `unload` unloads the loaded image. Flags may come before or after
// KERNEL.
//
// Options:
//
//	--json            status, inspect: one JSON object on one line
//	--dir DIR         inspect: read a capture instead of this kernel
//	--initrd FILE     an initrd; several are joined in order
//	--cmdline S       the new kernel's command line
//	--reuse-cmdline   start from this kernel's command line, without
//	                  BOOT_IMAGE= and initrd=, duplicates removed
//	--append S        add S to the command line (repeatable)
//	--remove KEY      drop every KEY and KEY=... (repeatable)
//	--no-kho-param    do not add kho=on when this kernel runs KHO
//	--require-handover refuse a kexec the next kernel will not take
//	                  the KHO handover from (an ABI change, KHO off)
//	--dry-run         load: print the plan and load nothing (--json)
//	--sync-timeout D  give up on sync(2) after D without progress (30s)
//	--no-sync         do not flush filesystems before the handoff
//
// Limits:
//
// The scratch preflight estimates the boot parameters and purgatory
// segments with generous fixed sizes (64 KiB each); the kernel's own
// placement is the final word. The next kernel's KHO ABI is predicted
// from its release, which compressed images do not show until unwrapped
// (only gzip is unwrapped), and releases after 7.3 are "unknown".
// TODO(kexecmeta): arm64 Image loading is implemented but only x86_64
// runs in the VM tests.
//
// Exit status:
//
//	0  success
//	1  an operation failed (the message says which and why)
//	2  usage error
//	3  exec returned: the handoff did not happen, the system runs on
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kexecmeta/kexecmeta/pkg/kexecload"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitReturned = 3
)

const usage = `usage:
  kexecmeta status [--json]
  kexecmeta inspect [--dir DIR] [--json]
  kexecmeta capture DIR
  kexecmeta load KERNEL [--initrd FILE]... [--cmdline S | --reuse-cmdline]
                        [--append S]... [--remove KEY]... [--no-kho-param]
                        [--require-handover] [--dry-run [--json]]
  kexecmeta exec [--sync-timeout D | --no-sync]
  kexecmeta boot KERNEL [load and exec options]
  kexecmeta unload
`

// errUsage marks errors in how kexecmeta was called.
var errUsage = errors.New("usage")

// usageError is an error in the arguments.
func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one kexecmeta command and returns its exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := newEnv(stdout, stderr)
	return e.exitCode(dispatch(e, args))
}

// exitCode reports err and decides the exit code: the one place that
// does.
func (e *env) exitCode(err error) int {
	stdout, stderr := e.stdout, e.stderr
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "kexecmeta: %v\n%s", err, usage)
		return exitUsage
	}
	fmt.Fprintf(stderr, "kexecmeta: %v\n", err)
	if hint := e.advice(err); hint != "" {
		fmt.Fprintf(stderr, "kexecmeta: hint: %s\n", hint)
	}
	if errors.Is(err, kexecload.ErrReturned) {
		return exitReturned
	}
	return exitFailure
}

func dispatch(env *env, args []string) error {
	if len(args) == 0 {
		return usageError("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "status":
		return env.status(rest)
	case "inspect":
		return env.inspect(rest)
	case "capture":
		return env.capture(rest)
	case "load":
		return env.load(rest)
	case "exec":
		return env.exec(rest)
	case "boot":
		return env.boot(rest)
	case "unload":
		return env.unload(rest)
	case "help", "-h", "-help", "--help":
		return flag.ErrHelp
	}
	return usageError("unknown command %q", cmd)
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// flagGiven says whether the flag name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// parseInterspersed parses flags that may come before or after the
// positional arguments, which it returns. A bare "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
