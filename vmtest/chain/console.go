package chain

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Netflix/go-expect"
)

// HandoffPrefix starts the line `kexecmeta boot` prints just before it
// kexecs.
const HandoffPrefix = "kexecmeta: handoff:"

// IdleTimeout is how long [Read] waits for the next console byte by
// default. A boot under TCG takes a few seconds.
const IdleTimeout = 2 * time.Minute

// ErrChain is wrapped by the errors [Read] returns when the guest's
// output shows the chain went wrong, as opposed to the console failing.
var ErrChain = errors.New("kexec chain failed")

var (
	// eventRE matches the console line that ends each step of the
	// guest script, or shelluinit's line when the script failed.
	eventRE = regexp.MustCompile(`(?m)(?:^` + marker +
		`(?:boot \d+ status end -?\d+|boot \d+ kexecmeta boot failed: ` +
		`[^\r\n]*|done after \d+ boots)|Tests failed: [^\r\n]*)\r*\n`)

	beginRE = regexp.MustCompile(`^` + marker + `boot (\d+) status begin$`)
	endRE   = regexp.MustCompile(`^` + marker + `boot (\d+) status end (-?\d+)$`)
	doneRE  = regexp.MustCompile(`^` + marker + `done after (\d+) boots$`)
)

// Boot is what the guest printed on one boot of the chain.
type Boot struct {
	// N counts the boots from 1, the cold boot.
	N int

	// Exit is the exit status of `kexecmeta status --json`.
	Exit int

	// JSON is the line `kexecmeta status --json` printed.
	JSON string

	// Status is JSON decoded.
	Status Status

	// Handoff is the line starting with [HandoffPrefix] that `kexecmeta
	// boot` printed before leaving this boot; empty on the last boot.
	Handoff string
}

// Read reads the console of a VM set up by [Setup] until the guest
// script reports the end of a chain of n boots, and returns what each
// boot printed. It waits at most idle for each byte. It does not check
// the statuses; see [Check].
//
// The returned boots are those read before any error. Errors caused by
// the guest's output wrap [ErrChain].
func Read(c *expect.Console, n int, idle time.Duration) ([]Boot, error) {
	var boots []Boot
	for {
		chunk, err := c.Expect(expect.Regexp(eventRE),
			expect.WithTimeout(idle))
		if err != nil {
			return boots, fmt.Errorf("reading the console after boot "+
				"%d of %d: %w", len(boots), n, err)
		}

		lines := splitLines(chunk)
		last := lines[len(lines)-1]
		if m := doneRE.FindStringSubmatch(last); m != nil {
			if m[1] != strconv.Itoa(n) || len(boots) != n {
				return boots, fmt.Errorf("%w: guest reported %q after "+
					"%d boots, want %d boots", ErrChain, last,
					len(boots), n)
			}
			return boots, nil
		}
		if !endRE.MatchString(last) {
			return boots, fmt.Errorf("%w: after boot %d: %s", ErrChain,
				len(boots), strings.TrimPrefix(last, marker))
		}

		b, handoff, err := parseBoot(len(boots)+1, lines)
		if err != nil {
			return boots, err
		}
		if len(boots) > 0 {
			boots[len(boots)-1].Handoff = handoff
		}
		boots = append(boots, b)
		if len(boots) > n {
			return boots, fmt.Errorf("%w: got more than %d boots",
				ErrChain, n)
		}
	}
}

// splitLines splits console output into lines without their line ends.
func splitLines(s string) []string {
	lines := strings.Split(strings.TrimRight(s, "\r\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, "\r")
	}
	return lines
}

// parseBoot parses the console lines from the end of boot n-1 to the
// end of boot n: the handoff line that ended boot n-1, then boot n's
// status between its marker lines. It returns boot n and the handoff
// line ("" if none).
func parseBoot(n int, lines []string) (Boot, string, error) {
	b := Boot{N: n}
	var handoff string
	var js []string
	in, ended := false, false
	for _, l := range lines {
		switch {
		case beginRE.MatchString(l):
			if got := beginRE.FindStringSubmatch(l)[1]; got != strconv.Itoa(n) {
				return b, "", fmt.Errorf("%w: got boot %s, want boot %d",
					ErrChain, got, n)
			}
			in = true
		case endRE.MatchString(l):
			m := endRE.FindStringSubmatch(l)
			if m[1] != strconv.Itoa(n) || !in {
				return b, "", fmt.Errorf("%w: boot %d: unexpected %q",
					ErrChain, n, l)
			}
			b.Exit, _ = strconv.Atoi(m[2])
			ended = true
		case in:
			if strings.HasPrefix(l, "{") {
				js = append(js, l)
			}
		case strings.Contains(l, HandoffPrefix):
			// Keep one copy when a copy for the kernel log landed on
			// the same console line.
			handoff = l[strings.Index(l, HandoffPrefix):]
			if i := strings.Index(handoff[1:], HandoffPrefix); i >= 0 {
				handoff = handoff[:i+1]
			}
		}
	}
	if !ended {
		return b, "", fmt.Errorf("%w: boot %d: no end marker", ErrChain, n)
	}
	// A missing handoff line is not an error here: Check reports it with
	// the other mismatches.
	if len(js) != 1 {
		return b, handoff, fmt.Errorf("%w: boot %d: got %d JSON lines "+
			"from kexecmeta status (exit %d), want 1", ErrChain, n,
			len(js), b.Exit)
	}
	b.JSON = js[0]
	if err := json.Unmarshal([]byte(b.JSON), &b.Status); err != nil {
		return b, handoff, fmt.Errorf("%w: boot %d: decoding %q: %w",
			ErrChain, n, b.JSON, err)
	}
	return b, handoff, nil
}
