package kexecload

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    []string
		wantErr error
		offset  int
	}{
		{name: "empty", in: "", want: nil},
		{name: "only spaces", in: " \t ", want: nil},
		{
			name: "plain",
			in:   "  console=ttyS0  quiet ro ",
			want: []string{"console=ttyS0", "quiet", "ro"},
		},
		{
			name: "kernel whitespace",
			in:   "a\tb\vc\fd\re f",
			want: []string{"a", "b", "c", "d", "e", "f"},
		},
		{
			// lib/ctype.c makes 0xA0 a space, even inside UTF-8.
			name: "no-break space splits",
			in:   "msg=voil\xc3\xa0 x",
			want: []string{"msg=voil\xc3", "x"},
		},
		{
			name: "quoted value keeps quotes",
			in:   `root="PARTLABEL=My Disk" ro`,
			want: []string{`root="PARTLABEL=My Disk"`, "ro"},
		},
		{
			name: "leading quote",
			in:   `"root=PARTLABEL=My Disk" ro`,
			want: []string{`"root=PARTLABEL=My Disk"`, "ro"},
		},
		{
			name: "quote mid value",
			in:   `a=b"c d"e f`,
			want: []string{`a=b"c d"e`, "f"},
		},
		{
			name: "quoted 0xa0",
			in:   "a=\"x\xa0y\" z",
			want: []string{"a=\"x\xa0y\"", "z"},
		},
		{
			name: "init args",
			in:   "quiet -- -s single",
			want: []string{"quiet", "--", "-s", "single"},
		},
		{
			name:    "unclosed quote",
			in:      `ro root="My Disk quiet`,
			wantErr: ErrUnbalancedQuote,
			offset:  8,
		},
		{
			name:    "unclosed leading quote",
			in:      `"ro`,
			wantErr: ErrUnbalancedQuote,
			offset:  0,
		},
		{
			name:    "third quote",
			in:      `a="b"c" d`,
			wantErr: ErrUnbalancedQuote,
			offset:  6,
		},
		{
			name:    "NUL",
			in:      "quiet\x00ro",
			wantErr: ErrForbiddenByte,
			offset:  5,
		},
		{
			name:    "newline",
			in:      "quiet ro\n",
			wantErr: ErrForbiddenByte,
			offset:  8,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Tokenize(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Tokenize(%q) = %v, want %v", tt.in, err,
					tt.wantErr)
			}
			if err != nil {
				var ce *CmdlineError
				if !errors.As(err, &ce) || ce.Offset != tt.offset {
					t.Errorf("Tokenize(%q) = %v, want offset %d",
						tt.in, err, tt.offset)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Tokenize(%q) = %q, want %q", tt.in, got,
					tt.want)
			}
		})
	}
}

// The wanted values are what next_arg() in lib/cmdline.c gives.
func TestSplitParam(t *testing.T) {
	for _, tt := range []struct {
		name, tok, key, value string
		hasValue              bool
	}{
		{name: "flag", tok: "quiet", key: "quiet"},
		{name: "value", tok: "a=b", key: "a", value: "b", hasValue: true},
		{name: "empty value", tok: "a=", key: "a", hasValue: true},
		{name: "second equals", tok: "a=b=c", key: "a", value: "b=c",
			hasValue: true},
		{name: "leading equals", tok: "=a", key: "=a"},
		{name: "leading equals then value", tok: "=a=b", key: "=a",
			value: "b", hasValue: true},
		{name: "quoted value", tok: `root="PARTLABEL=My Disk"`,
			key: "root", value: "PARTLABEL=My Disk", hasValue: true},
		{name: "quoted token", tok: `"root=PARTLABEL=My Disk"`,
			key: "root", value: "PARTLABEL=My Disk", hasValue: true},
		{name: "quoted flag", tok: `"quiet"`, key: "quiet"},
		{name: "quote mid value", tok: `a=b"c d"e`, key: "a",
			value: `b"c d"e`, hasValue: true},
		{name: "quoted token, quote mid value", tok: `"a=b"c`,
			key: "a", value: `b"c`, hasValue: true},
		{name: "empty quoted value", tok: `a=""`, key: "a",
			hasValue: true},
		{name: "quoted token, empty value", tok: `"a="`, key: "a",
			hasValue: true},
		{name: "quoted value, tail", tok: `a="b"c`, key: "a",
			value: `b"c`, hasValue: true},
		{name: "quoted dashdash", tok: `"--"`, key: "--"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key, value, hasValue := SplitParam(tt.tok)
			if key != tt.key || value != tt.value ||
				hasValue != tt.hasValue {
				t.Errorf("SplitParam(%q) = %q, %q, %v, want %q, %q, %v",
					tt.tok, key, value, hasValue, tt.key, tt.value,
					tt.hasValue)
			}
		})
	}
}

