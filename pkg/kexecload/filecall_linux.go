//go:build amd64 || arm || arm64 || loong64 || ppc || ppc64 || ppc64le || riscv64 || s390x

package kexecload

import "golang.org/x/sys/unix"

// kexecFileLoad is kexec_file_load(2).
var kexecFileLoad = unix.KexecFileLoad
