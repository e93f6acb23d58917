package kho

import (
	"strings"
	"testing"
	"testing/fstest"
)

// khoFS builds a debugfs kho directory with the given blobs.
func khoFS(files map[string][]byte) fstest.MapFS {
	m := fstest.MapFS{}
	for name, b := range files {
		m[name] = &fstest.MapFile{Data: b}
	}
	return m
}

func TestInherited(t *testing.T) {
	v1 := rawRecord(1, "7.2.13", 1, RecordSize)
	out2 := rawRecord(1, "7.3.4", 2, RecordSize)
	khoConfig := map[string]string{
		"CONFIG_KEXEC_HANDOVER":         "y",
		"CONFIG_KEXEC_HANDOVER_DEBUGFS": "y",
		"CONFIG_DEBUG_FS":               "y",
	}
	for _, tt := range []struct {
		name       string
		sys        System
		wantFound  bool
		wantSource string
		wantReason Reason
		wantRec    Record
	}{
		{
			name: "debugfs blob",
			sys: System{KHO: khoFS(map[string][]byte{
				InMetadataPath:  v1,
				OutMetadataPath: out2,
			})},
			wantFound:  true,
			wantSource: SourceDebugfs,
			wantRec:    Record{1, "7.2.13", 1},
		},
		{
			name: "log line when debugfs is absent",
			sys: System{
				Config: khoConfig,
				Log: []string{
					"KHO: found kexec handover data.",
					"KHO: exec from: 7.3.4 (count 5)",
				},
			},
			wantFound:  true,
			wantSource: SourceKmsg,
			wantRec:    Record{1, "7.3.4", 5},
		},
		{
			name: "rejected blob names the rule",
			sys: System{KHO: khoFS(map[string][]byte{
				InMetadataPath: rawRecord(9, "x", 1, RecordSize),
			})},
			wantReason: ReasonRejected,
		},
		{
			name: "rejected in the log",
			sys: System{Config: khoConfig, Log: []string{
				"KHO: kexec-metadata version 2 not supported (expected 1)",
			}},
			wantReason: ReasonRejected,
		},
		{
			name: "not built",
			sys: System{Config: map[string]string{
				"CONFIG_KEXEC_HANDOVER": "n",
			}},
			wantReason: ReasonNotBuilt,
		},
		{
			name: "built, not enabled",
			sys: System{Config: khoConfig,
				Cmdline: "console=ttyS0 kho=off"},
			wantReason: ReasonNotEnabled,
		},
		{
			name: "built, enabled by default, kho=0 wins",
			sys: System{
				Config: map[string]string{
					"CONFIG_KEXEC_HANDOVER":                "y",
					"CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT": "y",
				},
				Cmdline: "kho=on kho=0",
			},
			wantReason: ReasonNotEnabled,
		},
		{
			name: "asked for, but scratch reservation failed",
			sys: System{Config: khoConfig, Cmdline: "kho=on", Log: []string{
				"KHO: Failed to reserve scratch area, disabling kexec " +
					"handover",
			}},
			wantReason: ReasonNotEnabled,
		},
		{
			name: "cold boot: no in/",
			sys: System{KHO: khoFS(map[string][]byte{
				OutMetadataPath: v1,
			}), SetupData: []uint32{}},
			wantReason: ReasonColdBoot,
		},
		{
			name: "abi mismatch in the log",
			sys: System{Config: khoConfig, Cmdline: "kho=on", Log: []string{
				"KHO: setup: handover FDT (0x1000) is incompatible with " +
					"'kho-v4': -1",
				"KHO: disabling KHO revival",
			}},
			wantReason: ReasonABIMismatch,
		},
		{
			name: "abi mismatch: handover passed, in/ absent",
			sys: System{KHO: khoFS(map[string][]byte{
				OutMetadataPath: v1,
			}), SetupData: []uint32{1, 10}},
			wantReason: ReasonABIMismatch,
		},
		{
			name: "previous kernel wrote no record",
			sys: System{KHO: khoFS(map[string][]byte{
				"in/fdt":               {0xd0, 0x0d, 0xfe, 0xed},
				"in/sub_fdts/memblock": {1},
				OutMetadataPath:        v1,
			})},
			wantReason: ReasonNoRecord,
		},
		{
			name: "debugfs not built, cold boot",
			sys: System{
				Config: map[string]string{
					"CONFIG_KEXEC_HANDOVER":         "y",
					"CONFIG_KEXEC_HANDOVER_DEBUGFS": "n",
				},
				Cmdline:   "kho=on",
				SetupData: []uint32{},
			},
			wantReason: ReasonColdBoot,
		},
		{
			name: "debugfs not built, handover passed",
			sys: System{
				Config: map[string]string{
					"CONFIG_KEXEC_HANDOVER":         "y",
					"CONFIG_KEXEC_HANDOVER_DEBUGFS": "n",
				},
				Cmdline:   "kho=on",
				SetupData: []uint32{10},
			},
			wantReason: ReasonNoDebugfs,
		},
		{
			name: "not root",
			sys: System{Config: khoConfig, Cmdline: "kho=on",
				Denied: "not root"},
			wantReason: ReasonDenied,
		},
		{
			name:       "nothing known",
			sys:        System{},
			wantReason: ReasonUnknown,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.sys.Inherited()
			if got.Found != tt.wantFound || got.Reason != tt.wantReason ||
				got.Source != tt.wantSource {
				t.Fatalf("Inherited() = found %v, source %q, reason %q "+
					"(%s); want %v, %q, %q", got.Found, got.Source,
					got.Reason, got.Detail, tt.wantFound, tt.wantSource,
					tt.wantReason)
			}
			if tt.wantFound && *got.Record != tt.wantRec {
				t.Errorf("Inherited().Record = %+v, want %+v", *got.Record,
					tt.wantRec)
			}
		})
	}
}

