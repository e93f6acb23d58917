//go:build unix

package kho

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kexecd72System is one boot's evidence on a 7.2 kernel that booted
// through KHO with LUO and reserve_mem.
func kexecd72System(tb testing.TB) *System {
	return &System{
		Release: "7.2.13",
		Arch:    "x86_64",
		Cmdline: "console=ttyS0 kho=on liveupdate=on",
		Config: map[string]string{
			"CONFIG_KEXEC_HANDOVER":         "y",
			"CONFIG_KEXEC_HANDOVER_DEBUGFS": "y",
			"CONFIG_DEBUG_FS":               "y",
			"CONFIG_LIVEUPDATE":             "y",
			"CONFIG_IKCONFIG_PROC":          "y",
			"CONFIG_SERIAL_8250":            "y",
			"CONFIG_NET":                    "n",
		},
		KHO:       kexecd72(tb),
		Debugfs:   Yes,
		Log:       []string{"KHO: exec from: 7.2.13 (count 2)"},
		SetupData: []uint32{setupKexecKHO},
	}
}

func TestCaptureRoundTrip(t *testing.T) {
	orig := kexecd72System(t)
	spy := &spyFS{FS: orig.KHO}
	orig.KHO = spy
	dir := filepath.Join(t.TempDir(), "capture")
	if err := WriteCapture(dir, orig); err != nil {
		t.Fatalf("WriteCapture() = %v", err)
	}
	for _, name := range spy.opened {
		if name == "in/sub_fdts/"+LUOName {
			t.Errorf("WriteCapture() opened %s", name)
		}
	}

	got, err := ReadCapture(dir)
	if err != nil {
		t.Fatalf("ReadCapture() = %v", err)
	}
	want := *orig
	want.Config = map[string]string{
		"CONFIG_KEXEC_HANDOVER":         "y",
		"CONFIG_KEXEC_HANDOVER_DEBUGFS": "y",
		"CONFIG_DEBUG_FS":               "y",
		"CONFIG_LIVEUPDATE":             "y",
		"CONFIG_IKCONFIG_PROC":          "y",
	}
	gotNoFS, wantNoFS := *got, want
	gotNoFS.KHO, wantNoFS.KHO = nil, nil
	if !reflect.DeepEqual(gotNoFS, wantNoFS) {
		t.Errorf("ReadCapture() = %+v, want %+v", gotNoFS, wantNoFS)
	}
	if got.KHO == nil {
		t.Fatalf("ReadCapture().KHO = nil, want the kho directory")
	}

	// The capture must decode exactly as the state it was taken from,
	// the incoming LUO blob (listed, never read) included.
	orig.KHO = kexecd72(t)
	if g, w := stateJSON(t, got), stateJSON(t, orig); g != w {
		t.Errorf("state from the capture:\n%s\nwant, as from the "+
			"source:\n%s", g, w)
	}
	luo, err := os.ReadFile(filepath.Join(dir, CaptureKHODir, "in",
		"sub_fdts", LUOName))
	if err != nil || len(luo) != 0 {
		t.Errorf("captured in/sub_fdts/LUO = %q, %v, want an empty "+
			"placeholder", luo, err)
	}
}

func TestCaptureColdBoot(t *testing.T) {
	orig := &System{Release: "7.2.13", Arch: "x86_64",
		Cmdline: "console=ttyS0 kho=on", KHO: coldBoot72(t),
		Debugfs: Yes, SetupData: []uint32{}}
	dir := t.TempDir()
	if err := WriteCapture(dir, orig); err != nil {
		t.Fatalf("WriteCapture(empty directory) = %v", err)
	}
	got, err := ReadCapture(dir)
	if err != nil {
		t.Fatalf("ReadCapture() = %v", err)
	}
	if g, w := stateJSON(t, got), stateJSON(t, orig); g != w {
		t.Errorf("state from the capture:\n%s\nwant:\n%s", g, w)
	}
	if in := got.Inherited(); in.Reason != ReasonColdBoot {
		t.Errorf("Inherited() = %+v, want reason %s", in, ReasonColdBoot)
	}
	if got.Config != nil || got.Log != nil || got.SetupData == nil {
		t.Errorf("ReadCapture() = %+v, want no config, no log, empty "+
			"setup_data", got)
	}
}

