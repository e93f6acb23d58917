package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kexecmeta/kexecmeta/pkg/kexecload"
	"github.com/kexecmeta/kexecmeta/pkg/kho"
	"golang.org/x/sys/unix"
)

func record(t *testing.T, release string, count uint32) []byte {
	t.Helper()
	b, err := kho.Record{Version: 1, PreviousRelease: release,
		KexecCount: count}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeKernel records the calls a command makes.
type fakeKernel struct {
	loaded    bool
	loadErr   error
	rebootErr error
	calls     []string
}

// testEnv returns an env whose kernel is fake and whose KHO state is sys.
func testEnv(t *testing.T, sys kho.System, k *fakeKernel) (*env,
	*bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := newEnv(&stdout, &stderr)
	e.stateDir = t.TempDir()
	e.kmsg = filepath.Join(t.TempDir(), "kmsg")
	e.procCmdline = filepath.Join(t.TempDir(), "missing")
	e.readLive = func() (*kho.Live, error) {
		return &kho.Live{System: sys}, nil
	}
	e.sys = &kexecload.Syscalls{
		KexecFileLoad: func(k1, i int, c string, f int) error {
			k.calls = append(k.calls, "kexec_file_load")
			if k.loadErr == nil {
				k.loaded = f&kexecload.FileUnload == 0
			}
			return k.loadErr
		},
		Reboot: func(cmd int) error {
			k.calls = append(k.calls, "reboot")
			return k.rebootErr
		},
		Sync: func() { k.calls = append(k.calls, "sync") },
		ReadFile: func(name string) ([]byte, error) {
			if name == kexecload.LoadedPath {
				if k.loaded {
					return []byte("1\n"), nil
				}
				return []byte("0\n"), nil
			}
			return []byte("Dirty: 0 kB\nWriteback: 0 kB\n"), nil
		},
	}
	return e, &stdout, &stderr
}

func TestParseInterspersed(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		wantPos []string
		wantIn  []string
		wantErr bool
	}{
		{
			name:    "flags after the kernel",
			args:    []string{"/k", "--initrd", "/i", "--reuse-cmdline"},
			wantPos: []string{"/k"},
			wantIn:  []string{"/i"},
		},
		{
			name:    "flags around the kernel",
			args:    []string{"--initrd=/a", "/k", "-initrd", "/b"},
			wantPos: []string{"/k"},
			wantIn:  []string{"/a", "/b"},
		},
		{
			name:    "double dash ends flags",
			args:    []string{"--", "--initrd"},
			wantPos: []string{"--initrd"},
		},
		{
			name:    "unknown flag",
			args:    []string{"/k", "--initrdd", "x"},
			wantErr: true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlagSet("load")
			var o loadOpts
			o.flags(fs)
			pos, err := parseInterspersed(fs, tt.args)
			if tt.wantErr {
				if !errors.Is(err, errUsage) {
					t.Fatalf("parseInterspersed() = %v, want usage error",
						err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pos, tt.wantPos) {
				t.Errorf("positional = %q, want %q", pos, tt.wantPos)
			}
			if !reflect.DeepEqual([]string(o.initrds), tt.wantIn) &&
				(len(o.initrds) != 0 || len(tt.wantIn) != 0) {
				t.Errorf("initrds = %q, want %q", o.initrds, tt.wantIn)
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	sys := kho.System{
		Release: "7.3.4",
		KHO: fstest.MapFS{
			kho.InMetadataPath:  {Data: record(t, "7.2.13", 1)},
			kho.OutMetadataPath: {Data: record(t, "7.3.4", 2)},
		},
	}
	e, stdout, _ := testEnv(t, sys, &fakeKernel{})
	if err := e.status([]string{"--json"}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(stdout.String(), "\n"); n != 1 {
		t.Errorf("status --json printed %d lines, want 1", n)
	}
	var got statusReport
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Schema != statusSchema || got.Release != "7.3.4" ||
		got.PreviousRelease != "7.2.13" || got.KexecCount != 1 ||
		!got.Inherited.Found || got.Inherited.Source != "debugfs" ||
		got.Outgoing.Record.KexecCount != 2 {
		t.Errorf("status --json = %s", stdout)
	}
}

func TestExec(t *testing.T) {
	good := kho.System{
		Release: "7.2.13",
		KHO: fstest.MapFS{
			kho.OutMetadataPath: {Data: record(t, "7.2.13", 1)},
		},
		SetupData: []uint32{},
	}
	wrongCount := kho.System{
		Release: "7.2.13",
		KHO: fstest.MapFS{
			kho.InMetadataPath:  {Data: record(t, "7.3.4", 4)},
			kho.OutMetadataPath: {Data: record(t, "7.2.13", 9)},
		},
	}
	for _, tt := range []struct {
		name      string
		sys       kho.System
		k         fakeKernel
		args      []string
		wantCode  int
		wantCalls []string
		wantOut   string
		wantErr   string
	}{
		{
			name:     "nothing loaded",
			sys:      good,
			wantCode: exitFailure,
			wantErr:  "no kernel is loaded",
		},
		{
			name:      "returned without error",
			sys:       good,
			k:         fakeKernel{loaded: true},
			wantCode:  exitReturned,
			wantCalls: []string{"sync", "reboot"},
			wantOut: "kexecmeta: handoff: 7.2.13 count 0 (cold boot) -> " +
				"the loaded image; next kernel sees count 1",
		},
		{
			name:      "reboot fails",
			sys:       good,
			k:         fakeKernel{loaded: true, rebootErr: unix.EINVAL},
			args:      []string{"--no-sync"},
			wantCode:  exitFailure,
			wantCalls: []string{"reboot"},
			wantErr:   "reboot(LINUX_REBOOT_CMD_KEXEC) = EINVAL",
		},
		{
			name:     "outgoing count does not follow",
			sys:      wrongCount,
			k:        fakeKernel{loaded: true},
			wantCode: exitFailure,
			wantErr:  "count is 9, want 5",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, stdout, stderr := testEnv(t, tt.sys, &tt.k)
			err := e.exec(tt.args)
			code := e.exitCode(err)
			if code != tt.wantCode {
				t.Errorf("exec = %v (code %d), want code %d", err, code,
					tt.wantCode)
			}
			if !reflect.DeepEqual(tt.k.calls, tt.wantCalls) &&
				(len(tt.k.calls) != 0 || len(tt.wantCalls) != 0) {
				t.Errorf("calls = %q, want %q", tt.k.calls, tt.wantCalls)
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout = %q, want %q", stdout, tt.wantOut)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestAdvice(t *testing.T) {
	call := func(errno unix.Errno) error {
		return fmt.Errorf("loading: %w", &kexecload.CallError{
			Call: "kexec_file_load(...)", Err: errno})
	}
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"EACCES from the call", call(unix.EACCES), "noexec mount"},
		{"EACCES opening a file", &os.PathError{Op: "open",
			Path: "/k", Err: unix.EACCES}, "run kexecmeta as root"},
		{"EADDRNOTAVAIL", call(unix.EADDRNOTAVAIL), "scratch"},
		{"signature", call(unix.EKEYREJECTED), "signed image"},
		{"ENOEXEC", call(unix.ENOEXEC), "does not recognise"},
		{"ENOSYS", call(unix.ENOSYS), "does not fall back"},
		{"no kexec", fmt.Errorf("x: %w", kexecload.ErrNoKexec),
			"CONFIG_KEXEC_CORE"},
		{"nothing loaded", kexecload.ErrNotLoaded, "load a kernel first"},
		{"plain error", errors.New("boom"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := testEnv(t, kho.System{}, &fakeKernel{})
			got := e.advice(tt.err)
			if tt.want == "" && got != "" ||
				!strings.Contains(got, tt.want) {
				t.Errorf("advice(%v) = %q, want %q in it", tt.err, got,
					tt.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"status", "extra"},
		{"exec", "--sync-timeout", "-5s"},
		{"exec", "--sync-timeout", "5s", "--no-sync"},
		{"inspect", "--dir", ""},
		{"capture"},
		{"capture", ""},
		{"load"},
		{"load", "a", "b"},
		{"unload", "x"},
	} {
		e, _, stderr := testEnv(t, kho.System{}, &fakeKernel{})
		if code := e.exitCode(dispatch(e, args)); code != exitUsage {
			t.Errorf("kexecmeta %q: exit %d, want %d (stderr %q)", args,
				code, exitUsage, stderr)
		}
	}
}

func TestUnload(t *testing.T) {
	for _, tt := range []struct {
		loaded bool
		want   string
	}{{true, "kexecmeta: unloaded"}, {false, "nothing was loaded"}} {
		k := &fakeKernel{loaded: tt.loaded}
		e, stdout, _ := testEnv(t, kho.System{}, k)
		if err := e.unload(nil); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout.String(), tt.want) {
			t.Errorf("unload (loaded %v) printed %q, want %q", tt.loaded,
				stdout, tt.want)
		}
	}
}
