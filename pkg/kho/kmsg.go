package kho

import (
	"bufio"
	"bytes"
	"strings"
)

// LogPrefix starts every KHO kernel log message (pr_fmt in
// kernel/liveupdate/kexec_handover.c).
const LogPrefix = "KHO: "

// maxLogLines caps how many KHO messages are kept from one log.
const maxLogLines = 4096

// ParseKmsg returns the KHO messages in records read from /dev/kmsg. Each
// record is "prio,seq,usec,flags[,...];message" followed by optional
// continuation lines that start with a space; those and malformed records
// are skipped.
func ParseKmsg(records [][]byte) []string {
	var out []string
	for _, r := range records {
		_, msg, ok := bytes.Cut(r, []byte{';'})
		if !ok {
			continue
		}
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		out = appendKHO(out, string(msg))
	}
	return out
}

// ParseSyslog returns the KHO messages in the text klogctl(2) returns:
// lines of "<prio>[seconds] message", where the timestamp appears only
// with CONFIG_PRINTK_TIME.
func ParseSyslog(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "<") {
			if i := strings.IndexByte(l, '>'); i > 0 && i < 6 {
				l = l[i+1:]
			}
		}
		if strings.HasPrefix(l, "[") {
			if i := strings.IndexByte(l, ']'); i > 0 && i < 20 {
				l = strings.TrimPrefix(l[i+1:], " ")
			}
		}
		out = appendKHO(out, l)
	}
	return out
}

func appendKHO(out []string, msg string) []string {
	if strings.HasPrefix(msg, LogPrefix) && len(out) < maxLogLines {
		out = append(out, strings.TrimRight(msg, "\r\n"))
	}
	return out
}
