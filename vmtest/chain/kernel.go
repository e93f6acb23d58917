package chain

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultChain is the series of each boot in the chain the VM test and
// the demo run: a cold boot of 7.2, then kexecs into 7.3, back to 7.2,
// and from 7.2 into 7.2 again.
var DefaultChain = []string{"7.2", "7.3", "7.2", "7.2"}

// ErrNoKernel is returned when a test kernel has not been built.
var ErrNoKernel = errors.New("test kernel not built (run kernel/build.sh)")

// maxRelease caps the size of a release file; uname -r is at most 64
// bytes.
const maxRelease = 256

// seriesRE matches a series name; it becomes a directory name in the
// guest and a word in the guest script.
var seriesRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]*$`)

// Kernel is one test kernel built by kernel/build.sh.
type Kernel struct {
	// Series is the linux-source series it was built from, e.g. "7.2".
	Series string

	// Release is the kernel's `uname -r`, e.g. "7.2.13".
	Release string

	// Path is the bzImage.
	Path string
}

// CacheDir returns the directory kernel/build.sh caches kernels under:
// $KEXECMETA_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/kexecmeta.
func CacheDir() (string, error) {
	if d := os.Getenv("KEXECMETA_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "kexecmeta"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the kernel cache: %w", err)
	}
	return filepath.Join(home, ".cache", "kexecmeta"), nil
}

// LoadKernel returns the kernel of series at path. Its release is read
// from the file named release beside it, which kernel/build.sh writes.
func LoadKernel(series, path string) (Kernel, error) {
	if !seriesRE.MatchString(series) {
		return Kernel{}, fmt.Errorf("kernel series %q: want letters, "+
			"digits, '.', '_' or '-'", series)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return Kernel{}, fmt.Errorf("kernel %s: %w: %w", series,
			ErrNoKernel, err)
	}
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel %s: %w", series, err)
	}
	if !fi.Mode().IsRegular() {
		return Kernel{}, fmt.Errorf("kernel %s: %s is not a regular file",
			series, path)
	}

	rel, err := readRelease(filepath.Join(filepath.Dir(path), "release"))
	if err != nil {
		return Kernel{}, fmt.Errorf("kernel %s: %w", series, err)
	}
	return Kernel{Series: series, Release: rel, Path: path}, nil
}

// readRelease reads a one-line release file.
func readRelease(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()

	b, err := io.ReadAll(io.LimitReader(f, maxRelease+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxRelease {
		return "", fmt.Errorf("reading %s: over %d bytes", path,
			maxRelease)
	}
	rel := strings.TrimSpace(string(b))
	if rel == "" || strings.ContainsAny(rel, " \t\n") {
		return "", fmt.Errorf("reading %s: got %q, want one release",
			path, rel)
	}
	return rel, nil
}

// CachedKernels returns the kernel of each series in cache, the
// directory [CacheDir] returns: cache/kernels/SERIES/bzImage with its
// release file. When VMTEST_KERNEL is set it replaces the kernel of the
// first series; a release file must sit beside it too.
//
// Errors wrap [ErrNoKernel] when a kernel or its release file is
// missing.
func CachedKernels(cache string, series ...string) (map[string]Kernel, error) {
	m := make(map[string]Kernel)
	for i, s := range series {
		if _, ok := m[s]; ok {
			continue
		}
		path := filepath.Join(cache, "kernels", s, "bzImage")
		if env := os.Getenv("VMTEST_KERNEL"); i == 0 && env != "" {
			path = env
		}
		k, err := LoadKernel(s, path)
		if err != nil {
			return nil, err
		}
		m[s] = k
	}
	return m, nil
}

// ParseBuildOutput parses what kernel/build.sh prints on stdout, one
// line "SERIES RELEASE PATH" per kernel, into kernels by series.
func ParseBuildOutput(r io.Reader) (map[string]Kernel, error) {
	m := make(map[string]Kernel)
	s := bufio.NewScanner(r)
	for n := 1; s.Scan(); n++ {
		f := strings.Fields(s.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("kernel/build.sh output line %d: "+
				"got %d fields, want 3 (SERIES RELEASE PATH)", n, len(f))
		}
		if !seriesRE.MatchString(f[0]) {
			return nil, fmt.Errorf("kernel/build.sh output line %d: "+
				"bad series %q", n, f[0])
		}
		m[f[0]] = Kernel{Series: f[0], Release: f[1], Path: f[2]}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading kernel/build.sh output: %w", err)
	}
	return m, nil
}

// Boots returns the kernel of each boot of a chain of series, taken
// from kernels.
func Boots(kernels map[string]Kernel, series ...string) ([]Kernel, error) {
	boots := make([]Kernel, 0, len(series))
	for _, s := range series {
		k, ok := kernels[s]
		if !ok {
			return nil, fmt.Errorf("kernel %s: %w", s, ErrNoKernel)
		}
		boots = append(boots, k)
	}
	return boots, nil
}
