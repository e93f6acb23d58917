package kho

import (
	"errors"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
)

// Where a record was read from.
const (
	// SourceDebugfs: the blob under the KHO debugfs directory.
	SourceDebugfs = "debugfs"

	// SourceKmsg: the kernel's `KHO: exec from:` log line.
	SourceKmsg = "kmsg"
)

// Reason says why no inherited record could be read.
type Reason string

// The reasons an inherited record is absent, each one telling a different
// story about this boot.
const (
	// ReasonNotBuilt: the kernel has no CONFIG_KEXEC_HANDOVER.
	ReasonNotBuilt Reason = "kho-not-built"

	// ReasonNotEnabled: KHO is built but was not enabled at boot
	// (no kho=on).
	ReasonNotEnabled Reason = "kho-not-enabled"

	// ReasonNoDebugfs: KHO is on but debugfs (or its KHO part) is not
	// built, and the kernel log holds no record line.
	ReasonNoDebugfs Reason = "debugfs-not-built"

	// ReasonColdBoot: this kernel did not come from a kexec that carried
	// a handover.
	ReasonColdBoot Reason = "cold-boot"

	// ReasonABIMismatch: a handover came but this kernel refused it,
	// because its KHO ABI (root compatible) differs.
	ReasonABIMismatch Reason = "abi-mismatch"

	// ReasonNoRecord: a handover was accepted but held no kexec-metadata
	// blob: the previous kernel was older than 7.1.
	ReasonNoRecord Reason = "no-record"

	// ReasonRejected: a record came but the kernel rules reject it.
	ReasonRejected Reason = "record-rejected"

	// ReasonDenied: the KHO debugfs directory is root-only and the
	// kernel log holds no record line: run as root.
	ReasonDenied Reason = "permission-denied"

	// ReasonUnknown: the evidence does not tell (for example the log is
	// unreadable and debugfs is absent).
	ReasonUnknown Reason = "unknown"
)

// Tristate is a yes/no answer that may not be known.
type Tristate string

// Tristate values.
const (
	Yes     Tristate = "yes"
	No      Tristate = "no"
	Unknown Tristate = "unknown"
)

// System is the evidence about one boot that kexecmeta reads: from the
// running kernel, or from a directory that `kexecmeta capture` wrote.
// Every field may be empty; the decisions below say "unknown" rather
// than guess.
type System struct {
	// Release is `uname -r`.
	Release string

	// Arch is `uname -m`.
	Arch string

	// Cmdline is /proc/cmdline.
	Cmdline string

	// Config maps CONFIG_ names to values ("y", "m", ...), from
	// /proc/config.gz; nil when the kernel does not export it.
	Config map[string]string

	// KHO is the debugfs kho directory (/sys/kernel/debug/kho), nil when
	// it does not exist.
	KHO fs.FS

	// Debugfs says whether the kernel supports debugfs at all.
	Debugfs Tristate

	// Denied says why the KHO debugfs directory could not be read for
	// lack of privilege (it is root-only), "" when it could.
	Denied string

	// Log is the kernel log, one message a line, nil when unreadable.
	Log []string

	// SetupData lists the x86 boot setup_data types this kernel was
	// given (/sys/kernel/boot_params/setup_data/*/type); nil when
	// unknown or not x86.
	SetupData []uint32
}

// setupKexecKHO is SETUP_KEXEC_KHO in arch/x86/include/uapi/asm/bootparam.h:
// the setup_data type that carries a handover to an x86 kernel.
const setupKexecKHO = 10

// Inheritance is what this kernel inherited from the one that kexec'd it.
type Inheritance struct {
	// Found says whether a valid record was read.
	Found bool `json:"found"`

	// Source is SourceDebugfs or SourceKmsg when Found.
	Source string `json:"source"`

	// Evidence is the file or log line the answer rests on.
	Evidence string `json:"evidence,omitempty"`

	// Reason says why there is no record, when not Found.
	Reason Reason `json:"reason,omitempty"`

	// Detail explains Reason in words.
	Detail string `json:"detail,omitempty"`

	// Record is the inherited record, when Found.
	Record *Record `json:"record"`
}

// Outgoing is the record this kernel will hand to the next one.
type Outgoing struct {
	// Found says whether the record was read.
	Found bool `json:"found"`

	// Source is SourceDebugfs when Found.
	Source string `json:"source"`

	// Evidence is the file the record was read from.
	Evidence string `json:"evidence,omitempty"`

	// Reason and Detail say why the record could not be read.
	Reason Reason `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`

	// Record is the outgoing record, when Found.
	Record *Record `json:"record"`
}

// Paths of the kexec-metadata blobs inside the debugfs kho directory.
const (
	InMetadataPath  = "in/sub_fdts/" + MetadataName
	OutMetadataPath = "out/sub_fdts/" + MetadataName
)

