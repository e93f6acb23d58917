package kho

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a kernel's major.minor release, the part that decides its
// KHO ABI.
type Version struct{ Major, Minor int }

// ParseRelease reads the major.minor of a `uname -r` string such as
// "7.2.13", "7.3.4-amd64" or "6.19.0-rc3+".
func ParseRelease(release string) (Version, error) {
	end := strings.IndexFunc(release, func(r rune) bool {
		return (r < '0' || r > '9') && r != '.'
	})
	if end < 0 {
		end = len(release)
	}
	parts := strings.Split(release[:end], ".")
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("release %q: want major.minor", release)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major > 1000 || minor > 1000 {
		return Version{}, fmt.Errorf("release %q: want major.minor", release)
	}
	return Version{major, minor}, nil
}

func (v Version) less(w Version) bool {
	return v.Major < w.Major || (v.Major == w.Major && v.Minor < w.Minor)
}

// releaseGenerations lists, oldest first, the first release of each KHO
// ABI generation (KHO.md, section 1). Releases before 6.16 have no KHO.
var releaseGenerations = []struct {
	first Version
	gen   Generation
}{
	{Version{6, 16}, GenerationV1},
	{Version{7, 1}, GenerationV3},
	{Version{7, 2}, GenerationV4},
}

// lastKnown is the newest release whose generation this package knows.
var lastKnown = Version{7, 3}

// GenerationOfRelease returns the KHO ABI generation a kernel release
// writes and accepts. It returns GenerationUnknown, false for releases
// before KHO (6.16) and after the newest one checked (7.3): a newer kernel
// may have changed the ABI.
func GenerationOfRelease(v Version) (Generation, bool) {
	if v.less(releaseGenerations[0].first) || lastKnown.less(v) {
		return GenerationUnknown, false
	}
	g := GenerationUnknown
	for _, rg := range releaseGenerations {
		if !v.less(rg.first) {
			g = rg.gen
		}
	}
	return g, true
}

// HasRecord says whether a release writes a kexec-metadata record: 7.1
// and later do.
func HasRecord(v Version) bool { return !v.less(Version{7, 1}) }

// NeedsFinalize says whether a release needs userspace to write
// out/finalize before the handoff: 6.16 to 7.0 do.
func NeedsFinalize(v Version) bool {
	return !v.less(Version{6, 16}) && v.less(Version{7, 1})
}

// FinalizeBeforeLoad says whether finalize must come before
// kexec_file_load (6.18), rather than just before the reboot.
func FinalizeBeforeLoad(v Version) bool { return v == Version{6, 18} }
