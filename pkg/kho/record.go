package kho

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// NativeEndian is the byte order of KHO payloads: the kernel writes them
// in the CPU's own order. Every architecture with KHO support (x86_64,
// arm64) is little-endian, so captured state decodes the same anywhere.
var NativeEndian binary.ByteOrder = binary.LittleEndian

// The kexec-metadata record, struct kho_kexec_metadata in
// include/linux/kho/abi/kexec_metadata.h (packed):
//
//	u32  version;                  offset 0
//	char previous_release[65];     offset 4, __NEW_UTS_LEN + 1
//	u32  kexec_count;              offset 69, unaligned
const (
	// MetadataName is the name of the kexec-metadata sub-blob.
	MetadataName = "kexec-metadata"

	// RecordVersion is the only record version the kernel accepts.
	RecordVersion = 1

	// RecordSize is the size of a version 1 record.
	RecordSize = 73

	releaseOffset = 4
	releaseLen    = 65
	countOffset   = releaseOffset + releaseLen
)

// Record is a decoded kexec-metadata record.
type Record struct {
	// Version is the record's ABI version.
	Version uint32 `json:"version"`

	// PreviousRelease is the `uname -r` of the kernel that wrote the
	// record, that is, the kernel that did the kexec.
	PreviousRelease string `json:"previous_release"`

	// KexecCount is the number of kexecs since the last cold boot, as the
	// kernel that receives the record counts them.
	KexecCount uint32 `json:"kexec_count"`
}

// Rule names one of the kernel's reasons for ignoring a record.
type Rule string

// The receiving kernel's rules, in the order it applies them.
const (
	// RuleTooSmall: the blob is under 4 bytes, so has no version.
	RuleTooSmall Rule = "too-small"

	// RuleVersion: the version is not RecordVersion.
	RuleVersion Rule = "unsupported-version"

	// RuleTooSmallForVersion: the blob is shorter than its version's
	// struct.
	RuleTooSmallForVersion Rule = "too-small-for-version"
)

// ErrRecordRejected is matched by every *RecordError.
var ErrRecordRejected = errors.New("kexec-metadata record rejected")

// RecordError says why a kexec-metadata blob was rejected, in the terms
// of the kernel rule that rejects it.
type RecordError struct {
	Rule    Rule
	Size    int    // size of the blob in bytes
	Version uint32 // the blob's version, when it has one
}

func (e *RecordError) Error() string {
	switch e.Rule {
	case RuleTooSmall:
		return fmt.Sprintf("%v (%s): blob is %d bytes, want at least 4",
			ErrRecordRejected, e.Rule, e.Size)
	case RuleVersion:
		return fmt.Sprintf("%v (%s): version %d, want %d",
			ErrRecordRejected, e.Rule, e.Version, RecordVersion)
	default:
		return fmt.Sprintf("%v (%s): blob is %d bytes, want %d for v%d",
			ErrRecordRejected, e.Rule, e.Size, RecordSize, e.Version)
	}
}

// Unwrap lets errors.Is(err, ErrRecordRejected) match.
func (e *RecordError) Unwrap() error { return ErrRecordRejected }

// ParseRecord decodes a kexec-metadata blob and accepts or rejects it by
// exactly the receiving kernel's rules. Bytes after the version 1 struct
// are ignored, as the kernel ignores them. The release is cut at the
// first NUL, and at 64 bytes when there is none, as strscpy would.
func ParseRecord(b []byte) (Record, error) {
	if len(b) < 4 {
		return Record{}, &RecordError{Rule: RuleTooSmall, Size: len(b)}
	}
	v := NativeEndian.Uint32(b)
	if v != RecordVersion {
		return Record{}, &RecordError{
			Rule: RuleVersion, Size: len(b), Version: v,
		}
	}
	if len(b) < RecordSize {
		return Record{}, &RecordError{
			Rule: RuleTooSmallForVersion, Size: len(b), Version: v,
		}
	}

	rel := b[releaseOffset : releaseOffset+releaseLen-1]
	if i := bytes.IndexByte(rel, 0); i >= 0 {
		rel = rel[:i]
	}
	return Record{
		Version:         v,
		PreviousRelease: string(rel),
		KexecCount:      NativeEndian.Uint32(b[countOffset:]),
	}, nil
}

// MarshalBinary encodes r as the kernel lays out a version 1 record. A
// release longer than 64 bytes is an error.
func (r Record) MarshalBinary() ([]byte, error) {
	if len(r.PreviousRelease) > releaseLen-1 {
		return nil, fmt.Errorf("previous release is %d bytes, want at most %d",
			len(r.PreviousRelease), releaseLen-1)
	}
	b := make([]byte, RecordSize)
	NativeEndian.PutUint32(b, r.Version)
	copy(b[releaseOffset:], r.PreviousRelease)
	NativeEndian.PutUint32(b[countOffset:], r.KexecCount)
	return b, nil
}
