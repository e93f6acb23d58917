package kho

import (
	"bufio"
	"bytes"
	"strings"
)

// ParseConfig parses kernel .config text into CONFIG_ names and values.
// "# CONFIG_X is not set" lines map X to "n".
func ParseConfig(b []byte) map[string]string {
	m := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		l := sc.Text()
		if name, ok := strings.CutPrefix(l, "# "); ok {
			name, ok := strings.CutSuffix(name, " is not set")
			if ok && strings.HasPrefix(name, "CONFIG_") {
				m[name] = "n"
			}
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok &&
			strings.HasPrefix(k, "CONFIG_") {
			m[k] = v
		}
	}
	return m
}
