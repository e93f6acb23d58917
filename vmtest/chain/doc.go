// Package chain runs a chain of KHO kernels in QEMU, each kexec'ing into
// the next with kexecmeta, and reads what `kexecmeta status --json`
// reported on every boot. The VM test in package vmtest and the demo in
// vmtest/chaindemo share it.
//
// A run has four steps: find the test kernels that kernel/build.sh
// caches ([CachedKernels], [ParseBuildOutput]); build a u-root initramfs
// holding kexecmeta ([BuildInitramfs]); lay out the directories shared
// with the guest and get the QEMU options ([Setup]); then start QEMU
// with vmtest's qemu package, read the console ([Read]) and compare the
// reports with the kernels booted ([Check]).
//
// The guest runs the same script ([Script]) on every boot. It counts the
// boots with marker files on a writable 9p share, so the steering of the
// chain never depends on the command under test; it prints the status
// JSON between marker lines and then kexecs into the next kernel with
// `kexecmeta boot`, passing the initramfs it booted from (read over 9p)
// and reusing the kernel command line.
//
// Only x86_64 guests are supported, because kernel/build.sh builds
// x86_64 kernels only.
package chain
