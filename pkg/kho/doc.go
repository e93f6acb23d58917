// Package kho reads and decodes the state Linux Kexec HandOver (KHO)
// exposes to userspace: the root handover FDT, its sub-blobs, the scratch
// areas, and above all the kexec-metadata record that names the kernel
// which did the kexec and counts the kexecs since the last cold boot.
//
// It was checked against the Linux 7.2.13 and 7.3.4 sources (kho-v4) and
// follows the documented layouts of 6.16-7.0 (kho-v1, with a finalize
// step) and 7.1 (kho-v3). Where this package accepts or rejects a
// kexec-metadata record it applies exactly the receiving kernel's rules
// (kernel/liveupdate/kexec_handover.c, kho_in_kexec_metadata).
//
// All input is treated as untrusted: debugfs files, captured copies of
// them and kernel log lines are read through size caps, every length and
// offset is checked before slicing or allocating, and malformed input is
// an error, never a panic.
//
// Byte order: the FDT structure is big-endian, but the 64-bit payloads
// that KHO stores in it and the kexec-metadata record are CPU-native. This
// package decodes them with [NativeEndian], which is the byte order of
// the machine the data came from only when that machine is the one
// reading it; captured state from another architecture must come from a
// machine of the same endianness (every KHO architecture, x86_64 and
// arm64, is little-endian).
package kho
