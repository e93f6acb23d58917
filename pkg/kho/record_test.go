package kho

import (
	"errors"
	"strings"
	"testing"
)

// rawRecord lays out a record by hand, independent of MarshalBinary.
func rawRecord(version uint32, release string, count uint32, size int) []byte {
	b := make([]byte, max(size, RecordSize))
	NativeEndian.PutUint32(b, version)
	copy(b[4:69], release)
	NativeEndian.PutUint32(b[69:], count)
	return b[:size]
}

func TestParseRecord(t *testing.T) {
	long := strings.Repeat("x", 65) // no NUL in the field at all
	for _, tt := range []struct {
		name    string
		in      []byte
		want    Record
		rule    Rule
		wantErr bool
	}{
		{
			name: "v1",
			in:   rawRecord(1, "7.2.13", 3, RecordSize),
			want: Record{Version: 1, PreviousRelease: "7.2.13", KexecCount: 3},
		},
		{
			name: "trailing bytes ignored",
			in:   rawRecord(1, "7.3.4", 1, RecordSize+16),
			want: Record{Version: 1, PreviousRelease: "7.3.4", KexecCount: 1},
		},
		{
			name: "release without NUL cut at 64 like strscpy",
			in:   rawRecord(1, long, 7, RecordSize),
			want: Record{Version: 1, PreviousRelease: long[:64], KexecCount: 7},
		},
		{name: "empty", in: nil, rule: RuleTooSmall, wantErr: true},
		{name: "3 bytes", in: []byte{1, 0, 0}, rule: RuleTooSmall, wantErr: true},
		{
			name: "version 2", in: rawRecord(2, "7.9", 1, RecordSize),
			rule: RuleVersion, wantErr: true,
		},
		{
			name: "version 0 short", in: rawRecord(0, "", 0, 8),
			rule: RuleVersion, wantErr: true,
		},
		{
			name: "v1 one byte short", in: rawRecord(1, "7.2", 1, RecordSize-1),
			rule: RuleTooSmallForVersion, wantErr: true,
		},
		{
			name: "v1 header only", in: rawRecord(1, "", 0, 4),
			rule: RuleTooSmallForVersion, wantErr: true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRecord(tt.in)
			if tt.wantErr {
				var re *RecordError
				if !errors.As(err, &re) || re.Rule != tt.rule {
					t.Fatalf("ParseRecord() = %v, want rule %s", err, tt.rule)
				}
				if !errors.Is(err, ErrRecordRejected) {
					t.Errorf("errors.Is(%v, ErrRecordRejected) = false", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRecord() = %v, want nil", err)
			}
			if got != tt.want {
				t.Errorf("ParseRecord() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := Record{Version: 1, PreviousRelease: "7.2.13", KexecCount: 42}
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != RecordSize {
		t.Fatalf("MarshalBinary() is %d bytes, want %d", len(b), RecordSize)
	}
	got, err := ParseRecord(b)
	if err != nil || got != r {
		t.Errorf("ParseRecord(MarshalBinary(%+v)) = %+v, %v", r, got, err)
	}
	r.PreviousRelease = strings.Repeat("y", 65)
	if _, err := r.MarshalBinary(); err == nil {
		t.Errorf("MarshalBinary(65-byte release) = nil error, want one")
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(rawRecord(1, "7.2.13", 1, RecordSize))
	f.Add(rawRecord(2, "7.2.13", 1, RecordSize))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		// An accepted record re-encodes to the bytes it came from, up
		// to the release's NUL padding.
		out, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%+v) = %v", r, err)
		}
		again, err := ParseRecord(out)
		if err != nil || again != r {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, r)
		}
	})
}
