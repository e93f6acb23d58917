package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/kexecmeta/kexecmeta/pkg/kexecload"
	"golang.org/x/sys/unix"
)

// advice names the likely cause of err and what to check, matching
// sentinels and errnos through every wrapper. Errno advice is given only
// for the kernel calls (a *kexecload.CallError): the same errno from
// opening a file means something else. It returns "" when it has nothing
// to add.
func (e *env) advice(err error) string {
	if hint := sentinelAdvice(err); hint != "" {
		return hint
	}
	var ce *kexecload.CallError
	if errors.As(err, &ce) {
		return e.callAdvice(err)
	}
	if errorsIsAny(err, unix.EACCES, unix.EPERM) {
		return "run kexecmeta as root"
	}
	return ""
}

// sentinelAdvice advises on kexecmeta's own refusals.
func sentinelAdvice(err error) string {
	switch {
	case errors.Is(err, kexecload.ErrNoKexec):
		return "the kernel is built without CONFIG_KEXEC_CORE (and " +
			"CONFIG_KEXEC_FILE): it cannot kexec at all"
	case errors.Is(err, kexecload.ErrNotLoaded):
		return "load a kernel first: kexecmeta load KERNEL " +
			"(or kexecmeta boot KERNEL)"
	case errors.Is(err, kexecload.ErrReturned):
		return "the kernel did not hand off; the system is still " +
			"running this kernel"
	case errors.Is(err, kexecload.ErrScratchTooSmall):
		return "the scratch areas are sized at cold boot: boot this " +
			"kernel cold with a larger kho_scratch= (for example " +
			"kho_scratch=128M,512M,256M: low memory, global, per node) " +
			"or use a smaller kernel and initrd"
	case errors.Is(err, kexecload.ErrNoHandover):
		return "without --require-handover kexecmeta loads anyway, and " +
			"the next kernel starts a new chain at count 0"
	case errors.Is(err, kexecload.ErrCmdlineTooLong):
		return "shorten the command line (--remove KEY drops parameters)"
	}
	return ""
}

// callAdvice advises on an errno from kexec_file_load, reboot or a
// write to a KHO control file.
func (e *env) callAdvice(err error) string {
	switch {
	case errors.Is(err, unix.EPERM):
		return e.whyEPERM()
	case errorsIsAny(err, unix.EKEYREJECTED, unix.ENOKEY, unix.EBADMSG,
		unix.EKEYEXPIRED, unix.EKEYREVOKED):
		return "the running kernel requires a signed image " +
			"(CONFIG_KEXEC_SIG_FORCE, lockdown or IMA): sign the kernel " +
			"with a key the running kernel trusts"
	case errors.Is(err, unix.EACCES):
		return "the file is not allowed to be loaded: check for a noexec " +
			"mount and the IMA appraisal policy"
	case errors.Is(err, unix.ENOEXEC):
		return "the running kernel does not recognise this image: check " +
			"the architecture, and that it is a bzImage (x86_64) or " +
			"Image (arm64), not compressed or EFI-wrapped"
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return "with KHO on, every segment must fit the scratch areas " +
			"(see /sys/kernel/debug/kho/out/scratch_len); boot this " +
			"kernel cold with a larger kho_scratch= or use a smaller " +
			"initrd"
	case errors.Is(err, unix.ENOMEM):
		return "not enough memory for the image: free memory or use a " +
			"smaller kernel and initrd"
	case errors.Is(err, unix.EBUSY):
		return "another kexec load or unload is in progress, or the " +
			"image is in use; try again"
	case errors.Is(err, unix.ETXTBSY):
		return "the kernel or initrd file is open for writing; close " +
			"the writer first"
	case errors.Is(err, unix.ENOSYS):
		return "the running kernel has no kexec_file_load " +
			"(CONFIG_KEXEC_FILE); kexecmeta does not fall back to " +
			"kexec_load, which would break KHO"
	case errors.Is(err, unix.EINVAL):
		return "the kernel rejected the arguments: check the command " +
			"line length and that the image matches this architecture"
	}
	return ""
}

// capSysBoot is CAP_SYS_BOOT's bit in /proc/self/status CapEff.
const capSysBoot = 22

// whyEPERM tells apart the reasons the kernel refuses a kexec load with
// EPERM (kexec_load_permitted and kimage_validate_signature).
func (e *env) whyEPERM() string {
	read := func(name string) string {
		b, err := e.sys.ReadFile(name)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	if eff, ok := capEff(read("/proc/self/status")); ok &&
		eff&(1<<capSysBoot) == 0 {
		return "kexecmeta lacks CAP_SYS_BOOT: run it as root"
	}
	if read("/proc/sys/kernel/kexec_load_disabled") == "1" {
		return "kexec is disabled: kernel.kexec_load_disabled is 1, and " +
			"it stays 1 until the next cold boot"
	}
	if read("/proc/sys/kernel/kexec_load_limit_reboot") == "0" {
		return "the kexec load limit is used up: " +
			"kernel.kexec_load_limit_reboot is 0"
	}
	if l := read("/sys/kernel/security/lockdown"); strings.Contains(l,
		"[integrity]") || strings.Contains(l, "[confidentiality]") {
		return "the kernel is locked down (" + l + ") and the image's " +
			"signature did not verify: sign the kernel with a key the " +
			"running kernel trusts"
	}
	return "kexec needs CAP_SYS_BOOT, kernel.kexec_load_disabled=0 and, " +
		"under lockdown, a signed image"
}

// capEff reads the effective capability set from /proc/self/status.
func capEff(status string) (uint64, bool) {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// errorsIsAny reports whether err matches any target.
func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
