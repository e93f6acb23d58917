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
	// eventRE matches the console lines [Read] stops at: the end of a
	// status or a block, the end of the run, or shelluinit's line when
	// the script failed.
	eventRE = regexp.MustCompile(`(?m)(?:^` + marker +
		`(?:boot \d+ status end -?\d+|boot \d+ kexecmeta boot failed: ` +
		`[^\r\n]*|boot \d+ step ended without a kexec: [^\r\n]*|` +
		`done after \d+ boots)|` + marker +
		`boot \d+ block \S+ end -?\d+|Tests failed: [^\r\n]*)\r*\n`)

	beginRE = regexp.MustCompile(`^` + marker + `boot (\d+) status begin$`)
	endRE   = regexp.MustCompile(`^` + marker +
		`boot (\d+) status end (-?\d+)$`)
	doneRE = regexp.MustCompile(`^` + marker + `done after (\d+) boots$`)
	failRE = regexp.MustCompile(`^` + marker + `boot \d+ (?:kexecmeta ` +
		`boot failed|step ended without a kexec): |Tests failed: `)

	blockBeginRE = regexp.MustCompile(`^` + marker +
		`boot (\d+) block (\S+) begin$`)
	// blockEndRE keeps what came before the marker on the same line:
	// output without a final newline.
	blockEndRE = regexp.MustCompile(`^(.*?)` + marker +
		`boot (\d+) block (\S+) end (-?\d+)$`)
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

	// Blocks are the outputs of the [Block] steps of this boot, in
	// order.
	Blocks []Output

	// Lines are the console lines from this boot's status begin line
	// to the next boot's, without their line ends.
	Lines []string
}

// Read reads the console of a VM set up by [Setup] until the guest
// script reports the end of a chain of n boots, and returns what each
// boot printed. It waits at most idle for each byte. It does not check
// the statuses; see [Check].
//
// The returned boots are those read before any error. Errors caused by
// the guest's output wrap [ErrChain].
func Read(c *expect.Console, n int, idle time.Duration) ([]Boot, error) {
	var lines []string
	for {
		chunk, err := c.Expect(expect.Regexp(eventRE),
			expect.WithTimeout(idle))
		if chunk != "" {
			lines = append(lines, splitLines(chunk)...)
		}
		if err != nil {
			boots, _, _ := parseBoots(lines)
			return boots, fmt.Errorf("reading the console after boot "+
				"%d of %d: %w", len(boots), n, err)
		}
		last := lines[len(lines)-1]
		if doneRE.MatchString(last) || failRE.MatchString(last) {
			break
		}
	}

	boots, done, err := parseBoots(lines)
	if err != nil {
		return boots, err
	}
	if done != n || len(boots) != n {
		return boots, fmt.Errorf("%w: guest reported done after %d "+
			"boots with %d boots seen, want %d boots", ErrChain, done,
			len(boots), n)
	}
	return boots, nil
}

// ParseConsole parses the console output of a chain run, as [Read]
// does, and returns the boots it shows and the number of boots the
// guest reported in its final "done" line (0 if none). It is for
// output saved elsewhere, such as a console log.
func ParseConsole(out string) ([]Boot, int, error) {
	return parseBoots(splitLines(out))
}

