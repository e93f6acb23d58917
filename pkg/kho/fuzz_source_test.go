//go:build linux

// Fuzz targets for the parsers of the evidence around the handover: the
// kernel log, the kernel config, releases and capture directories. Each
// is seeded from the captures in testdata. (linux only: ParseConfig is
// in live_linux.go.)

package kho

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// maxFuzzInput bounds the inputs the fuzz targets of this file parse;
// longer ones return at once. The parsers work line by line, and a
// kernel log message is under 1 KiB. Without a bound the fuzzer grows
// inputs whose length alone reaches new code in the standard library
// (bufio, regexp), then spends most of its time minimizing them (one
// run per pair of byte offsets), and a 60 s run does almost nothing.
const maxFuzzInput = 1 << 10

// testdataInfo returns the capture.json of the capture c in testdata.
func testdataInfo(tb testing.TB, c string) CaptureInfo {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(testdataRoot, c, CaptureFile))
	if err != nil {
		tb.Fatal(err)
	}
	var info CaptureInfo
	if err := json.Unmarshal(b, &info); err != nil {
		tb.Fatalf("%s: %v", c, err)
	}
	return info
}

// testdataInfos returns the capture.json of each capture in testdata.
func testdataInfos(tb testing.TB) []CaptureInfo {
	tb.Helper()
	var infos []CaptureInfo
	for _, c := range testdataCaptures(tb) {
		infos = append(infos, testdataInfo(tb, c))
	}
	return infos
}

// testdataLog returns the kernel log lines of the captures, and lines
// the kernel prints when it refuses a handover or a record.
func testdataLog(tb testing.TB) []string {
	lines := []string{
		"KHO: setup: handover FDT (0x1000) is incompatible with " +
			"'kho-v4': -1",
		"KHO: kexec-metadata blob too small (2 bytes)",
		"KHO: kexec-metadata version 2 not supported (expected 1)",
		"KHO: exec from:  (count 0)",
	}
	for _, info := range testdataInfos(tb) {
		lines = append(lines, info.Log...)
	}
	return lines
}

func FuzzParseKmsg(f *testing.F) {
	var all [][]byte
	for i, l := range testdataLog(f) {
		r := fmt.Sprintf("6,%d,%d,-;%s\n", 500+i, 1234567+i, l)
		f.Add([]byte(r))
		all = append(all, []byte(r))
	}
	all = append(all, []byte("4,9,9,-,caller=T1;KHO: x\n SUBSYSTEM=y\n"),
		[]byte("6,1,1,-;Linux version 7.2.13\n"), []byte("no separator"))
	f.Add(bytes.Join(all, []byte{0}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		// NUL separates records: /dev/kmsg returns one per read.
		recs := bytes.Split(b, []byte{0})
		got := ParseKmsg(recs)
		checkKHOLines(t, got, len(recs))
		for _, l := range got {
			if !bytes.Contains(b, []byte(l)) {
				t.Fatalf("ParseKmsg() = %q, not in the input", l)
			}
		}
	})
}

func FuzzParseSyslog(f *testing.F) {
	var all []string
	for _, l := range testdataLog(f) {
		all = append(all, "<6>[    0.512000] "+l, "<4>"+l)
	}
	f.Add([]byte(strings.Join(all, "\n") + "\n"))
	f.Add([]byte("<6>[ 1.0] KHO: exec from: 7.2.13 (count 1)\r\n" +
		"[12345678901234567890] KHO: x\n<1234567>KHO: y"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		got := ParseSyslog(b)
		checkKHOLines(t, got, bytes.Count(b, []byte{'\n'})+1)
		for _, l := range got {
			if !bytes.Contains(b, []byte(l)) {
				t.Fatalf("ParseSyslog() = %q, not in the input", l)
			}
		}
	})
}

