package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkBinarySize reports the size of a stripped kexecmeta binary, the
// number that decides whether it fits a LinuxBoot flash image:
// `go test -run '^$' -bench BinarySize ./cmds/kexecmeta`.
func BenchmarkBinarySize(b *testing.B) {
	out := filepath.Join(b.TempDir(), "kexecmeta")
	for b.Loop() {
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags=-s -w", "-o", out, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, msg)
		}
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size()), "bytes")
	b.ReportMetric(0, "ns/op")
}
