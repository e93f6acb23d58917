// Package vmtest holds kexecmeta's VM tests. They boot the KHO test
// kernels that kernel/build.sh builds in QEMU and run kexecmeta inside
// them; see package [github.com/kexecmeta/kexecmeta/vmtest/chain].
//
// The tests skip, saying why, when QEMU or the test kernels are missing,
// or with -short. Set KEXECMETA_REQUIRE_VM=1 to make them fail instead,
// as CI does. VMTEST_QEMU, VMTEST_KERNEL, VMTEST_ARCH and VMTEST_TIMEOUT
// work as in github.com/hugelgupf/vmtest, with the defaults described
// in package chain.
package vmtest
