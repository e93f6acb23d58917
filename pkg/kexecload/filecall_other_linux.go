//go:build linux && !(amd64 || arm || arm64 || loong64 || ppc || ppc64 || ppc64le || riscv64 || s390x)

package kexecload

import "golang.org/x/sys/unix"

// kexecFileLoad fails with ENOSYS where the architecture has no
// kexec_file_load(2), as the kernel would.
func kexecFileLoad(kernelFd, initrdFd int, cmdline string, flags int) error {
	return unix.ENOSYS
}
