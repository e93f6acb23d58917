package chain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Netflix/go-expect"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// testKernels are the kernels of DefaultChain in the tests.
var testKernels = []Kernel{
	{Series: "7.2", Release: "7.2.13", Path: "/k/7.2/bzImage"},
	{Series: "7.3", Release: "7.3.4", Path: "/k/7.3/bzImage"},
	{Series: "7.2", Release: "7.2.13", Path: "/k/7.2/bzImage"},
	{Series: "7.2", Release: "7.2.13", Path: "/k/7.2/bzImage"},
}

// goodStatus returns what kexecmeta status should report on boot i
// (from 0) of a chain of kernels.
func goodStatus(kernels []Kernel, i int) Status {
	k := kernels[i]
	s := Status{
		Schema:     1,
		Release:    k.Release,
		Arch:       "x86_64",
		KexecCount: uint32(i),
		Inherited: Handover{
			Reason: "cold-boot",
		},
		Outgoing: Handover{
			Found:  true,
			Source: "debugfs",
			Record: &Record{Version: 1, PreviousRelease: k.Release,
				KexecCount: uint32(i + 1)},
		},
	}
	if i > 0 {
		prev := kernels[i-1].Release
		s.PreviousRelease = prev
		s.Inherited = Handover{
			Found:  true,
			Source: "debugfs",
			Record: &Record{Version: 1, PreviousRelease: prev,
				KexecCount: uint32(i)},
		}
	}
	return s
}

// goodBoots returns the boots a correct chain of kernels reports.
func goodBoots(t *testing.T, kernels []Kernel) []Boot {
	t.Helper()
	var boots []Boot
	for i := range kernels {
		s := goodStatus(kernels, i)
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		b := Boot{N: i + 1, JSON: string(js), Status: s}
		if i < len(kernels)-1 {
			b.Handoff = HandoffPrefix + " kexec into " +
				kernels[i+1].Release
		}
		boots = append(boots, b)
	}
	return boots
}

// transcript returns the console output of a guest reporting boots, as
// the guest script prints it, with some kernel and init noise.
func transcript(boots []Boot) string {
	var b strings.Builder
	for _, bt := range boots {
		fmt.Fprintf(&b, "[    0.000000] Linux version %s\r\n",
			bt.Status.Release)
		fmt.Fprintf(&b, "2025/01/01 00:00:00 Welcome to u-root!\r\n")
		fmt.Fprintf(&b, "%sboot %d status begin\r\n", marker, bt.N)
		fmt.Fprintf(&b, "%s\r\n", bt.JSON)
		fmt.Fprintf(&b, "%sboot %d status end %d\r\n", marker, bt.N,
			bt.Exit)
		if bt.Handoff != "" {
			fmt.Fprintf(&b, "%sboot %d kexec into x\r\n", marker, bt.N)
			fmt.Fprintf(&b, "%s\r\n", bt.Handoff)
		}
	}
	fmt.Fprintf(&b, "%sdone after %d boots\r\n", marker, len(boots))
	b.WriteString("2025/01/01 00:00:00 TESTS PASSED MARKER\r\n")
	return b.String()
}

// readTranscript runs Read on a console that prints s and then falls
// silent. (Closing the pty's far end could drop unread output.)
func readTranscript(t *testing.T, s string, n int) ([]Boot, error) {
	t.Helper()
	c, err := expect.NewConsole()
	if err != nil {
		t.Skipf("no pty for a console: %v", err)
	}
	defer c.Close()
	go func() {
		_, _ = c.Tty().Write([]byte(s))
	}()
	return Read(c, n, 500*time.Millisecond)
}