// Built says whether the kernel has CONFIG_KEXEC_HANDOVER.
func (s *System) Built() Tristate {
	if s.KHO != nil {
		return Yes
	}
	if s.Config != nil {
		if s.Config["CONFIG_KEXEC_HANDOVER"] == "y" {
			return Yes
		}
		return No
	}
	for _, l := range s.Log {
		if strings.HasPrefix(l, "KHO: ") {
			return Yes
		}
	}
	return Unknown
}

// Enabled says whether KHO was enabled at boot: the debugfs directory
// exists, or the command line (last kho= wins) or the build default
// (CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT) turns it on.
func (s *System) Enabled() Tristate {
	if s.KHO != nil {
		return Yes
	}
	if s.Built() == No || s.disabledAtBoot() != "" {
		return No
	}
	if on, ok := ParamOn(s.Cmdline, "kho"); ok {
		if on {
			return Yes
		}
		return No
	}
	if s.Config != nil {
		if s.Config["CONFIG_KEXEC_HANDOVER_ENABLE_DEFAULT"] == "y" {
			return Yes
		}
		return No
	}
	return Unknown
}

// disabledAtBoot returns the log line with which the kernel turned KHO
// off at boot although it was asked for: it could not reserve the scratch
// areas (kho_reserve_scratch).
func (s *System) disabledAtBoot() string {
	for _, l := range s.Log {
		if strings.Contains(l, "disabling kexec handover") {
			return l
		}
	}
	return ""
}

// kstrtobool parses a boolean as the kernel's kstrtobool does, which is
// how it reads kho=: y, Y, 1, on are true; n, N, 0, off are false.
func kstrtobool(s string) (val, ok bool) {
	switch strings.ToLower(s) {
	case "y", "yes", "1", "on":
		return true, true
	case "n", "no", "0", "off":
		return false, true
	}
	if s == "" {
		return false, false
	}
	switch s[0] {
	case 'y', 'Y', '1':
		return true, true
	case 'n', 'N', '0':
		return false, true
	}
	return false, false
}

// ParamOn reads a boolean boot parameter such as kho= or liveupdate= as
// the kernel does: the last one before any "--" counts, parsed by
// kstrtobool. ok is false when the parameter is absent or not a boolean.
func ParamOn(cmdline, key string) (on, ok bool) {
	v, found := lastParam(cmdline, key)
	if !found {
		return false, false
	}
	return kstrtobool(v)
}

// lastParam returns the value of the last key=value parameter before any
// "--" in a command line. Quoting does not matter for the keys looked up
// with it (kho, liveupdate).
func lastParam(cmdline, key string) (string, bool) {
	val, found := "", false
	for _, f := range strings.Fields(cmdline) {
		if f == "--" {
			break
		}
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			val, found = v, true
		}
	}
	return val, found
}

// handoverPassed says whether the boot loader (the previous kernel's
// kexec) passed handover data, where that can be seen.
func (s *System) handoverPassed() Tristate {
	if s.SetupData == nil {
		return Unknown
	}
	for _, t := range s.SetupData {
		if t == setupKexecKHO {
			return Yes
		}
	}
	return No
}

// Log line patterns, from kernel/liveupdate/kexec_handover.c (pr_fmt
// "KHO: ").
var (
	execFromRE = regexp.MustCompile(
		`KHO: exec from: (.{0,64}) \(count ([0-9]{1,10})\)$`)
	incompatibleRE = regexp.MustCompile(
		`KHO: setup: handover FDT \(0x[0-9a-f]+\) is incompatible with '([^']*)'`)
	rejectRE = regexp.MustCompile(
		`KHO: kexec-metadata (blob too small \(|version [0-9]+ not supported|blob too small for v)`)
)

// ParseExecFrom decodes a `KHO: exec from: <release> (count <N>)` log
// message. The version is not in the line; a logged record is version 1.
func ParseExecFrom(line string) (Record, bool) {
	m := execFromRE.FindStringSubmatch(line)
	if m == nil || len(m[1]) > releaseLen-1 {
		// The regexp counts characters; the kernel's field is bytes.
		return Record{}, false
	}
	n, err := strconv.ParseUint(m[2], 10, 32)
	if err != nil {
		return Record{}, false
	}
	return Record{
		Version:         RecordVersion,
		PreviousRelease: m[1],
		KexecCount:      uint32(n),
	}, true
}

// Inherited decides what this kernel inherited, best evidence first: the
// debugfs blob, then the kernel log line, else the most specific reason
// it is absent.
func (s *System) Inherited() Inheritance {
	// The blob under debugfs, read with the kernel's own rules.
	if s.KHO != nil {
		b, err := readCapped(s.KHO, InMetadataPath, MaxBlobSize)
		switch {
		case err == nil:
			r, err := ParseRecord(b)
			if err != nil {
				return Inheritance{
					Reason:   ReasonRejected,
					Evidence: InMetadataPath,
					Detail:   err.Error(),
				}
			}
			return Inheritance{
				Found:    true,
				Source:   SourceDebugfs,
				Evidence: InMetadataPath,
				Record:   &r,
			}
		case !errors.Is(err, fs.ErrNotExist):
			// Unreadable: fall through to the log.
		}
	}

	// The log line, and the warnings that explain its absence.
	var incompatible, rejected string
	for _, l := range s.Log {
		if r, ok := ParseExecFrom(l); ok {
			return Inheritance{
				Found:    true,
				Source:   SourceKmsg,
				Evidence: l,
				Record:   &r,
			}
		}
		if incompatibleRE.MatchString(l) {
			incompatible = l
		}
		if rejectRE.MatchString(l) {
			rejected = l
		}
	}
	if rejected != "" {
		return Inheritance{Reason: ReasonRejected, Evidence: rejected,
			Detail: "the kernel ignored the record it was handed"}
	}
	if incompatible != "" {
		return Inheritance{Reason: ReasonABIMismatch, Evidence: incompatible,
			Detail: "the previous kernel's KHO ABI differs from this " +
				"kernel's, so the chain restarted from a count of 0"}
	}

	return s.absentReason()
}