func TestOutgoing(t *testing.T) {
	sys := System{KHO: khoFS(map[string][]byte{
		OutMetadataPath: rawRecord(1, "7.2.13", 4, RecordSize),
	})}
	got := sys.Outgoing()
	want := Record{1, "7.2.13", 4}
	if !got.Found || *got.Record != want {
		t.Errorf("Outgoing() = %+v, want record %+v", got, want)
	}

	none := System{Config: map[string]string{"CONFIG_KEXEC_HANDOVER": "n"}}
	if got := none.Outgoing(); got.Found || got.Reason != ReasonNotBuilt {
		t.Errorf("Outgoing() without KHO = %+v, want reason %s", got,
			ReasonNotBuilt)
	}
}

func TestParseExecFrom(t *testing.T) {
	for _, tt := range []struct {
		line string
		ok   bool
		want Record
	}{
		{"KHO: exec from: 7.2.13 (count 1)", true, Record{1, "7.2.13", 1}},
		{"KHO: exec from: 7.3.4-custom+ (count 42)", true,
			Record{1, "7.3.4-custom+", 42}},
		{"KHO: exec from:  (count 0)", true, Record{1, "", 0}},
		{"KHO: exec from: x (count 99999999999)", false, Record{}},
		{"KHO: exec from: x (count -1)", false, Record{}},
		// 22 three-byte runes: 22 characters but 66 bytes, more than
		// the kernel's 64-byte field can hold.
		{"KHO: exec from: " + strings.Repeat("\u20ac", 22) + " (count 1)",
			false, Record{}},
		{"exec from: 7.2 (count 1)", false, Record{}},
	} {
		got, ok := ParseExecFrom(tt.line)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseExecFrom(%q) = %+v, %v; want %+v, %v", tt.line,
				got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseKmsg(t *testing.T) {
	recs := [][]byte{
		[]byte("6,512,1234567,-;KHO: exec from: 7.2.13 (count 1)\n"),
		[]byte("6,513,1234568,-;Linux version 7.3.4\n"),
		[]byte("4,514,1234569,-,caller=T1;KHO: disabling KHO revival\n" +
			" SUBSYSTEM=x\n"),
		[]byte("garbage without separator"),
	}
	got := ParseKmsg(recs)
	want := []string{"KHO: exec from: 7.2.13 (count 1)",
		"KHO: disabling KHO revival"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ParseKmsg() = %q, want %q", got, want)
	}

	syslog := "<6>[    0.512000] KHO: exec from: 7.2.13 (count 2)\n" +
		"<6>KHO: found kexec handover data.\n<5>[ 1.0] other\n"
	got = ParseSyslog([]byte(syslog))
	want = []string{"KHO: exec from: 7.2.13 (count 2)",
		"KHO: found kexec handover data."}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ParseSyslog() = %q, want %q", got, want)
	}
}

func TestParamOn(t *testing.T) {
	for _, tt := range []struct {
		cmdline, key string
		on, ok       bool
	}{
		{"kho=on", "kho", true, true},
		{"kho=on kho=0", "kho", false, true},
		{"kho=Y", "kho", true, true},
		{"kho=maybe", "kho", false, false},
		{"quiet", "kho", false, false},
		{"quiet -- kho=on", "kho", false, false},
		{"liveupdate=on kho=off", "liveupdate", true, true},
	} {
		on, ok := ParamOn(tt.cmdline, tt.key)
		if on != tt.on || ok != tt.ok {
			t.Errorf("ParamOn(%q, %q) = %v, %v; want %v, %v", tt.cmdline,
				tt.key, on, ok, tt.on, tt.ok)
		}
	}
}
