package main

import (
	"errors"

	"github.com/kexecmeta/kexecmeta/pkg/kexecload"
	"golang.org/x/sys/unix"
)

// advice names the likely cause of err and what to check, matching the
// errno through every wrapper. It returns "" when it has nothing to add.
func advice(err error) string {
	switch {
	case errors.Is(err, kexecload.ErrNotLoaded):
		return "load a kernel first: kexecmeta load KERNEL " +
			"(or kexecmeta boot KERNEL)"
	case errors.Is(err, kexecload.ErrReturned):
		return "the kernel did not hand off; the system is still " +
			"running this kernel"
	case errors.Is(err, unix.EPERM):
		return "kexec needs CAP_SYS_BOOT (run as root); check " +
			"/proc/sys/kernel/kexec_load_disabled (once 1, it stays 1 " +
			"until reboot) and /sys/kernel/security/lockdown"
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