// writeProcCmdline writes a fake /proc/cmdline and returns its path.
func writeProcCmdline(t *testing.T, line string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(p, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildCmdline(t *testing.T) {
	// This machine's /proc/cmdline, from a Firecracker guest.
	fc := "mitigations=auto,no_guest_host console=ttyS0 quiet " +
		"reboot=k panic=1 rdinit=/process_api -- --firecracker-init " +
		"--addr 0.0.0.0:2024 --auth-required\n"

	for _, tt := range []struct {
		name    string
		o       CmdlineOptions
		running string // written to ProcCmdline when Reuse
		want    string
		wantErr error
	}{
		{name: "empty", o: CmdlineOptions{}, want: ""},
		{
			name: "base spaces normalised",
			o:    CmdlineOptions{Base: "  a\t b  "},
			want: "a b",
		},
		{
			name: "appends in order",
			o: CmdlineOptions{Base: "a",
				Append: []string{"b=1 c", `d="x y"`}},
			want: `a b=1 c d="x y"`,
		},
		{
			name: "append goes before --",
			o:    CmdlineOptions{Base: "a -- x y", Append: []string{"b"}},
			want: "a b -- x y",
		},
		{
			name: "append with init args",
			o: CmdlineOptions{Base: "a -- x",
				Append: []string{"b -- y", "c"}},
			want: "a b c -- x y",
		},
		{
			name: "append makes --",
			o:    CmdlineOptions{Base: "a", Append: []string{"-- single"}},
			want: "a -- single",
		},
		{
			name: "empty init args kept",
			o:    CmdlineOptions{Base: "a --"},
			want: "a --",
		},
		{
			name: "quoted -- ends kernel params",
			o:    CmdlineOptions{Base: `a "--" x`, Append: []string{"b"}},
			want: "a b -- x",
		},
		{
			name: "explicit base keeps duplicates",
			o:    CmdlineOptions{Base: "a a BOOT_IMAGE=x"},
			want: "a a BOOT_IMAGE=x",
		},
		{
			name: "remove key",
			o: CmdlineOptions{Base: "console=ttyS0 console=tty0 quiet",
				Remove: []string{"console"}},
			want: "quiet",
		},
		{
			name: "remove matches - and _",
			o: CmdlineOptions{Base: "foo_bar=1 foo-bar baz",
				Remove: []string{"foo-bar"}},
			want: "baz",
		},
		{
			name: "remove exact",
			o: CmdlineOptions{Base: "console=ttyS0 console=tty0",
				Remove: []string{"console=tty0"}},
			want: "console=ttyS0",
		},
		{
			name: "remove exact quoted",
			o: CmdlineOptions{Base: `root="PARTLABEL=My Disk" ro`,
				Remove: []string{"root=PARTLABEL=My Disk"}},
			want: "ro",
		},
		{
			name: "remove after append",
			o: CmdlineOptions{Base: "a", Append: []string{"b=1"},
				Remove: []string{"b"}},
			want: "a",
		},
		{
			name: "remove leaves init args",
			o: CmdlineOptions{Base: "quiet -- quiet",
				Remove: []string{"quiet"}},
			want: "-- quiet",
		},
		{
			name:    "reuse drops boot loader params",
			o:       CmdlineOptions{Reuse: true, Append: []string{"quiet"}},
			running: "BOOT_IMAGE=/vmlinuz root=/dev/vda initrd=\\i quiet\n",
			want:    "root=/dev/vda quiet",
		},
		{
			name:    "reuse keeps last duplicate",
			o:       CmdlineOptions{Reuse: true, Append: []string{"a=1"}},
			running: "a=1 b a=2 a=1 b\n",
			want:    "a=2 b a=1",
		},
		{
			name:    "reuse leaves init args",
			o:       CmdlineOptions{Reuse: true, Append: []string{"x"}},
			running: "x -- x x BOOT_IMAGE=y\n",
			want:    "x -- x x BOOT_IMAGE=y",
		},
		{
			name: "reuse firecracker line",
			o: CmdlineOptions{Reuse: true, Append: []string{"kho=on"},
				Remove: []string{"quiet"}},
			running: fc,
			want: "mitigations=auto,no_guest_host console=ttyS0 " +
				"reboot=k panic=1 rdinit=/process_api kho=on -- " +
				"--firecracker-init --addr 0.0.0.0:2024 --auth-required",
		},
		{
			name:    "reuse empty",
			o:       CmdlineOptions{Reuse: true},
			running: "\n",
			want:    "",
		},
		{
			name:    "base and reuse",
			o:       CmdlineOptions{Base: "a", Reuse: true},
			wantErr: ErrBaseAndReuse,
		},
		{
			name: "reuse without /proc",
			o: CmdlineOptions{Reuse: true,
				ProcCmdline: "/nonexistent/proc/cmdline"},
			wantErr: fs.ErrNotExist,
		},
		{
			name:    "newline in append",
			o:       CmdlineOptions{Base: "a", Append: []string{"b\nc"}},
			wantErr: ErrForbiddenByte,
		},
		{
			name:    "unclosed quote in base",
			o:       CmdlineOptions{Base: `root="a b`},
			wantErr: ErrUnbalancedQuote,
		},
		{
			name:    "unclosed quote in running line",
			o:       CmdlineOptions{Reuse: true},
			running: "a=\"b\n",
			wantErr: ErrUnbalancedQuote,
		},
		{
			name:    "remove empty",
			o:       CmdlineOptions{Base: "a", Remove: []string{""}},
			wantErr: ErrBadKey,
		},
		{
			name:    "remove quoted",
			o:       CmdlineOptions{Base: "a", Remove: []string{`"a"`}},
			wantErr: ErrBadKey,
		},
		{
			name:    "remove two keys",
			o:       CmdlineOptions{Base: "a", Remove: []string{"a b"}},
			wantErr: ErrBadKey,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.running != "" {
				tt.o.ProcCmdline = writeProcCmdline(t, tt.running)
			}
			got, err := BuildCmdline(tt.o)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("BuildCmdline(%+v) = %v, want %v", tt.o, err,
					tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("BuildCmdline(%+v) = %q, want %q", tt.o, got,
					tt.want)
			}
		})
	}
}

func TestBuildCmdlineErrorNamesInput(t *testing.T) {
	_, err := BuildCmdline(CmdlineOptions{
		Base:   "a",
		Append: []string{"b", "c\x00"},
	})
	var ce *CmdlineError
	if !errors.As(err, &ce) {
		t.Fatalf("BuildCmdline = %v, want a *CmdlineError", err)
	}
	if ce.Input != "--append 2" || ce.Offset != 1 {
		t.Errorf("BuildCmdline = input %q offset %d, want --append 2 "+
			"offset 1", ce.Input, ce.Offset)
	}
	want := `--append 2: forbidden byte in command line "\x00" at ` +
		"byte offset 1"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

// A line reused and appended to on every hop must not grow.
func TestBuildCmdlineReuseHops(t *testing.T) {
	line := "BOOT_IMAGE=/boot/vmlinuz root=/dev/vda initrd=/boot/i " +
		"console=ttyS0 -- init-arg"
	var lines []string
	for hop := range 3 {
		p := writeProcCmdline(t, line+"\n")
		got, err := BuildCmdline(CmdlineOptions{
			Reuse:       true,
			ProcCmdline: p,
			Append:      []string{"a=1"},
		})
		if err != nil {
			t.Fatalf("hop %d: %v", hop, err)
		}
		lines = append(lines, got)
		line = got
	}
	want := "root=/dev/vda console=ttyS0 a=1 -- init-arg"
	for i, got := range lines {
		if got != want {
			t.Errorf("hop %d = %q, want %q", i, got, want)
		}
	}
}

func TestHasParam(t *testing.T) {
	toks := []string{"quiet", `"kho=on"`, "foo-bar=1", "--", "init"}
	for _, tt := range []struct {
		name, key string
		want      bool
	}{
		{name: "flag", key: "quiet", want: true},
		{name: "quoted token", key: "kho", want: true},
		{name: "underscore", key: "foo_bar", want: true},
		{name: "after --", key: "init", want: false},
		{name: "prefix only", key: "qui", want: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := HasParam(toks, tt.key); got != tt.want {
				t.Errorf("HasParam(%q, %q) = %v, want %v", toks, tt.key,
					got, tt.want)
			}
		})
	}
}

func TestEnsureParam(t *testing.T) {
	for _, tt := range []struct {
		name, line, key, value string
		want                   string
		wantAdded              bool
		wantErr                error
	}{
		{name: "added", line: "quiet", key: "kho", value: "on",
			want: "quiet kho=on", wantAdded: true},
		{name: "empty line", line: "", key: "kho", value: "on",
			want: "kho=on", wantAdded: true},
		{name: "kho=off kept", line: "kho=off quiet", key: "kho",
			value: "on", want: "kho=off quiet"},
		{name: "bare kho kept", line: "kho", key: "kho", value: "on",
			want: "kho"},
		{name: "before --", line: "quiet -- kho=x", key: "kho",
			value: "on", want: "quiet kho=on -- kho=x", wantAdded: true},
		{name: "value quoted", line: "a", key: "b", value: "x y",
			want: `a b="x y"`, wantAdded: true},
		{name: "bad key", line: "a", key: "k=v", value: "on",
			wantErr: ErrBadKey},
		{name: "bad line", line: "a\n", key: "kho", value: "on",
			wantErr: ErrForbiddenByte},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, added, err := EnsureParam(tt.line, tt.key, tt.value)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("EnsureParam(%q) = %v, want %v", tt.line, err,
					tt.wantErr)
			}
			if err == nil && (got != tt.want || added != tt.wantAdded) {
				t.Errorf("EnsureParam(%q, %q, %q) = %q, %v, want %q, %v",
					tt.line, tt.key, tt.value, got, added, tt.want,
					tt.wantAdded)
			}
		})
	}
}

