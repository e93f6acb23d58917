package main

import (
	"io"
	"os"

	"github.com/kexecmeta/kexecmeta/pkg/kexecload"
	"github.com/kexecmeta/kexecmeta/pkg/kho"
)

// env is what a command touches outside itself; tests replace parts.
type env struct {
	stdout, stderr io.Writer

	// sys makes the kexec and reboot calls.
	sys *kexecload.Syscalls

	// readLive gathers the running kernel's KHO evidence.
	readLive func() (*kho.Live, error)

	// procCmdline is the running kernel's command line file.
	procCmdline string

	// stateDir keeps what `load` loaded, for `exec` to name it.
	stateDir string

	// khoDir is the debugfs kho directory, for finalize.
	khoDir string

	// kmsg is where the handoff line goes into the kernel log.
	kmsg string
}

func newEnv(stdout, stderr io.Writer) *env {
	state := "/run/kexecmeta"
	if _, err := os.Stat("/run"); err != nil {
		state = os.TempDir() + "/kexecmeta"
	}
	return &env{
		stdout:      stdout,
		stderr:      stderr,
		sys:         kexecload.Native(),
		readLive:    kho.ReadLive,
		procCmdline: "/proc/cmdline",
		stateDir:    state,
		khoDir:      kho.DebugfsDir,
		kmsg:        "/dev/kmsg",
	}
}
