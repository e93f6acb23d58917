//go:build !(386 || mips || mipsle || mips64 || mips64le)

package kexecload

import "golang.org/x/sys/unix"

// kexecFileLoad is kexec_file_load(2).
var kexecFileLoad = unix.KexecFileLoad
