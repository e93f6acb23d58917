package kexecload

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// The command line is split and rejoined with the kernel's own rules, from
// next_arg() in lib/cmdline.c and parse_args() in kernel/params.c (checked
// against Linux 7.2.13):
//
//   - Parameters are separated by runs of the bytes the kernel's isspace()
//     accepts: space, \t, \n, \v, \f, \r and 0xA0 (lib/ctype.c marks the
//     Latin-1 no-break space as a space, so it splits UTF-8 "à" too).
//   - A double quote switches quoting on and off anywhere in a parameter,
//     so root="PARTLABEL=My Disk" and "root=PARTLABEL=My Disk" are both one
//     parameter. Quotes are kept in the tokens, so a rejoined line reads the
//     same to the kernel.
//   - A parameter whose name is -- with no value ends the kernel's
//     parameters; the rest are init's arguments.

// ErrForbiddenByte is wrapped by a [*CmdlineError] for a NUL or newline in
// a command line: the kernel would cut the line at the NUL, and a newline
// breaks /proc/cmdline for every reader.
var ErrForbiddenByte = errors.New("forbidden byte in command line")

// ErrUnbalancedQuote is wrapped by a [*CmdlineError] for a double quote
// that is never closed. The kernel would make the rest of the line one
// parameter, so anything appended after it would be swallowed.
var ErrUnbalancedQuote = errors.New("unbalanced double quote")

// ErrCmdlineTooLong is returned by [CheckCmdlineLen].
var ErrCmdlineTooLong = errors.New("command line too long")

// ErrBaseAndReuse is returned by [BuildCmdline] when both a base line and
// reuse of the running kernel's line are asked for.
var ErrBaseAndReuse = errors.New(
	"a base command line and reuse of the running one are exclusive")

// ErrBadKey is returned for a parameter name that cannot be matched: empty,
// or holding '=', a space, a quote or a NUL. For --remove KEY=VALUE the
// value, compared with quotes removed, may not hold a NUL or a newline.
var ErrBadKey = errors.New("bad parameter name")

// CmdlineError is a command line the kernel would misread, with the byte
// offset of the fault.
type CmdlineError struct {
	// Input names the line: "--cmdline", "/proc/cmdline", "--append 2".
	Input string

	// Offset is the byte offset of the fault in that input.
	Offset int

	// Err is or wraps ErrForbiddenByte or ErrUnbalancedQuote.
	Err error
}

func (e *CmdlineError) Error() string {
	var detail string
	if errors.Is(e.Err, ErrUnbalancedQuote) {
		detail = " opened"
	}
	in := ""
	if e.Input != "" {
		in = e.Input + ": "
	}
	return fmt.Sprintf("%s%v%s at byte offset %d", in, e.Err, detail,
		e.Offset)
}

// Unwrap returns the sentinel.
func (e *CmdlineError) Unwrap() error { return e.Err }

// isSpace is the kernel's isspace(): _S in lib/ctype.c.
func isSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xa0
}

// checkBytes refuses a NUL or a newline.
func checkBytes(s string) error {
	if i := strings.IndexAny(s, "\x00\n"); i >= 0 {
		return &CmdlineError{
			Offset: i,
			Err: fmt.Errorf("%w %q", ErrForbiddenByte,
				s[i:i+1]),
		}
	}
	return nil
}

// Tokenize splits a command line into parameters exactly as the kernel's
// next_arg() does, keeping each parameter's quotes. It refuses a NUL, a
// newline and an unclosed quote with a [*CmdlineError].
func Tokenize(s string) ([]string, error) {
	if err := checkBytes(s); err != nil {
		return nil, err
	}

	var toks []string
	i := skipSpaces(s, 0)
	for i < len(s) {
		start, j := i, i
		inQuote, opened := false, 0
		// next_arg() steps over a leading quote before its loop.
		if s[j] == '"' {
			inQuote, opened = true, j
			j++
		}
		for ; j < len(s); j++ {
			c := s[j]
			if isSpace(c) && !inQuote {
				break
			}
			if c == '"' {
				inQuote = !inQuote
				opened = j
			}
		}
		if inQuote {
			return nil, &CmdlineError{
				Offset: opened,
				Err:    ErrUnbalancedQuote,
			}
		}
		toks = append(toks, s[start:j])
		i = skipSpaces(s, j)
	}
	return toks, nil
}

