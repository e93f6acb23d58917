package kho

import "testing"

func TestGenerationOfRelease(t *testing.T) {
	for _, tt := range []struct {
		release  string
		want     Generation
		known    bool
		finalize bool
		record   bool
	}{
		{"6.15.2", GenerationUnknown, false, false, false},
		{"6.16.0", GenerationV1, true, true, false},
		{"6.18.1-amd64", GenerationV1, true, true, false},
		{"7.0.9", GenerationV1, true, true, false},
		{"7.1.0-rc2+", GenerationV3, true, false, true},
		{"7.2.13", GenerationV4, true, false, true},
		{"7.3.4", GenerationV4, true, false, true},
		{"7.4.0", GenerationUnknown, false, false, true},
	} {
		v, err := ParseRelease(tt.release)
		if err != nil {
			t.Fatalf("ParseRelease(%q) = %v", tt.release, err)
		}
		g, known := GenerationOfRelease(v)
		if g != tt.want || known != tt.known {
			t.Errorf("GenerationOfRelease(%s) = %v, %v; want %v, %v",
				tt.release, g, known, tt.want, tt.known)
		}
		if got := NeedsFinalize(v); got != tt.finalize {
			t.Errorf("NeedsFinalize(%s) = %v, want %v", tt.release, got,
				tt.finalize)
		}
		if got := HasRecord(v); got != tt.record {
			t.Errorf("HasRecord(%s) = %v, want %v", tt.release, got,
				tt.record)
		}
	}
	for _, bad := range []string{"", "7", "x.y", "7.", "99999999999.1"} {
		if _, err := ParseRelease(bad); err == nil {
			t.Errorf("ParseRelease(%q) = nil error, want one", bad)
		}
	}
}