func TestCheckCmdlineLen(t *testing.T) {
	for _, tt := range []struct {
		name    string
		n       int
		limit   int
		wantErr error
	}{
		{name: "unknown limit", n: 5000, limit: 0},
		{name: "at limit", n: 2016, limit: 2016},
		{name: "over", n: 2017, limit: 2016, wantErr: ErrCmdlineTooLong},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCmdlineLen(strings.Repeat("a", tt.n), tt.limit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckCmdlineLen(%d bytes, %d) = %v, want %v",
					tt.n, tt.limit, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(),
				"got 2017 bytes, want at most 2016") {
				t.Errorf("error %q does not give got and want", err)
			}
		})
	}
}

func TestReadRunningCmdline(t *testing.T) {
	p := writeProcCmdline(t, "a b\n")
	if got, err := ReadRunningCmdline(p); err != nil || got != "a b" {
		t.Errorf("ReadRunningCmdline = %q, %v, want \"a b\", nil", got,
			err)
	}
	p = writeProcCmdline(t, strings.Repeat("a", maxProcCmdline+1))
	if _, err := ReadRunningCmdline(p); !errors.Is(err,
		ErrCmdlineTooLong) {
		t.Errorf("ReadRunningCmdline(huge) = %v, want %v", err,
			ErrCmdlineTooLong)
	}
}