func skipSpaces(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// SplitParam returns the name and value the kernel's next_arg() gives a
// token from [Tokenize]: the name is up to the first '=' that is not the
// token's first byte, a value's enclosing quotes are dropped, and so is
// the closing quote of a token that starts with one. hasValue is false
// when there is no '='.
func SplitParam(tok string) (name, value string, hasValue bool) {
	body, quoted := tok, false
	if strings.HasPrefix(body, `"`) {
		body, quoted = body[1:], true
	}
	n := len(body)
	lastQuote := n > 0 && body[n-1] == '"'

	// next_arg() keeps "equals" at 0 until it finds an '=' past index 0.
	eq := -1
	if n > 1 {
		if k := strings.IndexByte(body[1:], '='); k >= 0 {
			eq = k + 1
		}
	}
	if eq < 0 {
		if quoted && lastQuote {
			return body[:n-1], "", false
		}
		return body, "", false
	}

	vs, ve := eq+1, n
	if vs < n && body[vs] == '"' {
		vs++
	}
	if lastQuote && (quoted || vs > eq+1) && n-1 >= vs {
		ve = n - 1
	}
	return body[:eq], body[vs:ve], true
}

// paramEqual compares parameter names as the kernel's parameq() does:
// '-' and '_' are the same.
func paramEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '-' {
			x = '_'
		}
		if y == '-' {
			y = '_'
		}
		if x != y {
			return false
		}
	}
	return true
}

// isDashDash reports whether tok ends the kernel's parameters.
func isDashDash(tok string) bool {
	name, _, hasValue := SplitParam(tok)
	return !hasValue && name == "--"
}

// splitDashDash splits tokens into the kernel's parameters and init's
// arguments. sep says whether a -- was found.
func splitDashDash(toks []string) (kernel, init []string, sep bool) {
	for i, t := range toks {
		if isDashDash(t) {
			return toks[:i], toks[i+1:], true
		}
	}
	return toks, nil, false
}

// HasParam reports whether the kernel's part of tokens (before any --)
// sets the parameter key, with or without a value. Names compare as in the
// kernel, '-' matching '_'.
func HasParam(tokens []string, key string) bool {
	kernel, _, _ := splitDashDash(tokens)
	for _, t := range kernel {
		if name, _, _ := SplitParam(t); paramEqual(name, key) {
			return true
		}
	}
	return false
}

// CmdlineOptions says how [BuildCmdline] makes the next kernel's line.
type CmdlineOptions struct {
	// Base is the line to start from (--cmdline). It may not be set
	// together with Reuse.
	Base string

	// Reuse starts from the running kernel's line, read from ProcCmdline.
	// Its BOOT_IMAGE= and initrd= parameters are dropped (they describe
	// the previous boot), and after Append exact duplicate parameters are
	// dropped, keeping the last, so a line reused on every hop does not
	// grow.
	Reuse bool

	// ProcCmdline is the file Reuse reads; "" means /proc/cmdline.
	ProcCmdline string

	// Append are added in order, each split like a command line, before
	// any -- in the base. Parameters after a -- inside one of them are
	// added to init's arguments.
	Append []string

	// Remove drops, after Append, every kernel parameter named KEY (with
	// or without a value). An entry KEY=VALUE drops only the parameters
	// with that name and value.
	Remove []string
}

// ProcCmdline is the running kernel's command line.
const ProcCmdline = "/proc/cmdline"

// maxProcCmdline caps the read of /proc/cmdline: the largest
// COMMAND_LINE_SIZE of any architecture is 4096 bytes, and bootconfig can
// add up to 32 KiB.
const maxProcCmdline = 64 << 10