func TestReadCheck(t *testing.T) {
	good := goodBoots(t, testKernels)
	tests := []struct {
		name       string
		transcript func() string
		n          int
		readErr    error  // errors.Is target, nil for none
		checkErr   string // substring of Check's error, "" for none
	}{
		{
			name:       "good",
			transcript: func() string { return transcript(good) },
			n:          4,
		},
		{
			name: "printk before the JSON line",
			transcript: func() string {
				return strings.Replace(transcript(good), "status begin\r\n",
					"status begin\r\n[    1.2] KHO: exec from: 7.2.13\r\n", 1)
			},
			n: 4,
		},
		{
			name: "no handoff line",
			transcript: func() string {
				return strings.Replace(transcript(good),
					good[1].Handoff+"\r\n", "", 1)
			},
			n:        4,
			checkErr: "boot 2: no \"kexecmeta: handoff:\" line",
		},
		{
			name: "handoff line twice on one line",
			transcript: func() string {
				return strings.Replace(transcript(good),
					good[2].Handoff+"\r\n",
					good[2].Handoff+good[2].Handoff+"\r\n", 1)
			},
			n: 4,
		},
		{
			name: "chain too short",
			transcript: func() string {
				return transcript(good[:3])
			},
			n:       4,
			readErr: ErrChain,
		},
		{
			name: "kexecmeta boot failed",
			transcript: func() string {
				s := transcript(good[:2])
				i := strings.Index(s, marker+"boot 2 kexec into")
				return s[:i] + marker +
					"boot 2 kexecmeta boot failed: exit 1\r\n"
			},
			n:       4,
			readErr: ErrChain,
		},
		{
			name: "script failed",
			transcript: func() string {
				return "2025/01/01 00:00:00 Tests failed: test.sh ran " +
					"unsuccessfully: exit status 127\r\n"
			},
			n:       4,
			readErr: ErrChain,
		},
		{
			name: "two JSON lines",
			transcript: func() string {
				return strings.Replace(transcript(good), good[0].JSON,
					good[0].JSON+"\r\n{}", 1)
			},
			n:       4,
			readErr: ErrChain,
		},
		{
			name: "broken JSON",
			transcript: func() string {
				return strings.Replace(transcript(good), good[2].JSON,
					good[2].JSON[:11]+"[ 3.1] random: crng init"+
						good[2].JSON[11:], 1)
			},
			n:       4,
			readErr: ErrChain,
		},
		{
			name: "console ends",
			transcript: func() string {
				s := transcript(good)
				return s[:strings.Index(s, marker+"boot 3 status end")]
			},
			n:       4,
			readErr: os.ErrDeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readTranscript(t, tt.transcript(), tt.n)
			switch {
			case tt.readErr == nil && err != nil:
				t.Fatalf("Read = %v, want no error", err)
			case tt.readErr != nil && !errors.Is(err, tt.readErr):
				t.Fatalf("Read = %v, want %v", err, tt.readErr)
			case tt.readErr != nil:
				return
			}

			err = Check(testKernels, got)
			switch {
			case tt.checkErr == "" && err != nil:
				t.Errorf("Check = %v, want nil", err)
			case tt.checkErr != "" && err == nil:
				t.Errorf("Check = nil, want %q", tt.checkErr)
			case tt.checkErr != "" &&
				!strings.Contains(err.Error(), tt.checkErr):
				t.Errorf("Check = %v, want %q", err, tt.checkErr)
			}
			if tt.checkErr != "" {
				return
			}
			for i := range got {
				if got[i].JSON != good[i].JSON {
					t.Errorf("boot %d JSON = %s, want %s", i+1,
						got[i].JSON, good[i].JSON)
				}
				if got[i].Handoff != good[i].Handoff {
					t.Errorf("boot %d handoff = %q, want %q", i+1,
						got[i].Handoff, good[i].Handoff)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(b []Boot) []Boot
		want   string // substring of the error, "" for nil
	}{
		{
			name:   "good",
			mutate: func(b []Boot) []Boot { return b },
		},
		{
			name: "wrong release",
			mutate: func(b []Boot) []Boot {
				b[1].Status.Release = "7.2.13"
				return b
			},
			want: `boot 2: release = "7.2.13", want "7.3.4"`,
		},
		{
			name: "cold boot inherits",
			mutate: func(b []Boot) []Boot {
				b[0].Status.Inherited.Found = true
				return b
			},
			want: "boot 1: inherited.found = true on a cold boot",
		},
		{
			name: "count not reset",
			mutate: func(b []Boot) []Boot {
				b[0].Status.KexecCount = 3
				return b
			},
			want: "boot 1: kexec_count = 3, want 0",
		},
		{
			name: "read from kmsg",
			mutate: func(b []Boot) []Boot {
				b[2].Status.Inherited.Source = "kmsg"
				return b
			},
			want: `boot 3: inherited.source = "kmsg", want "debugfs"`,
		},
		{
			name: "handover lost",
			mutate: func(b []Boot) []Boot {
				b[3].Status.Inherited = Handover{Reason: "cold-boot"}
				b[3].Status.PreviousRelease = ""
				b[3].Status.KexecCount = 0
				return b
			},
			want: "boot 4: inherited.found = false",
		},
		{
			name: "wrong previous release",
			mutate: func(b []Boot) []Boot {
				b[2].Status.PreviousRelease = "7.2.13"
				return b
			},
			want: `boot 3: previous_release = "7.2.13", want "7.3.4"`,
		},
		{
			name: "no outgoing record",
			mutate: func(b []Boot) []Boot {
				b[1].Status.Outgoing.Record = nil
				return b
			},
			want: "boot 2: outgoing.record = null",
		},
		{
			name: "outgoing count",
			mutate: func(b []Boot) []Boot {
				b[0].Status.Outgoing.Record.KexecCount = 0
				return b
			},
			want: "boot 1: outgoing.record.kexec_count = 0, want 1",
		},
		{
			name: "status failed",
			mutate: func(b []Boot) []Boot {
				b[0].Exit = 1
				return b
			},
			want: "boot 1: kexecmeta status exit 1, want 0",
		},
		{
			name: "missing boot",
			mutate: func(b []Boot) []Boot {
				return b[:3]
			},
			want: "chain: got 3 boots, want 4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(testKernels, tt.mutate(goodBoots(t, testKernels)))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Errorf("Check = nil, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Check = %v, want %q", err, tt.want)
			}
		})
	}
}

// hostEnv is the script's environment in the tests: without
// VMTEST_IN_GUEST=1, so it leaves the host's printk level alone.
var hostEnv = expand.ListEnviron("PATH=/nonexistent")

// errKexec stands for a kexec: the fake `kexecmeta boot` never returns.
var errKexec = errors.New("kexec")

// TestScript runs the guest script with the shell interpreter gosh uses,
// once per boot, with a fake kexecmeta, and checks that the marker files
// alone steer it along the chain.
func TestScript(t *testing.T) {
	state := t.TempDir()
	series := []string{"7.2", "7.3", "7.2", "7.2"}
	prog, err := syntax.NewParser().Parse(
		strings.NewReader(Script(state, "/share", series)), "test.sh")
	if err != nil {
		t.Fatalf("parsing the script: %v", err)
	}

	// next is the kernel each boot should kexec into, "" for none.
	next := []string{"7.3", "7.2", "7.2", ""}
	for i, want := range next {
		n := i + 1
		var out bytes.Buffer
		var calls []string
		fake := func(interp.ExecHandlerFunc) interp.ExecHandlerFunc {
			return func(ctx context.Context, args []string) error {
				calls = append(calls, strings.Join(args, " "))
				if len(args) > 1 && args[1] == "boot" {
					return errKexec
				}
				fmt.Fprintln(interp.HandlerCtx(ctx).Stdout, `{"schema":1}`)
				return nil
			}
		}
		r, err := interp.New(interp.StdIO(nil, &out, &out),
			interp.Env(hostEnv), interp.ExecHandlers(fake))
		if err != nil {
			t.Fatal(err)
		}
		err = r.Run(context.Background(), prog)

		wantCalls := []string{"kexecmeta status --json"}
		wantOut := fmt.Sprintf("%sboot %d status begin\n{\"schema\":1}\n"+
			"%sboot %d status end 0\n", marker, n, marker, n)
		if want == "" {
			if err != nil {
				t.Errorf("boot %d: script = %v, want nil", n, err)
			}
			wantOut += fmt.Sprintf("%sdone after %d boots\n", marker, n)
		} else {
			if !errors.Is(err, errKexec) {
				t.Errorf("boot %d: script = %v, want the kexec", n, err)
			}
			wantCalls = append(wantCalls, fmt.Sprintf("kexecmeta boot "+
				"/share/%s/bzImage --initrd /share/initramfs.cpio "+
				"--reuse-cmdline", want))
			wantOut += fmt.Sprintf("%sboot %d kexec into %s\n", marker,
				n, want)
		}
		got := strings.Join(calls, "\n")
		if got != strings.Join(wantCalls, "\n") {
			t.Errorf("boot %d: ran\n%s\nwant\n%s", n, got,
				strings.Join(wantCalls, "\n"))
		}
		if out.String() != wantOut {
			t.Errorf("boot %d: printed\n%s\nwant\n%s", n, out.String(),
				wantOut)
		}
		if _, err := os.Stat(filepath.Join(state,
			fmt.Sprintf("boot.%d", n))); err != nil {
			t.Errorf("boot %d: marker: %v", n, err)
		}
	}
}

func TestScriptBootFails(t *testing.T) {
	prog, err := syntax.NewParser().Parse(strings.NewReader(
		Script(t.TempDir(), "/share", DefaultChain)), "test.sh")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	fail := func(interp.ExecHandlerFunc) interp.ExecHandlerFunc {
		return func(ctx context.Context, args []string) error {
			if args[1] == "boot" {
				return interp.NewExitStatus(3)
			}
			return nil
		}
	}
	r, err := interp.New(interp.StdIO(nil, &out, &out),
		interp.Env(hostEnv), interp.ExecHandlers(fail))
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(context.Background(), prog)
	if st, ok := interp.IsExitStatus(err); !ok || st != 1 {
		t.Errorf("script = %v, want exit status 1", err)
	}
	want := marker + "boot 1 kexecmeta boot failed: exit 3\n"
	if !strings.HasSuffix(out.String(), want) {
		t.Errorf("script printed\n%s\nwant it to end with %q",
			out.String(), want)
	}
}

func TestCachedKernels(t *testing.T) {
	cache := t.TempDir()
	put := func(series, release string) string {
		t.Helper()
		dir := filepath.Join(cache, "kernels", series)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "bzImage")
		if err := os.WriteFile(p, []byte("MZ"), 0o644); err != nil {
			t.Fatal(err)
		}
		if release != "" {
			err := os.WriteFile(filepath.Join(dir, "release"),
				[]byte(release+"\n"), 0o644)
			if err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	t.Setenv("VMTEST_KERNEL", "")

	p72 := put("7.2", "7.2.13")
	_, err := CachedKernels(cache, DefaultChain...)
	if !errors.Is(err, ErrNoKernel) {
		t.Fatalf("CachedKernels without 7.3 = %v, want %v", err,
			ErrNoKernel)
	}

	put("7.3", "")
	_, err = CachedKernels(cache, DefaultChain...)
	if !errors.Is(err, ErrNoKernel) {
		t.Fatalf("CachedKernels without 7.3/release = %v, want %v", err,
			ErrNoKernel)
	}

	p73 := put("7.3", "7.3.4")
	got, err := CachedKernels(cache, DefaultChain...)
	if err != nil {
		t.Fatalf("CachedKernels = %v", err)
	}
	want := map[string]Kernel{
		"7.2": {Series: "7.2", Release: "7.2.13", Path: p72},
		"7.3": {Series: "7.3", Release: "7.3.4", Path: p73},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CachedKernels = %v, want %v", got, want)
	}

	// VMTEST_KERNEL replaces the first series.
	other := put("other", "7.2.99")
	t.Setenv("VMTEST_KERNEL", other)
	got, err = CachedKernels(cache, DefaultChain...)
	if err != nil {
		t.Fatalf("CachedKernels = %v", err)
	}
	if k := got["7.2"]; k.Path != other || k.Release != "7.2.99" {
		t.Errorf("CachedKernels with VMTEST_KERNEL: 7.2 = %+v, want %s",
			k, other)
	}
}

func TestParseBuildOutput(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]Kernel
		wantErr bool
	}{
		{
			name: "two kernels",
			in:   "7.2 7.2.13 /c/a/bzImage\n7.3 7.3.4 /c/b/bzImage\n",
			want: map[string]Kernel{
				"7.2": {"7.2", "7.2.13", "/c/a/bzImage"},
				"7.3": {"7.3", "7.3.4", "/c/b/bzImage"},
			},
		},
		{name: "empty", in: "", want: map[string]Kernel{}},
		{name: "two fields", in: "7.2 7.2.13\n", wantErr: true},
		{name: "bad series", in: "../x 7.2.13 /b\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBuildOutput(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseBuildOutput = %v, want error %v", err,
					tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) && !tt.wantErr {
				t.Errorf("ParseBuildOutput = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestQEMUCommand(t *testing.T) {
	tests := []struct {
		name, qemu, arch string
		want             error
	}{
		{name: "missing binary", qemu: "/nonexistent/qemu -m 1G",
			want: ErrNoQEMU},
		{name: "blank", qemu: " ", want: ErrNoQEMU},
		{name: "arm64", qemu: "true", arch: "arm64", want: ErrArch},
		{name: "found", qemu: "true -m 1G", arch: "amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("VMTEST_QEMU", tt.qemu)
			t.Setenv("VMTEST_ARCH", tt.arch)
			got, err := QEMUCommand()
			if !errors.Is(err, tt.want) {
				t.Fatalf("QEMUCommand() = %q, %v, want %v", got, err,
					tt.want)
			}
			if err == nil && got != tt.qemu {
				t.Errorf("QEMUCommand() = %q, want %q", got, tt.qemu)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, goodBoots(t, testKernels)); err != nil {
		t.Fatal(err)
	}
	want := `BOOT  RELEASE  PREVIOUS  COUNT  RECORD FROM
1     7.2.13   -         0      absent: cold-boot
2     7.3.4    7.2.13    1      debugfs
3     7.2.13   7.3.4     2      debugfs
4     7.2.13   7.2.13    3      debugfs
`
	if b.String() != want {
		t.Errorf("WriteTable wrote\n%s\nwant\n%s", b.String(), want)
	}
}

func TestSetup(t *testing.T) {
	src := t.TempDir()
	write := func(name, data string) string {
		t.Helper()
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k72, k73 := write("a", "kernel 7.2"), write("b", "kernel 7.3")
	initrd := write("initramfs.cpio", "cpio")
	kernels := []Kernel{{"7.2", "7.2.13", k72}, {"7.3", "7.3.4", k73},
		{"7.2", "7.2.13", k72}}

	dir := t.TempDir()
	fns, err := Setup(dir, Config{Boots: kernels, Initramfs: initrd,
		QEMU: "qemu-system-x86_64"})
	if err != nil {
		t.Fatalf("Setup = %v", err)
	}
	if len(fns) == 0 {
		t.Errorf("Setup returned no QEMU options")
	}
	for name, want := range map[string]string{
		"share/7.2/bzImage":    "kernel 7.2",
		"share/7.3/bzImage":    "kernel 7.3",
		"share/initramfs.cpio": "cpio",
		"state/test.sh": Script(GuestState, GuestShare,
			[]string{"7.2", "7.3", "7.2"}),
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v, want %q", name, got, err, want)
		}
	}

	// One series, two kernels.
	bad := append(kernels, Kernel{"7.3", "7.3.5", k72})
	_, err = Setup(t.TempDir(), Config{Boots: bad, Initramfs: initrd})
	if err == nil {
		t.Errorf("Setup with two 7.3 kernels = nil, want an error")
	}
}

func TestSetupScenario(t *testing.T) {
	src := t.TempDir()
	write := func(name, data string) string {
		t.Helper()
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k := write("k", "kernel")
	initrd := write("initramfs.cpio", "cpio")
	extra := write("extra", "extra cpio")
	boots := []Kernel{{"7.2", "7.2.13", k}, {"7.2", "7.2.13", k}}
	steps := []string{BootStep("7.2"), Block("x", "true")}

	tests := []struct {
		name    string
		c       Config
		wantErr bool
	}{
		{name: "steps and files", c: Config{Steps: steps,
			Files: map[string]string{"extra.cpio": extra,
				"sub/dir/extra": extra}}},
		{name: "one step for two boots", c: Config{Steps: steps[:1]},
			wantErr: true},
		{name: "file outside the share", c: Config{
			Files: map[string]string{"../x": extra}}, wantErr: true},
		{name: "absolute file name", c: Config{
			Files: map[string]string{"/x": extra}}, wantErr: true},
		{name: "file replacing the initramfs", c: Config{
			Files: map[string]string{"initramfs.cpio": extra}},
			wantErr: true},
		{name: "missing file", c: Config{
			Files: map[string]string{"x": filepath.Join(src, "none")}},
			wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := tt.c
			c.Boots, c.Initramfs, c.QEMU = boots, initrd, "qemu"
			c.ColdBootArgs = []string{"kho_scratch=2M,2M,2M"}
			_, err := Setup(dir, c)
			if tt.wantErr {
				if err == nil {
					t.Errorf("Setup = nil, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Setup = %v", err)
			}
			for name := range c.Files {
				got, err := os.ReadFile(filepath.Join(dir, "share",
					filepath.FromSlash(name)))
				if err != nil || string(got) != "extra cpio" {
					t.Errorf("share/%s = %q, %v, want the file", name,
						got, err)
				}
			}
			got, err := os.ReadFile(filepath.Join(dir, "state",
				"test.sh"))
			want := StepsScript(GuestState, GuestShare, steps)
			if err != nil || string(got) != want {
				t.Errorf("test.sh = %q, %v, want %q", got, err, want)
			}
		})
	}
}

// runBoots runs the script once per boot, as the guest would, with
// kexecmeta faked: `kexecmeta boot` kexecs (ends the run) unless
// bootFails, anything else prints a status line. It returns all that
// the runs printed.
func runBoots(t *testing.T, script string, boots int,
	bootFails bool) string {
	t.Helper()
	prog, err := syntax.NewParser().Parse(strings.NewReader(script),
		"test.sh")
	if err != nil {
		t.Fatalf("parsing the script: %v", err)
	}
	var out bytes.Buffer
	fake := func(interp.ExecHandlerFunc) interp.ExecHandlerFunc {
		return func(ctx context.Context, args []string) error {
			hc := interp.HandlerCtx(ctx)
			switch {
			case len(args) > 1 && args[1] == "boot" && bootFails:
				fmt.Fprintln(hc.Stderr, "kexecmeta: no")
				return interp.NewExitStatus(1)
			case len(args) > 1 && args[1] == "boot":
				fmt.Fprintln(hc.Stdout, HandoffPrefix+" "+
					strings.Join(args[2:], " "))
				return errKexec
			case len(args) > 1 && args[1] == "status":
				fmt.Fprintln(hc.Stdout, `{"schema":1}`)
				return nil
			}
			return fmt.Errorf("unexpected command %q", args)
		}
	}
	for i := 0; i < boots; i++ {
		r, err := interp.New(interp.StdIO(nil, &out, &out),
			interp.Env(hostEnv), interp.ExecHandlers(fake))
		if err != nil {
			t.Fatal(err)
		}
		_ = r.Run(context.Background(), prog)
	}
	return out.String()
}

func TestStepsScript(t *testing.T) {
	steps := []string{
		Block("first", "echo one; echo two >&2; false") +
			BootStep("7.3", "--append", Quote("a b")),
		Block("no-newline", "printf partial") +
			Block("empty", "true") +
			Block("first", "echo again"),
	}
	out := runBoots(t, StepsScript(t.TempDir(), "/share", steps), 2,
		false)
	boots, done, err := ParseConsole(out)
	if err != nil || done != 2 || len(boots) != 2 {
		t.Fatalf("ParseConsole = %d boots, done %d, %v; want 2, 2, nil "+
			"(console:\n%s)", len(boots), done, err, out)
	}

	want := []struct {
		n     int
		name  string
		lines []string
		exit  int
	}{
		{1, "first", []string{"one", "two"}, 1},
		{2, "no-newline", []string{"partial"}, 0},
		{2, "empty", nil, 0},
		{2, "first", []string{"again"}, 0},
	}
	for i, w := range want {
		b := boots[w.n-1]
		j := i
		if w.n == 2 {
			j = i - 1
		}
		if j >= len(b.Blocks) {
			t.Errorf("boot %d: no block %d (%s)", w.n, j, w.name)
			continue
		}
		o := b.Blocks[j]
		if o.Name != w.name || !o.Ended || o.Exit != w.exit ||
			strings.Join(o.Lines, "|") != strings.Join(w.lines, "|") {
			t.Errorf("boot %d block %d = %+v, want %s %q exit %d", w.n,
				j, o, w.name, w.lines, w.exit)
		}
	}
	if o, ok := BlockOf(boots, 2, "first"); !ok || o.Text() != "again" {
		t.Errorf("BlockOf(2, first) = %+v, %v, want \"again\"", o, ok)
	}
	if _, ok := BlockOf(boots, 3, "first"); ok {
		t.Errorf("BlockOf(3, first) found a block of a boot not run")
	}
	wantHandoff := HandoffPrefix + " /share/7.3/bzImage --initrd " +
		"/share/initramfs.cpio --reuse-cmdline --append a b"
	if boots[0].Handoff != wantHandoff {
		t.Errorf("boot 1 handoff = %q, want %q", boots[0].Handoff,
			wantHandoff)
	}
}

func TestStepsScriptFails(t *testing.T) {
	tests := []struct {
		name      string
		steps     []string
		bootFails bool
		want      string
	}{
		{
			name:      "kexecmeta boot returns",
			steps:     []string{BootStep("7.2"), ""},
			bootFails: true,
			want:      "boot 1 kexecmeta boot failed: exit 1",
		},
		{
			name:  "step without a kexec",
			steps: []string{Block("x", "true"), ""},
			want:  "boot 1 step ended without a kexec: exit 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runBoots(t, StepsScript(t.TempDir(), "/s", tt.steps),
				1, tt.bootFails)
			if !strings.Contains(out, marker+tt.want+"\n") {
				t.Errorf("script printed\n%s\nwant a line %q", out,
					tt.want)
			}
			_, _, err := ParseConsole(out)
			if !errors.Is(err, ErrChain) {
				t.Errorf("ParseConsole = %v, want %v", err, ErrChain)
			}
		})
	}
}

func TestParseConsoleBlocks(t *testing.T) {
	begin := marker + "boot 1 status begin\n{}\n" + marker +
		"boot 1 status end 0\n"
	tests := []struct {
		name    string
		out     string
		wantErr bool
		ended   bool
	}{
		{name: "unterminated block", out: begin + marker +
			"boot 1 block b begin\nkexecmeta: handoff: x\n"},
		{name: "end of another block", out: begin + marker +
			"boot 1 block b begin\n" + marker + "boot 1 block c end 0\n",
			wantErr: true},
		{name: "end without begin", out: begin + marker +
			"boot 1 block b end 0\n", wantErr: true},
		{name: "block of another boot", out: begin + marker +
			"boot 2 block b begin\n", wantErr: true},
		{name: "ended", out: begin + marker + "boot 1 block b begin\n" +
			"x" + marker + "boot 1 block b end 3\n", ended: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			boots, _, err := ParseConsole(tt.out)
			if tt.wantErr {
				if !errors.Is(err, ErrChain) {
					t.Errorf("ParseConsole = %v, want %v", err, ErrChain)
				}
				return
			}
			if err != nil || len(boots) != 1 {
				t.Fatalf("ParseConsole = %d boots, %v, want 1, nil",
					len(boots), err)
			}
			o, ok := boots[0].Block("b")
			if !ok || o.Ended != tt.ended {
				t.Fatalf("block b = %+v, %v, want ended %v", o, ok,
					tt.ended)
			}
			if tt.ended && (o.Exit != 3 || o.Text() != "x") {
				t.Errorf("block b = %+v, want exit 3, text x", o)
			}
			if !tt.ended && (o.Exit != -1 ||
				boots[0].Handoff != "kexecmeta: handoff: x") {
				t.Errorf("block b = %+v, handoff %q; want exit -1 and "+
					"the handoff line", o, boots[0].Handoff)
			}
		})
	}
}