// checkKHOLines checks what every kernel log parser returns: at most
// one KHO message a record and maxLogLines in all, each one line.
func checkKHOLines(t *testing.T, lines []string, records int) {
	t.Helper()
	if len(lines) > records || len(lines) > maxLogLines {
		t.Fatalf("got %d lines from %d records, want at most %d", len(lines),
			records, min(records, maxLogLines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, LogPrefix) || strings.ContainsAny(l, "\n") ||
			strings.HasSuffix(l, "\r") {
			t.Fatalf("line %q: want one line starting %q", l, LogPrefix)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, info := range testdataInfos(f) {
		var b strings.Builder
		keys := make([]string, 0, len(info.Config))
		for k := range info.Config {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if v := info.Config[k]; v == "n" {
				fmt.Fprintf(&b, "# %s is not set\n", k)
			} else {
				fmt.Fprintf(&b, "%s=%s\n", k, v)
			}
		}
		f.Add([]byte(b.String()))
	}
	f.Add([]byte("#\n# Automatically generated file; DO NOT EDIT.\n" +
		"CONFIG_CMDLINE=\"console=ttyS0 kho=on\"\nCONFIG_X=\n=y\n" +
		"# CONFIG_Y is not set\r\nCONFIG_Z=y"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		m := ParseConfig(b)
		if m == nil {
			t.Fatalf("ParseConfig() = nil, want a map")
		}
		for k, v := range m {
			if !bytes.Contains(b, []byte(k)) ||
				!bytes.Contains(b, []byte(v)) {
				t.Fatalf("ParseConfig() has %q=%q, not in the input", k, v)
			}
			if strings.ContainsAny(k+v, "\n") {
				t.Fatalf("ParseConfig() has %q=%q across lines", k, v)
			}
		}
		if len(m) > bytes.Count(b, []byte{'\n'})+1 {
			t.Fatalf("ParseConfig() = %d options from %d lines", len(m),
				bytes.Count(b, []byte{'\n'})+1)
		}
	})
}

func FuzzParseExecFrom(f *testing.F) {
	for _, l := range testdataLog(f) {
		f.Add(l)
	}
	f.Add("KHO: exec from: 7.3.4 (count 1) (count 2)")
	f.Add("KHO: exec from: " + strings.Repeat("é", 64) + " (count 9)")
	f.Fuzz(func(t *testing.T, line string) {
		if len(line) > maxFuzzInput {
			return
		}
		r, ok := ParseExecFrom(line)
		if !ok {
			if r != (Record{}) {
				t.Fatalf("ParseExecFrom(%q) = %+v, false", line, r)
			}
			return
		}
		if r.Version != RecordVersion ||
			utf8.RuneCountInString(r.PreviousRelease) > releaseLen-1 ||
			strings.ContainsAny(r.PreviousRelease, "\n") {
			t.Fatalf("ParseExecFrom(%q) = %+v", line, r)
		}
		// The kernel's line for the record gives the record back.
		again := fmt.Sprintf("KHO: exec from: %s (count %d)",
			r.PreviousRelease, r.KexecCount)
		if r2, ok := ParseExecFrom(again); !ok || r2 != r {
			t.Fatalf("ParseExecFrom(%q) = %+v, %v, want %+v", again, r2,
				ok, r)
		}
	})
}

func FuzzParseRelease(f *testing.F) {
	for _, info := range testdataInfos(f) {
		f.Add(info.Release)
	}
	for _, s := range []string{"7.3.4-amd64", "6.19.0-rc3+", "6.16",
		"1000.1000", "7", "07.01.0", "7..2", ".7.2", "99999999999999999999.1",
		"7.2\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, release string) {
		if len(release) > maxFuzzInput {
			return
		}
		v, err := ParseRelease(release)
		if err != nil {
			if v != (Version{}) {
				t.Fatalf("ParseRelease(%q) = %+v, %v", release, v, err)
			}
			return
		}
		if v.Major < 0 || v.Major > 1000 || v.Minor < 0 || v.Minor > 1000 {
			t.Fatalf("ParseRelease(%q) = %+v, out of range", release, v)
		}
		again, err := ParseRelease(fmt.Sprintf("%d.%d", v.Major, v.Minor))
		if err != nil || again != v {
			t.Fatalf("ParseRelease(%d.%d) = %+v, %v, want %+v", v.Major,
				v.Minor, again, err, v)
		}
		g, known := GenerationOfRelease(v)
		if known != (g != GenerationUnknown) {
			t.Fatalf("GenerationOfRelease(%+v) = %v, %v", v, g, known)
		}
		if HasRecord(v) && NeedsFinalize(v) {
			t.Fatalf("release %+v both has a record and needs finalize",
				v)
		}
	})
}

// writeFuzzCapture lays out a capture: capture.json holding info and,
// unless meta is empty, kho/ with meta as the incoming and outgoing
// kexec-metadata blobs and an incoming LUO blob (never read).
func writeFuzzCapture(t *testing.T, dir string, info, meta []byte) {
	t.Helper()
	files := map[string][]byte{CaptureFile: info}
	if len(meta) > 0 {
		files["kho/in/sub_fdts/"+MetadataName] = meta
		files["kho/in/sub_fdts/"+LUOName] = nil
		files["kho/out/sub_fdts/"+MetadataName] = meta
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fuzzInfo builds capture.json from fuzzed fields: config as lines of
// NAME=VALUE, the log as lines, setup_data as little-endian u32s.
func fuzzInfo(schema int, release, cmdline, debugfs string, config, log,
	setup []byte) []byte {
	info := CaptureInfo{Schema: schema, Release: release, Cmdline: cmdline,
		Arch: "x86_64", Debugfs: Tristate(debugfs)}
	if len(config) > 0 {
		info.Config = map[string]string{}
		for _, l := range strings.Split(string(config), "\n") {
			k, v, _ := strings.Cut(l, "=")
			info.Config[k] = v
		}
	}
	if len(log) > 0 {
		info.Log = strings.Split(string(log), "\n")
	}
	for len(setup) >= 4 {
		info.SetupData = append(info.SetupData,
			binary.LittleEndian.Uint32(setup))
		setup = setup[4:]
	}
	b, _ := json.Marshal(info)
	return b
}

// FuzzReadCapture reads hostile captures, then writes each one it
// accepts again with WriteCapture: the copy must read back as the same
// evidence with the same decisions. capture.json is raw when raw is not
// empty, else made from the other fields: the fuzzer then explores the
// evidence rather than JSON syntax (encoding/json's own business), and
// every input stays small, so minimizing it, one run per candidate,
// each run a few files, takes seconds rather than the whole run. The
// kho/ side is one blob: FuzzReadState covers the rest. Every run
// writes files under $TMPDIR: on a tmpfs (TMPDIR=/dev/shm) it runs
// about four times as many inputs a minute as on a disk.
func FuzzReadCapture(f *testing.F) {
	for _, c := range testdataCaptures(f) {
		info := testdataInfo(f, c)
		var config []string
		for _, k := range []string{"CONFIG_KEXEC_HANDOVER",
			"CONFIG_KEXEC_HANDOVER_DEBUGFS"} {
			config = append(config, k+"="+info.Config[k])
		}
		var setup []byte
		for _, t := range info.SetupData {
			setup = binary.LittleEndian.AppendUint32(setup, t)
		}
		meta := testdataFile(f, c, "in/sub_fdts/"+MetadataName)
		// Only the parameters that KHO decisions read: the harness's
		// own would make every minimization slower.
		var params []string
		for _, p := range strings.Fields(info.Cmdline) {
			k, _, _ := strings.Cut(p, "=")
			if k == "kho" || k == "liveupdate" || k == "reserve_mem" {
				params = append(params, p)
			}
		}
		f.Add([]byte(nil), info.Schema, info.Release,
			strings.Join(params, " "),
			string(info.Debugfs), []byte(strings.Join(config, "\n")),
			[]byte(strings.Join(info.Log, "\n")), setup, meta)
	}
	for _, raw := range []string{`{"schema":1} trailing`,
		`{"schema":1,"kernel_log":["KHO: exec from: 7.2.13 (count 1)"]}`,
		`{"SCHEMA":1,"setup_data":[10,4294967295]}`, `[]`, `{"schema":1.5}`,
	} {
		f.Add([]byte(raw), 0, "", "", "", []byte{}, []byte{}, []byte{},
			[]byte{1, 0, 0, 0})
	}
	f.Fuzz(func(t *testing.T, raw []byte, schema int, release, cmdline,
		debugfs string, config, log, setup, meta []byte) {
		if len(raw)+len(release)+len(cmdline)+len(debugfs)+len(config)+
			len(log)+len(setup)+len(meta) > maxFuzzInput {
			return
		}
		info := raw
		if len(raw) == 0 {
			info = fuzzInfo(schema, release, cmdline, debugfs, config, log,
				setup)
		}
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		writeFuzzCapture(t, src, info, meta)
		s, err := ReadCapture(src)
		if (s == nil) == (err == nil) {
			t.Fatalf("ReadCapture() = %v, %v: want exactly one", s, err)
		}
		if err != nil {
			return
		}
		if len(s.Log) > maxLogLines {
			t.Fatalf("ReadCapture() kept %d log lines", len(s.Log))
		}
		want := fuzzStateJSON(t, s)

		again := filepath.Join(dir, "again")
		if err := WriteCapture(again, s); err != nil {
			t.Fatalf("WriteCapture() = %v", err)
		}
		s2, err := ReadCapture(again)
		if err != nil {
			t.Fatalf("ReadCapture(WriteCapture()) = %v", err)
		}
		if got := fuzzStateJSON(t, s2); got != want {
			t.Fatalf("recaptured:\n%s\nwant:\n%s", got, want)
		}
		a, b := *s2, *s
		a.KHO, b.KHO = nil, nil
		for k := range b.Config {
			if !configKeep(k) {
				delete(b.Config, k)
			}
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("recaptured %+v, want %+v", a, b)
		}
	})
}

// fuzzStateJSON is stateJSON for a capture that may have no kho/.
func fuzzStateJSON(t *testing.T, s *System) string {
	t.Helper()
	var st *State
	if s.KHO != nil {
		var err error
		if st, err = ReadState(s.KHO); err != nil {
			t.Fatalf("ReadState() = %v", err)
		}
	}
	b, err := json.Marshal(struct {
		State     *State
		Inherited Inheritance
		Outgoing  Outgoing
		Built     Tristate
		Enabled   Tristate
	}{st, s.Inherited(), s.Outgoing(), s.Built(), s.Enabled()})
	if err != nil {
		t.Fatalf("json.Marshal() = %v", err)
	}
	return string(b)
}
