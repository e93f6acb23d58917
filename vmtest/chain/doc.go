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
// The guest runs the same script ([Script]) on every boot of the plain
// chain. It counts the boots with marker files on a writable 9p share,
// so the steering of the chain never depends on the command under test;
// it prints the status JSON between marker lines and then kexecs into
// the next kernel with `kexecmeta boot`, passing the initramfs it
// booted from (read over 9p) and reusing the kernel command line.
//
// # Scenarios
//
// A test may run its own guest steps instead of the plain chain
// (Config.Steps), add kernel arguments to the cold boot
// (Config.ColdBootArgs), QEMU arguments such as a virtio disk
// (Config.QEMUArgs) and files to the share (Config.Files). On boot N
// the guest script ([StepsScript]) counts the boot, prints its status
// as above, then runs the gosh script text Steps[N-1]. A step may use
// the shell variables n (this boot's number), state ([GuestState]) and
// share ([GuestShare]); the files are under $share. Every step but the
// last must end its boot with a kexec, usually with [BootStep]: a step
// that returns on an earlier boot makes the script print "boot N step
// ended without a kexec: exit S" and exit 1, which [Read] reports as
// an error wrapping [ErrChain]. After the last step the script prints
// "done after N boots" and the VM powers off.
//
// A step prints what the host should check with [Block]: a command's
// output between marker lines with its exit status, read back as an
// [Output] with [Boot.Block] or [BlockOf]. The guest has gosh's
// builtins (echo, printf, test, read, ...), the u-root commands in
// [GuestCommands] and kexecmeta.
//
// In package vmtest, chain_test.go wraps a run for tests:
// sharedInitramfs(t) builds the initramfs once per test process, and
// runChain(t, name, cfg) sets up, runs and waits for the VM and
// returns the boots; handoff_test.go shows scenarios.
//
// Only x86_64 guests are supported, because kernel/build.sh builds
// x86_64 kernels only.
package chain