// TestCaptureNoKHO: without a debugfs kho directory the capture has no
// kho/ and reads back without one.
func TestCaptureNoKHO(t *testing.T) {
	orig := &System{Release: "7.2.13", Cmdline: "console=ttyS0",
		Config:  map[string]string{"CONFIG_KEXEC_HANDOVER": "y"},
		Debugfs: Yes}
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := WriteCapture(dir, orig); err != nil {
		t.Fatalf("WriteCapture() = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CaptureKHODir)); !errors.Is(
		err, fs.ErrNotExist) {
		t.Errorf("stat kho/ = %v, want it absent", err)
	}
	got, err := ReadCapture(dir)
	if err != nil {
		t.Fatalf("ReadCapture() = %v", err)
	}
	if got.KHO != nil {
		t.Errorf("ReadCapture().KHO = %v, want nil", got.KHO)
	}
	in := got.Inherited()
	if in.Reason != ReasonNotEnabled {
		t.Errorf("Inherited() = %+v, want %s", in, ReasonNotEnabled)
	}
}

func TestWriteCaptureNotEmpty(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old")
	if err := os.WriteFile(old, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteCapture(dir, kexecd72System(t)); err == nil {
		t.Fatalf("WriteCapture(non-empty directory) = nil, want an error")
	}
	if err := WriteCapture(old, kexecd72System(t)); err == nil {
		t.Errorf("WriteCapture(a file) = nil, want an error")
	}
}

// writeCaptureFiles writes files (path under dir: contents) into dir.
func writeCaptureFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadCaptureErrors(t *testing.T) {
	big := `{"schema":1,"cmdline":"` + strings.Repeat("x", MaxBlobSize) +
		`"}`
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  error  // errors.Is target, nil for any error
		msg   string // substring of the error
	}{
		{name: "no capture.json", files: map[string]string{"kho/x": ""},
			want: fs.ErrNotExist},
		{name: "not JSON", files: map[string]string{CaptureFile: "KHO"},
			msg: "invalid character"},
		{name: "truncated JSON",
			files: map[string]string{CaptureFile: `{"schema":1,`},
			msg:   "unexpected EOF"},
		{name: "no schema",
			files: map[string]string{CaptureFile: `{"release":"7.2.13"}`},
			msg:   "schema 0, want 1"},
		{name: "newer schema",
			files: map[string]string{CaptureFile: `{"schema":2}`},
			msg:   "schema 2, want 1"},
		{name: "wrong type",
			files: map[string]string{CaptureFile: `{"schema":1,` +
				`"setup_data":[-1]}`},
			msg: "cannot unmarshal"},
		{name: "larger than the cap", files: map[string]string{
			CaptureFile: big}, msg: "unexpected EOF"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeCaptureFiles(t, dir, tt.files)
			s, err := ReadCapture(dir)
			if err == nil || s != nil {
				t.Fatalf("ReadCapture() = %+v, %v, want an error", s, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("ReadCapture() = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ReadCapture() = %v, want %q in it", err, tt.msg)
			}
		})
	}
}

// TestReadCaptureLogCap: a capture cannot make ReadCapture keep more
// log lines than a live read would.
func TestReadCaptureLogCap(t *testing.T) {
	log := make([]string, maxLogLines+10)
	for i := range log {
		log[i] = "KHO: x"
	}
	b, err := json.Marshal(CaptureInfo{Schema: CaptureSchema, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeCaptureFiles(t, dir, map[string]string{CaptureFile: string(b)})
	s, err := ReadCapture(dir)
	if err != nil {
		t.Fatalf("ReadCapture() = %v", err)
	}
	if len(s.Log) != maxLogLines {
		t.Errorf("ReadCapture() kept %d log lines, want %d", len(s.Log),
			maxLogLines)
	}
}

// readStateWithin runs ReadState and the decisions on s, failing when
// they take longer than d (a FIFO would block them for ever).
func readStateWithin(t *testing.T, s *System, d time.Duration) *State {
	t.Helper()
	type result struct {
		st  *State
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := ReadState(s.KHO)
		s.Inherited()
		s.Outgoing()
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("ReadState() = %v", r.err)
		}
		return r.st
	case <-time.After(d):
		t.Fatalf("ReadState() still blocked after %v", d)
	}
	return nil
}

// TestReadCaptureHostile: a capture is untrusted input. Its kho/ may not
// point outside itself with symlinks (at the reader's own debugfs, where
// in/sub_fdts/LUO must never be read), nor hold FIFOs or devices that
// would block a read or never end.
func TestReadCaptureHostile(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	writeCaptureFiles(t, outside, map[string]string{
		"secret":                          string(record(t, "outside", 7)),
		"kho/in/sub_fdts/" + MetadataName: string(record(t, "outside", 8)),
	})

	dir := t.TempDir()
	b, err := json.Marshal(CaptureInfo{Schema: CaptureSchema,
		Release: "7.2.13"})
	if err != nil {
		t.Fatal(err)
	}
	writeCaptureFiles(t, dir, map[string]string{
		CaptureFile:                    string(b),
		"kho/out/sub_fdts/placeholder": "",
	})
	kho := filepath.Join(dir, CaptureKHODir)
	links := map[string]string{
		"in/sub_fdts/" + MetadataName:  secret,
		"out/sub_fdts/" + MetadataName: "/dev/zero",
		"out/fdt":                      "../../" + CaptureFile,
	}
	for name, target := range links {
		p := filepath.Join(kho, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(kho, "out", "scratch_phys")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}

	s, err := ReadCapture(dir)
	if err != nil {
		t.Fatalf("ReadCapture() = %v", err)
	}
	st := readStateWithin(t, s, 10*time.Second)
	if in := s.Inherited(); in.Found {
		t.Errorf("Inherited() = %+v, want nothing read through a "+
			"symlink", in)
	}
	if out := s.Outgoing(); out.Found {
		t.Errorf("Outgoing() = %+v, want nothing read through a "+
			"symlink", out)
	}
	if st.Out == nil || st.Out.ScratchErr == nil || st.Out.TreeErr == nil {
		t.Errorf("ReadState().Out = %+v, want the FIFO and the "+
			"symlinked fdt refused", st.Out)
	}

	// A kho/ that is itself a symlink is not followed.
	if err := os.RemoveAll(kho); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "kho"), kho); err != nil {
		t.Fatal(err)
	}
	s, err = ReadCapture(dir)
	if err == nil {
		if in := s.Inherited(); in.Found {
			t.Errorf("Inherited() = %+v through a symlinked kho/, "+
				"want nothing", in)
		}
	}

	// Nor is a capture.json that is a FIFO opened.
	fdir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(fdir, CaptureFile),
		0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadCapture(fdir)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("ReadCapture(capture.json a FIFO) = nil, want an " +
				"error")
		}
	case <-time.After(10 * time.Second):
		t.Errorf("ReadCapture(capture.json a FIFO) still blocked")
	}
}