// absentReason tells apart the reasons there is no record and no log line.
func (s *System) absentReason() Inheritance {
	if r, ok := s.offReason(); ok {
		return r
	}
	passed := s.handoverPassed()

	// With the debugfs directory, in/ tells whether a handover was
	// accepted.
	if s.KHO != nil {
		if _, err := fs.Stat(s.KHO, "in"); err != nil {
			if passed == Yes {
				return Inheritance{Reason: ReasonABIMismatch,
					Detail: "a handover was passed at boot but not " +
						"accepted"}
			}
			return Inheritance{Reason: ReasonColdBoot,
				Detail: "no incoming handover (debugfs kho/in is absent)"}
		}
		return Inheritance{Reason: ReasonNoRecord, Evidence: "in/sub_fdts",
			Detail: "the handover holds no kexec-metadata blob: the " +
				"previous kernel is older than 7.1"}
	}

	if s.Denied != "" {
		return Inheritance{Reason: ReasonDenied, Detail: s.Denied}
	}

	// Without it, only the boot parameters can tell a cold boot.
	if passed == No && s.Enabled() == Yes {
		return Inheritance{Reason: ReasonColdBoot,
			Detail: "no handover was passed at boot"}
	}
	if s.debugfsBuilt() == No {
		return Inheritance{Reason: ReasonNoDebugfs,
			Detail: "KHO debugfs is not built and the kernel log holds " +
				"no record line"}
	}
	return Inheritance{Reason: ReasonUnknown,
		Detail: "no KHO debugfs directory and no KHO log lines"}
}

// offReason says why KHO state cannot exist at all, when it cannot.
func (s *System) offReason() (Inheritance, bool) {
	switch {
	case s.Built() == No:
		return Inheritance{Reason: ReasonNotBuilt,
			Detail: "the kernel is built without CONFIG_KEXEC_HANDOVER"}, true
	case s.disabledAtBoot() != "":
		return Inheritance{Reason: ReasonNotEnabled,
			Evidence: s.disabledAtBoot(),
			Detail: "KHO was asked for but the kernel could not reserve " +
				"its scratch areas and turned it off (too little " +
				"memory, or kho_scratch= too large)"}, true
	case s.Enabled() == No:
		return Inheritance{Reason: ReasonNotEnabled,
			Detail: "KHO is built but off; boot with kho=on"}, true
	}
	return Inheritance{}, false
}

// debugfsBuilt says whether the KHO debugfs directory can exist.
func (s *System) debugfsBuilt() Tristate {
	switch {
	case s.KHO != nil:
		return Yes
	case s.Debugfs == No:
		return No
	case s.Config == nil:
		return Unknown
	case s.Config["CONFIG_DEBUG_FS"] != "y":
		return No
	case s.Config["CONFIG_KEXEC_HANDOVER_DEBUGFS"] != "y" &&
		s.Config["CONFIG_KEXEC_HANDOVER_DEBUG"] != "y":
		// 6.16-6.18 had no separate option: debugfs came with KHO.
		if _, ok := s.Config["CONFIG_KEXEC_HANDOVER_DEBUGFS"]; ok {
			return No
		}
	}
	return Yes
}

// Outgoing reads the record this kernel will hand on.
func (s *System) Outgoing() Outgoing {
	if s.KHO == nil {
		if r, ok := s.offReason(); ok {
			return Outgoing{Reason: r.Reason, Detail: r.Detail}
		}
		if s.Denied != "" {
			return Outgoing{Reason: ReasonDenied, Detail: s.Denied}
		}
		return Outgoing{Reason: ReasonNoDebugfs,
			Detail: "the KHO debugfs directory is absent"}
	}
	b, err := readCapped(s.KHO, OutMetadataPath, MaxBlobSize)
	if err != nil {
		return Outgoing{Reason: ReasonNoRecord, Evidence: OutMetadataPath,
			Detail: err.Error()}
	}
	r, err := ParseRecord(b)
	if err != nil {
		return Outgoing{Reason: ReasonRejected, Evidence: OutMetadataPath,
			Detail: err.Error()}
	}
	return Outgoing{Found: true, Source: SourceDebugfs,
		Evidence: OutMetadataPath, Record: &r}
}
