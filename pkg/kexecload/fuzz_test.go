package kexecload

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
)

// FuzzTokenize checks Tokenize never panics, that a rejoined line splits
// the same, and that BuildCmdline's output always splits again.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{
		"",
		"console=ttyS0 quiet -- init arg",
		`root="PARTLABEL=My Disk" ro`,
		`"root=PARTLABEL=My Disk" "--" x`,
		`=a=b a="" "a=" a=b"c d"e`,
		"a\xa0b\tc\x0bd",
		`a="b`,
		"a\x00b\nc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks, err := Tokenize(s)
		for _, tok := range toks {
			SplitParam(tok)
		}
		if err != nil {
			return
		}
		joined := strings.Join(toks, " ")
		again, err := Tokenize(joined)
		if err != nil {
			t.Fatalf("Tokenize(%q) = %v after joining %q", joined, err, s)
		}
		if !slices.Equal(again, toks) {
			t.Fatalf("Tokenize(join(Tokenize(%q))) = %q, want %q", s,
				again, toks)
		}

		// The built line always splits, and appending it twice keeps
		// every parameter.
		line, err := BuildCmdline(CmdlineOptions{
			Base:   s,
			Append: []string{s},
			Remove: []string{"x"},
		})
		if err != nil {
			t.Fatalf("BuildCmdline(%q) = %v", s, err)
		}
		if _, err := Tokenize(line); err != nil {
			t.Fatalf("Tokenize(BuildCmdline(%q)) = %v", s, err)
		}
		if _, _, err := EnsureParam(line, "kho", "on"); err != nil {
			t.Fatalf("EnsureParam(%q) = %v", line, err)
		}
	})
}

// FuzzIdentifyKernel checks IdentifyKernel and what follows it never
// panic, whatever the file holds and whatever size it claims.
func FuzzIdentifyKernel(f *testing.F) {
	arm := makeARM64Image(4096, 0x200, 4096)
	armGz := gzipBytes(f, arm)
	for _, b := range [][]byte{
		makeBzImage(defaultBzImage()),
		arm,
		armGz,
		makeZboot(armGz, "gzip", 0xaa64),
		makeZboot([]byte("x"), "zstd22", 0xaa64),
		[]byte("\x7fELF\x02\x01\x01"),
		[]byte("070701"),
		{},
	} {
		f.Add(b, int64(len(b)))
	}
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		for _, sz := range []int64{int64(len(b)), size} {
			img, err := IdentifyKernel(bytes.NewReader(b), sz)
			if err != nil {
				continue
			}
			img.MaxCmdlineLen()
			img.CheckKexecFile("amd64")
			img.CheckKexecFile("arm64")
			unwrap(io.Discard, bytes.NewReader(b), img, 1<<20)
		}
	})
}
