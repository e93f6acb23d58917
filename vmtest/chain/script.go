package chain

import "strings"

// Where the guest finds things. vmtest's shelluinit runs
// /mount/9p/shelltest/test.sh, and vmmount mounts each 9p share at
// /mount/9p/TAG.
const (
	// stateTag is the writable share holding test.sh and the boot
	// markers.
	stateTag = "shelltest"

	// shareTag is the share holding initramfs.cpio and SERIES/bzImage.
	shareTag = "chain"

	// GuestState is the state share as the guest sees it.
	GuestState = "/mount/9p/" + stateTag

	// GuestShare is the kernel and initramfs share as the guest sees
	// it.
	GuestShare = "/mount/9p/" + shareTag
)

// The guest script marks its output with lines starting with marker.
const marker = "kexecmeta-chain: "

// Script returns the gosh script the guest runs on every boot of the
// plain chain whose boots are of the given series: [StepsScript] with
// [DefaultSteps]. state is a writable directory in which the script
// counts the boots; share holds initramfs.cpio and SERIES/bzImage.
//
// In the guest (VMTEST_IN_GUEST=1) the script first sets the console
// log level back to 1, which u-root's init raises to 5. On boot N it
// prints `kexecmeta status --json` between the lines "kexecmeta-chain:
// boot N status begin" and "kexecmeta-chain: boot N status end EXIT",
// then runs `kexecmeta boot` into the kernel of boot N+1. After the last
// boot it prints "kexecmeta-chain: done after N boots" and returns, and
// vmtest's init powers the VM off.
func Script(state, share string, series []string) string {
	return StepsScript(state, share, DefaultSteps(series))
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
