package kho

import (
	"testing"
	"testing/fstest"
)

// The benchmarks say what reading the handover costs on a LinuxBoot
// machine's slow CPU: run them with `go test -run '^$' -bench . ./pkg/kho`.

func BenchmarkParseRecord(b *testing.B) {
	rec := rawRecord(1, "7.2.13", 3, RecordSize)
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := ParseRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseTree(b *testing.B) {
	fdt := v4Tree(b)
	b.SetBytes(int64(len(fdt)))
	for b.Loop() {
		if _, err := ParseTree(fdt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadState(b *testing.B) {
	fsys := fstest.MapFS{
		"out/fdt":                     file(v4Tree(b)),
		"out/sub_fdts/kexec-metadata": file(record(b, "7.2.13", 2)),
		"out/scratch_phys":            file([]byte("0x1000000\n0x20000000\n")),
		"out/scratch_len":             file([]byte("0x4000000\n0xc000000\n")),
		"in/fdt":                      file(v4Tree(b)),
		"in/sub_fdts/kexec-metadata":  file(record(b, "7.3.4", 1)),
	}
	for b.Loop() {
		if _, err := ReadState(fsys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInherited(b *testing.B) {
	s := &System{KHO: fstest.MapFS{
		InMetadataPath: file(record(b, "7.3.4", 1)),
	}}
	for b.Loop() {
		if in := s.Inherited(); !in.Found {
			b.Fatal(in.Detail)
		}
	}
}
