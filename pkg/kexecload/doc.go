// Package kexecload loads the next kernel with kexec_file_load(2), checks
// it before the call, and hands off to it with
// reboot(LINUX_REBOOT_CMD_KEXEC).
//
// It never uses the classic kexec_load(2): that call ignores Kexec
// HandOver and may overwrite memory the running kernel preserves for the
// next one. The kernel calls go through [Syscalls], so tests can replace
// them; every error from a call is a [*CallError] that shows the call
// with its arguments and unwraps to the errno, so errors.Is(err,
// unix.EPERM) works through every layer.
package kexecload
