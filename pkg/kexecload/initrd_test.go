//go:build linux

package kexecload

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// writeFiles writes name=content files into dir and returns their paths.
func writeFiles(t *testing.T, dir string, contents ...string) []string {
	t.Helper()
	var paths []string
	for i, c := range contents {
		p := filepath.Join(dir, "initrd"+string(rune('a'+i)))
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

func TestJoinInitrds(t *testing.T) {
	for _, tt := range []struct {
		name     string
		contents []string
		extra    []string // more paths, relative to the temp dir
		want     string
		same     bool // the file itself comes back
		wantErr  error
	}{
		{name: "one", contents: []string{"hello"}, want: "hello",
			same: true},
		{
			name:     "microcode and initramfs",
			contents: []string{"micro", "ram"},
			want:     "micro\x00\x00\x00ram",
		},
		{
			name:     "three, last unpadded",
			contents: []string{"abcd", "e", "fg"},
			want:     "abcde\x00\x00\x00fg",
		},
		{
			// An empty file is most likely the wrong file.
			name:     "empty one among others",
			contents: []string{"", "abc"},
			wantErr:  ErrEmptyInitrd,
		},
		{name: "one empty", contents: []string{""},
			wantErr: ErrEmptyInitrd},
		{name: "all empty", contents: []string{"", ""},
			wantErr: ErrEmptyInitrd},
		{
			name: "missing second", contents: []string{"a"},
			extra: []string{"missing"}, wantErr: fs.ErrNotExist,
		},
		{
			name: "missing only", extra: []string{"missing"},
			wantErr: fs.ErrNotExist,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			paths := writeFiles(t, dir, tt.contents...)
			for _, e := range tt.extra {
				paths = append(paths, filepath.Join(dir, e))
			}
			f, size, err := JoinInitrds(paths)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("JoinInitrds(%q) = %v, want %v", paths, err,
					tt.wantErr)
			}
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) &&
					!strings.Contains(err.Error(), paths[len(paths)-1]) {
					t.Errorf("error %q does not name the path", err)
				}
				return
			}
			defer f.Close()
			got, err := io.ReadAll(f)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want || size != int64(len(tt.want)) {
				t.Errorf("JoinInitrds = %q (size %d), want %q", got, size,
					tt.want)
			}
			if same := f.Name() == paths[0]; same != tt.same {
				t.Errorf("JoinInitrds returned %s, want the file "+
					"itself: %v", f.Name(), tt.same)
			}
			if !tt.same {
				checkMemfd(t, f)
			}
		})
	}
}

// checkMemfd checks f is a close-on-exec memfd.
func checkMemfd(t *testing.T, f *os.File) {
	t.Helper()
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd flags = %#x, %v, want FD_CLOEXEC", flags, err)
	}
	link, err := os.Readlink(filepath.Join("/proc/self/fd",
		strconv.Itoa(int(f.Fd()))))
	if err == nil && !strings.HasPrefix(link, "/memfd:") {
		t.Errorf("fd links to %s, want a memfd", link)
	}
}

func TestJoinInitrdsNoPaths(t *testing.T) {
	if _, _, err := JoinInitrds(nil); err == nil {
		t.Error("JoinInitrds(nil) = nil, want an error")
	}
}

func TestJoinInitrdsDirectory(t *testing.T) {
	dir := t.TempDir()
	_, _, err := JoinInitrds([]string{dir})
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("JoinInitrds(dir) = %v, want an error naming %s", err,
			dir)
	}
}

// A FIFO or a device is refused before it is opened: opening a FIFO
// blocks, and /dev/zero never ends.
func TestJoinInitrdsNotRegular(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Skip(err)
	}
	for _, path := range []string{p, "/dev/zero"} {
		if _, _, err := JoinInitrds([]string{path}); !errors.Is(err,
			ErrNotRegular) || !strings.Contains(err.Error(), path) {
			t.Errorf("JoinInitrds(%s) = %v, want ErrNotRegular naming it",
				path, err)
		}
	}
	if _, err := InitrdSize([]string{"/dev/zero"}); !errors.Is(err,
		ErrNotRegular) {
		t.Errorf("InitrdSize(/dev/zero) = %v, want ErrNotRegular", err)
	}
}

func TestUnwrapKernel(t *testing.T) {
	arm := makeARM64Image(1<<20, 0x9000, 1<<20)
	for _, tt := range []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{name: "Image.gz", data: gzipBytes(t, arm)},
		{name: "zboot", data: makeZboot(gzipBytes(t, arm), "gzip",
			0xaa64)},
		{name: "gzip of text", data: gzipBytes(t,
			bytes.Repeat([]byte("text"), 100)), wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(tt.data)
			img, err := IdentifyKernel(r, int64(len(tt.data)))
			if err != nil {
				t.Fatal(err)
			}
			f, inner, err := UnwrapKernel(r, img)
			if (err != nil) != tt.wantErr {
				t.Fatalf("UnwrapKernel = %v, want error %v", err,
					tt.wantErr)
			}
			if err != nil {
				return
			}
			defer f.Close()
			if inner.Format != FormatARM64Image ||
				inner.Release != "7.2.13" || inner.Size != 1<<20 {
				t.Errorf("UnwrapKernel = %s release %q size %d, want "+
					"arm64-Image 7.2.13 %d", inner.Format, inner.Release,
					inner.Size, 1<<20)
			}
			if err := inner.CheckKexecFile("arm64"); err != nil {
				t.Errorf("CheckKexecFile = %v", err)
			}
			got, _ := io.ReadAll(f)
			if !bytes.Equal(got, arm) {
				t.Errorf("UnwrapKernel wrote %d bytes, want the Image",
					len(got))
			}
			checkMemfd(t, f)
		})
	}
}
