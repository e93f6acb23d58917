//go:build 386 || mips || mipsle || mips64 || mips64le

package kexecload

import "golang.org/x/sys/unix"

// kexecFileLoad fails with ENOSYS where the architecture has no
// kexec_file_load(2), as the kernel would.
func kexecFileLoad(kernelFd, initrdFd int, cmdline string, flags int) error {
	return unix.ENOSYS
}