// ReadRunningCmdline reads the running kernel's command line from path
// (normally [ProcCmdline]) without its trailing newline.
func ReadRunningCmdline(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading running command line: %w", err)
	}
	defer f.Close()

	b, err := io.ReadAll(io.LimitReader(f, maxProcCmdline+1))
	if err != nil {
		return "", fmt.Errorf("reading running command line %s: %w",
			path, err)
	}
	if len(b) > maxProcCmdline {
		return "", fmt.Errorf("reading running command line %s: %w: "+
			"got more than %d bytes", path, ErrCmdlineTooLong,
			maxProcCmdline)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// BuildCmdline makes the next kernel's command line, in this order:
//
//  1. the base: Base, or the running kernel's line when Reuse is set,
//     without its BOOT_IMAGE= and initrd= parameters;
//  2. each Append, in order, before any --;
//  3. with Reuse, exact duplicate kernel parameters dropped, keeping the
//     last;
//  4. each Remove, in order.
//
// Steps 3 and 4 never touch init's arguments after a --. Parameters keep
// their quotes and are joined by single spaces. Lines with a NUL, a
// newline or an unclosed quote are refused with a [*CmdlineError] naming
// the input and byte offset.
func BuildCmdline(o CmdlineOptions) (string, error) {
	if o.Reuse && o.Base != "" {
		return "", ErrBaseAndReuse
	}

	// 1. The base.
	base, input := o.Base, "--cmdline"
	if o.Reuse {
		input = o.ProcCmdline
		if input == "" {
			input = ProcCmdline
		}
		var err error
		if base, err = ReadRunningCmdline(input); err != nil {
			return "", err
		}
	}
	toks, err := tokenizeInput(base, input)
	if err != nil {
		return "", err
	}
	kernel, init, sep := splitDashDash(toks)
	kernel = slices.Clone(kernel)
	init = slices.Clone(init)
	if o.Reuse {
		kernel = slices.DeleteFunc(kernel, func(t string) bool {
			name, _, _ := SplitParam(t)
			return name == "BOOT_IMAGE" || name == "initrd"
		})
	}

	// 2. Appends, each split into kernel parameters and init arguments.
	for i, a := range o.Append {
		toks, err := tokenizeInput(a, fmt.Sprintf("--append %d", i+1))
		if err != nil {
			return "", err
		}
		k, in, s := splitDashDash(toks)
		kernel = append(kernel, k...)
		if s {
			init, sep = append(init, in...), true
		}
	}

	// 3. Duplicates, keeping the last of each.
	if o.Reuse {
		kernel = dedupeKeepLast(kernel)
	}

	// 4. Removals.
	for _, r := range o.Remove {
		match, err := paramMatcher(r)
		if err != nil {
			return "", fmt.Errorf("--remove %q: %w", r, err)
		}
		kernel = slices.DeleteFunc(kernel, match)
	}

	return joinCmdline(kernel, init, sep), nil
}

// tokenizeInput is Tokenize naming the input in its error.
func tokenizeInput(s, input string) ([]string, error) {
	toks, err := Tokenize(s)
	var ce *CmdlineError
	if errors.As(err, &ce) {
		ce.Input = input
	}
	return toks, err
}

// dedupeKeepLast drops every token that appears again later.
func dedupeKeepLast(toks []string) []string {
	last := make(map[string]int, len(toks))
	for i, t := range toks {
		last[t] = i
	}
	out := toks[:0]
	for i, t := range toks {
		if last[t] == i {
			out = append(out, t)
		}
	}
	return out
}

// paramMatcher returns a func matching the tokens that --remove spec
// drops.
func paramMatcher(spec string) (func(string) bool, error) {
	key, value, exact := strings.Cut(spec, "=")
	if !validKey(key) || strings.ContainsAny(value, "\x00\n") {
		return nil, ErrBadKey
	}
	return func(t string) bool {
		name, v, hasValue := SplitParam(t)
		if !paramEqual(name, key) {
			return false
		}
		return !exact || (hasValue && v == value)
	}, nil
}

// validKey reports whether key can name a parameter: not empty, and no
// '=', quote, NUL or space.
func validKey(key string) bool {
	return key != "" && !strings.ContainsAny(key, "=\"\x00") &&
		!hasSpace(key)
}

// hasSpace reports whether s holds a byte the kernel's isspace() accepts.
func hasSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			return true
		}
	}
	return false
}

// joinCmdline joins kernel parameters and, after a --, init's arguments.
func joinCmdline(kernel, init []string, sep bool) string {
	all := kernel
	if sep {
		all = append(slices.Clip(kernel), "--")
		all = append(all, init...)
	}
	return strings.Join(all, " ")
}

// EnsureParam returns line with key=value added before any -- when line's
// kernel part does not set key at all (with any value, or none), and says
// whether it added it. It is how a caller makes KHO default on
// (EnsureParam(line, "kho", "on")) without overriding an explicit kho=off.
// A value holding a space is quoted; one holding a quote is refused.
func EnsureParam(line, key, value string) (string, bool, error) {
	if !validKey(key) {
		return "", false, fmt.Errorf("adding %q: %w", key, ErrBadKey)
	}
	if err := checkBytes(value); err != nil {
		return "", false, fmt.Errorf("adding %s: %w", key, err)
	}
	if strings.Contains(value, `"`) {
		return "", false, fmt.Errorf("adding %s: value %q holds a "+
			"double quote", key, value)
	}
	toks, err := Tokenize(line)
	if err != nil {
		return "", false, err
	}
	if HasParam(toks, key) {
		return line, false, nil
	}

	param := key + "=" + value
	if hasSpace(value) {
		param = key + `="` + value + `"`
	}
	kernel, init, sep := splitDashDash(toks)
	kernel = append(slices.Clip(kernel), param)
	return joinCmdline(kernel, init, sep), true, nil
}

// CheckCmdlineLen checks a command line's length, without its NUL, against
// limit (as from [Image.MaxCmdlineLen]). A limit of 0 or less means the
// limit is not known, and nothing is checked.
func CheckCmdlineLen(cmdline string, limit int) error {
	if limit > 0 && len(cmdline) > limit {
		return fmt.Errorf("%w: got %d bytes, want at most %d",
			ErrCmdlineTooLong, len(cmdline), limit)
	}
	return nil
}
