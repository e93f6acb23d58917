package main

import (
	"encoding/binary"
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

// writeBzImage writes a minimal x86_64 bzImage of the given release whose
// header asks for memSize bytes once loaded (setup_header, boot protocol
// 2.15, Documentation/arch/x86/boot.rst).
func writeBzImage(t *testing.T, release string, memSize uint32) string {
	t.Helper()
	b := make([]byte, 64<<10)
	le := binary.LittleEndian
	b[0x1f1] = 4                           // setup_sects
	le.PutUint16(b[0x1fe:], 0xaa55)        // boot_flag
	copy(b[0x202:], "HdrS")                // header
	le.PutUint16(b[0x206:], 0x020f)        // version
	le.PutUint16(b[0x20e:], 0x100)         // kernel_version - 0x200
	b[0x211] = 0x01                        // loadflags: LOADED_HIGH
	le.PutUint32(b[0x230:], 2<<20)         // kernel_alignment
	le.PutUint16(b[0x236:], 0x0003|0x0040) // xloadflags 64-bit, >4G, 5-level
	le.PutUint32(b[0x238:], 2047)          // cmdline_size
	le.PutUint32(b[0x260:], memSize)       // init_size
	copy(b[0x300:], release+" (test@host) #1 SMP\x00")
	path := filepath.Join(t.TempDir(), "bzImage-"+release)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// khoState is a running kho-v4 kernel's debugfs directory with the given
// scratch areas.
func khoState(t *testing.T, release string, count uint32,
	scratchMiB ...uint64) fstest.MapFS {
	t.Helper()
	var phys, lens strings.Builder
	for i, m := range scratchMiB {
		fmt.Fprintf(&phys, "%#x\n", (i+1)<<28)
		fmt.Fprintf(&lens, "%#x\n", m<<20)
	}
	return fstest.MapFS{
		kho.OutMetadataPath:  {Data: record(t, release, count)},
		"out/scratch_phys":   {Data: []byte(phys.String())},
		"out/scratch_len":    {Data: []byte(lens.String())},
		"out/sub_fdts/dummy": {Data: []byte{0}},
	}
}

func TestLoad(t *testing.T) {
	k72 := writeBzImage(t, "7.2.13", 20<<20)
	k71 := writeBzImage(t, "7.1.0", 20<<20)
	huge := writeBzImage(t, "7.3.4", 300<<20)
	initrd := filepath.Join(t.TempDir(), "initrd")
	if err := os.WriteFile(initrd, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	running := kho.System{
		Release: "7.3.4",
		Cmdline: "console=ttyS0 kho=on",
		KHO:     khoState(t, "7.3.4", 1, 64, 192, 192),
	}
	noKHO := kho.System{Release: "7.3.4"}
	turnedOff := kho.System{Release: "7.3.4", Cmdline: "kho=on",
		Log: []string{"KHO: Failed to reserve scratch area, disabling " +
			"kexec handover"}}

	for _, tt := range []struct {
		name      string
		sys       kho.System
		args      []string
		wantCalls []string
		wantIn    string // in stdout
		wantErr   error
		wantHint  string
	}{
		{
			name:      "load with kho=on added",
			sys:       running,
			args:      []string{k72, "--initrd", initrd, "--cmdline", "quiet"},
			wantCalls: []string{"kexec_file_load"},
			wantIn:    "cmdline: quiet kho=on",
		},
		{
			name:      "--no-kho-param",
			sys:       running,
			args:      []string{"--no-kho-param", k72, "--cmdline", "quiet"},
			wantCalls: []string{"kexec_file_load"},
			wantIn:    "cmdline: quiet\n",
		},
		{
			name:      "no KHO: nothing added",
			sys:       noKHO,
			args:      []string{k72, "--cmdline", "quiet"},
			wantCalls: []string{"kexec_file_load"},
			wantIn:    "cmdline: quiet\n",
		},
		{
			name:      "kho=on but off at boot warns",
			sys:       turnedOff,
			args:      []string{k72},
			wantCalls: []string{"kexec_file_load"},
			wantHint:  "could not reserve its scratch areas",
		},
		{
			name:    "kho=on but off at boot, --require-handover",
			sys:     turnedOff,
			args:    []string{k72, "--require-handover"},
			wantErr: kexecload.ErrNoHandover,
		},
		{
			name:     "scratch too small",
			sys:      running,
			args:     []string{huge, "--cmdline", "quiet"},
			wantErr:  kexecload.ErrScratchTooSmall,
			wantHint: "kho_scratch=",
		},
		{
			name:      "abi change warns",
			sys:       running,
			args:      []string{k71},
			wantCalls: []string{"kexec_file_load"},
			wantHint:  "warning: the next kernel will not accept",
		},
		{
			name:     "abi change refused with --require-handover",
			sys:      running,
			args:     []string{k71, "--require-handover"},
			wantErr:  kexecload.ErrNoHandover,
			wantHint: "count 0",
		},
		{
			name:    "command line too long",
			sys:     running,
			args:    []string{k72, "--cmdline", strings.Repeat("x", 2100)},
			wantErr: kexecload.ErrCmdlineTooLong,
		},
		{
			name:    "missing kernel",
			sys:     running,
			args:    []string{"/nonexistent/bzImage"},
			wantErr: os.ErrNotExist,
		},
		{
			name:    "missing initrd",
			sys:     running,
			args:    []string{k72, "--initrd", "/nonexistent/initrd"},
			wantErr: os.ErrNotExist,
		},
		{
			name:    "json without dry run",
			sys:     running,
			args:    []string{k72, "--json"},
			wantErr: errUsage,
		},
		{
			name:    "device as initrd",
			sys:     running,
			args:    []string{k72, "--initrd", "/dev/zero"},
			wantErr: kexecload.ErrNotRegular,
		},
		{
			name:    "device as kernel",
			sys:     running,
			args:    []string{"/dev/zero"},
			wantErr: kexecload.ErrNotRegular,
		},
		{
			name:    "initrd as kernel",
			sys:     running,
			args:    []string{initrd},
			wantErr: kexecload.ErrUnknownFormat,
		},
		{
			name:    "cmdline and reuse",
			sys:     running,
			args:    []string{k72, "--cmdline", "x", "--reuse-cmdline"},
			wantErr: errUsage,
		},
		{
			name:    "newline refused",
			sys:     running,
			args:    []string{k72, "--append", "a\nb"},
			wantErr: kexecload.ErrForbiddenByte,
		},
		{
			name:   "dry run loads nothing",
			sys:    running,
			args:   []string{k72, "--initrd", initrd, "--dry-run"},
			wantIn: "fits:      yes",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{}
			e, stdout, stderr := testEnv(t, tt.sys, k)
			err := e.load(tt.args)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("load(%q) = %v, want %v", tt.args, err,
						tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("load(%q) = %v", tt.args, err)
			}
			if err != nil {
				e.exitCode(err)
			}
			if !reflect.DeepEqual(k.calls, tt.wantCalls) &&
				(len(k.calls) != 0 || len(tt.wantCalls) != 0) {
				t.Errorf("calls = %q, want %q", k.calls, tt.wantCalls)
			}
			if !strings.Contains(stdout.String(), tt.wantIn) {
				t.Errorf("stdout = %q, want %q in it", stdout, tt.wantIn)
			}
			if !strings.Contains(stderr.String(), tt.wantHint) {
				t.Errorf("stderr = %q, want %q in it", stderr, tt.wantHint)
			}
		})
	}
}

func TestLoadDryRunJSON(t *testing.T) {
	k := writeBzImage(t, "7.2.13", 20<<20)
	sys := kho.System{Release: "7.3.4", Cmdline: "kho=on",
		KHO: khoState(t, "7.3.4", 1, 64, 192)}
	e, stdout, _ := testEnv(t, sys, &fakeKernel{})
	if err := e.load([]string{k, "--dry-run", "--json", "--cmdline",
		`root="PARTLABEL=My Disk"`}); err != nil {
		t.Fatal(err)
	}
	var p loadPlan
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatalf("dry run JSON %q: %v", stdout, err)
	}
	want := `root="PARTLABEL=My Disk" kho=on`
	if p.Cmdline != want || p.CmdMax != 2016 || !p.KHO.On ||
		!p.KHO.Fits || !p.KHO.Carries || p.Image.Release != "7.2.13" ||
		len(p.KHO.Scratch) != 2 || p.Flags&kexecload.FileNoInitramfs == 0 {
		t.Errorf("dry run plan = %+v, want cmdline %q, limit 2016, fits, "+
			"carries", p, want)
	}
}

func TestReuseCmdlineHops(t *testing.T) {
	k := writeBzImage(t, "7.2.13", 20<<20)
	line := "BOOT_IMAGE=/vmlinuz console=ttyS0 kho=on initrd=/i"
	for hop := 1; hop <= 3; hop++ {
		e, stdout, _ := testEnv(t, kho.System{Release: "7.2.13",
			KHO: khoState(t, "7.2.13", 0, 64, 192)}, &fakeKernel{})
		proc := filepath.Join(t.TempDir(), "cmdline")
		if err := os.WriteFile(proc, []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		e.procCmdline = proc
		if err := e.load([]string{k, "--reuse-cmdline", "--append",
			"hop=x", "--dry-run", "--json"}); err != nil {
			t.Fatal(err)
		}
		var p loadPlan
		if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		want := "console=ttyS0 kho=on hop=x"
		if p.Cmdline != want {
			t.Fatalf("hop %d: cmdline %q, want %q", hop, p.Cmdline, want)
		}
		line = p.Cmdline
	}
}

func TestFinalize(t *testing.T) {
	k := writeBzImage(t, "6.18.2", 20<<20)
	for _, tt := range []struct {
		release string
		want    string
	}{
		{"6.16.1", finalizeBeforeReboot},
		{"6.18.2", finalizeBeforeLoad},
		{"7.0.3", finalizeBeforeReboot},
		{"7.2.13", finalizeNone},
	} {
		t.Run(tt.release, func(t *testing.T) {
			if got := finalizeMoment(tt.release, "kho=on"); got != tt.want {
				t.Errorf("finalizeMoment(%s) = %s, want %s", tt.release,
					got, tt.want)
			}
			if got := finalizeMoment(tt.release, "liveupdate=on"); got !=
				finalizeNone {
				t.Errorf("finalizeMoment(%s, liveupdate=on) = %s, want "+
					"none", tt.release, got)
			}
		})
	}

	// On 6.18 the write comes before the load, and only once.
	fk := &fakeKernel{}
	e, _, _ := testEnv(t, kho.System{Release: "6.18.2", Cmdline: "kho=on",
		KHO: khoState(t, "6.18.2", 0, 64, 192)}, fk)
	var writes []string
	e.sys.WriteFile = func(name string, data []byte) error {
		writes = append(writes, name+"="+string(data))
		fk.calls = append(fk.calls, "finalize")
		return nil
	}
	if err := e.load([]string{k}); err != nil {
		t.Fatal(err)
	}
	want := []string{"finalize", "kexec_file_load"}
	if !reflect.DeepEqual(fk.calls, want) {
		t.Errorf("calls = %q, want %q", fk.calls, want)
	}
	if len(writes) != 1 || !strings.HasSuffix(writes[0],
		"out/finalize=1\n") {
		t.Errorf("writes = %q, want one 1 to out/finalize", writes)
	}
}

func TestWhyEPERM(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no capability", map[string]string{
			"/proc/self/status": "Name:\tx\nCapEff:\t0000000000000000\n",
		}, "CAP_SYS_BOOT"},
		{"disabled", map[string]string{
			"/proc/self/status":                    "CapEff:\t000001ffffffffff\n",
			"/proc/sys/kernel/kexec_load_disabled": "1\n",
		}, "kexec_load_disabled is 1"},
		{"limit", map[string]string{
			"/proc/sys/kernel/kexec_load_disabled":     "0\n",
			"/proc/sys/kernel/kexec_load_limit_reboot": "0\n",
		}, "kexec_load_limit_reboot is 0"},
		{"lockdown", map[string]string{
			"/sys/kernel/security/lockdown": "none [integrity] confidentiality",
		}, "locked down"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := testEnv(t, kho.System{}, &fakeKernel{})
			e.sys.ReadFile = func(name string) ([]byte, error) {
				if s, ok := tt.files[name]; ok {
					return []byte(s), nil
				}
				return nil, os.ErrNotExist
			}
			err := &kexecload.CallError{Call: "kexec_file_load(...)",
				Err: unix.EPERM}
			if got := e.advice(err); !strings.Contains(got, tt.want) {
				t.Errorf("advice(EPERM) = %q, want %q in it", got, tt.want)
			}
		})
	}
}