// splitLines splits console output into lines without their line ends.
func splitLines(s string) []string {
	lines := strings.Split(strings.TrimRight(s, "\r\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, "\r")
	}
	return lines
}

// parseBoots parses console lines into boots. It returns the boots seen
// (those before any error) and the count of the "done after N boots"
// line, 0 if none. Lines before the first status begin are ignored.
func parseBoots(lines []string) ([]Boot, int, error) {
	var boots []Boot
	var js []string
	inStatus := false
	block := -1 // index of the open block in the current boot
	cur := func() *Boot { return &boots[len(boots)-1] }

	for _, l := range lines {
		if m := beginRE.FindStringSubmatch(l); m != nil {
			if m[1] != strconv.Itoa(len(boots)+1) {
				return boots, 0, fmt.Errorf("%w: got boot %s, want "+
					"boot %d", ErrChain, m[1], len(boots)+1)
			}
			boots = append(boots, Boot{N: len(boots) + 1, Exit: -1})
			inStatus, block, js = true, -1, nil
		}
		if len(boots) == 0 {
			if failRE.MatchString(l) {
				return nil, 0, fmt.Errorf("%w: before boot 1: %s",
					ErrChain, l)
			}
			continue
		}
		b := cur()
		b.Lines = append(b.Lines, l)
		n := strconv.Itoa(b.N)

		switch m := endRE.FindStringSubmatch(l); {
		case beginRE.MatchString(l):
		case m != nil:
			if m[1] != n || !inStatus {
				return boots, 0, fmt.Errorf("%w: boot %d: unexpected "+
					"%q", ErrChain, b.N, l)
			}
			inStatus = false
			b.Exit, _ = strconv.Atoi(m[2])
			if err := decodeStatus(b, js); err != nil {
				return boots, 0, err
			}
		case inStatus:
			if strings.HasPrefix(l, "{") {
				js = append(js, l)
			}
		case doneRE.MatchString(l):
			done, _ := strconv.Atoi(doneRE.FindStringSubmatch(l)[1])
			return boots, done, nil
		case failRE.MatchString(l):
			return boots, 0, fmt.Errorf("%w: after boot %d: %s",
				ErrChain, b.N, strings.TrimPrefix(l, marker))
		default:
			if err := parseBlockLine(b, &block, l); err != nil {
				return boots, 0, err
			}
			if strings.Contains(l, HandoffPrefix) {
				b.Handoff = handoffLine(l)
			}
		}
	}
	if inStatus && len(boots) > 0 {
		return boots, 0, fmt.Errorf("%w: boot %d: no end marker",
			ErrChain, len(boots))
	}
	return boots, 0, nil
}

// parseBlockLine handles one console line of boot b outside its status:
// a block's begin or end marker, or a line of the open block
// (b.Blocks[*open]; -1 when none is open).
func parseBlockLine(b *Boot, open *int, l string) error {
	n := strconv.Itoa(b.N)
	if m := blockBeginRE.FindStringSubmatch(l); m != nil {
		if m[1] != n {
			return fmt.Errorf("%w: boot %d: unexpected %q", ErrChain,
				b.N, l)
		}
		b.Blocks = append(b.Blocks, Output{Name: m[2], Exit: -1})
		*open = len(b.Blocks) - 1
		return nil
	}
	if m := blockEndRE.FindStringSubmatch(l); m != nil {
		if m[2] != n || *open < 0 || b.Blocks[*open].Name != m[3] {
			return fmt.Errorf("%w: boot %d: unexpected %q", ErrChain,
				b.N, l)
		}
		o := &b.Blocks[*open]
		if m[1] != "" {
			o.Lines = append(o.Lines, m[1])
		}
		o.Exit, _ = strconv.Atoi(m[4])
		o.Ended = true
		*open = -1
		return nil
	}
	if *open >= 0 {
		o := &b.Blocks[*open]
		o.Lines = append(o.Lines, l)
	}
	return nil
}

// handoffLine returns the handoff line in the console line l, keeping
// one copy when a copy for the kernel log landed on the same line.
func handoffLine(l string) string {
	h := l[strings.Index(l, HandoffPrefix):]
	if i := strings.Index(h[1:], HandoffPrefix); i >= 0 {
		h = h[:i+1]
	}
	return h
}

// decodeStatus sets b.JSON and b.Status from the JSON lines of b's
// status. A missing handoff line is not an error here: Check reports
// it with the other mismatches.
func decodeStatus(b *Boot, js []string) error {
	if len(js) != 1 {
		return fmt.Errorf("%w: boot %d: got %d JSON lines from kexecmeta "+
			"status (exit %d), want 1", ErrChain, b.N, len(js), b.Exit)
	}
	b.JSON = js[0]
	if err := json.Unmarshal([]byte(b.JSON), &b.Status); err != nil {
		return fmt.Errorf("%w: boot %d: decoding %q: %w", ErrChain, b.N,
			b.JSON, err)
	}
	return nil
}
