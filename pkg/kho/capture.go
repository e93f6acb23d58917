package kho

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A capture is a directory that holds one boot's evidence, so that a bug
// report can carry it and `kexecmeta inspect --dir` can read it on any
// machine:
//
//	DIR/capture.json   CaptureInfo: release, command line, config, log
//	DIR/kho/...        a copy of /sys/kernel/debug/kho
const (
	CaptureFile   = "capture.json"
	CaptureKHODir = "kho"

	// CaptureSchema is the version of capture.json.
	CaptureSchema = 1
)

// CaptureInfo is capture.json.
type CaptureInfo struct {
	Schema    int               `json:"schema"`
	Release   string            `json:"release"`
	Arch      string            `json:"arch"`
	Cmdline   string            `json:"cmdline"`
	Debugfs   Tristate          `json:"debugfs"`
	Config    map[string]string `json:"config"`
	Log       []string          `json:"kernel_log"`
	SetupData []uint32          `json:"setup_data"`
}

// configKeep says which config options a capture keeps: those that decide
// what KHO can do.
func configKeep(name string) bool {
	for _, s := range []string{"KEXEC", "HANDOVER", "LIVEUPDATE",
		"DEBUG_FS", "IKCONFIG"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// skipCapture names the debugfs files a capture must not read: the
// incoming LUO blob points at memory LUO frees early in boot. The capture
// holds an empty file in its place, so that ReadState lists the blob, as
// it does on the running kernel, without reading it there either.
func skipCapture(name string) bool {
	return name == "in/sub_fdts/"+LUOName
}

// maxCaptureFiles caps how many files a capture copies or reads back.
const maxCaptureFiles = 4096

// WriteCapture saves s into dir, which must not exist yet or be empty.
func WriteCapture(dir string, s *System) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("capture directory %s is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	info := CaptureInfo{
		Schema:    CaptureSchema,
		Release:   s.Release,
		Arch:      s.Arch,
		Cmdline:   s.Cmdline,
		Debugfs:   s.Debugfs,
		Log:       s.Log,
		SetupData: s.SetupData,
	}
	if s.Config != nil {
		info.Config = map[string]string{}
		for k, v := range s.Config {
			if configKeep(k) {
				info.Config[k] = v
			}
		}
	}
	b, err := json.MarshalIndent(info, "", "\t")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, CaptureFile),
		append(b, '\n'), 0o644); err != nil {
		return err
	}

	if s.KHO == nil {
		return nil
	}
	return copyFS(filepath.Join(dir, CaptureKHODir), s.KHO)
}

// copyFS copies the regular files of fsys below dst, each capped at
// MaxBlobSize, skipping what skipCapture names.
func copyFS(dst string, fsys fs.FS) error {
	n := 0
	return fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry,
		err error) error {
		if err != nil {
			return fmt.Errorf("capturing %s: %w", name, err)
		}
		target := filepath.Join(dst, filepath.FromSlash(name))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if n++; n > maxCaptureFiles {
			return fmt.Errorf("capturing: more than %d files",
				maxCaptureFiles)
		}
		if skipCapture(name) {
			return os.WriteFile(target, nil, 0o644)
		}
		b, err := readCapped(fsys, name, MaxBlobSize)
		if err != nil {
			return fmt.Errorf("capturing %s: %w", name, err)
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// ReadCapture reads a directory WriteCapture wrote. The capture is
// untrusted: only regular files and directories are read, none through a
// symlink (see capturedFS).
func ReadCapture(dir string) (*System, error) {
	name := filepath.Join(dir, CaptureFile)
	if _, err := lstatPlain(name); err != nil {
		return nil, fmt.Errorf("reading capture: %w", err)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("reading capture: %w", err)
	}
	defer f.Close()
	var info CaptureInfo
	dec := json.NewDecoder(io.LimitReader(f, MaxBlobSize))
	if err := dec.Decode(&info); err != nil {
		return nil, fmt.Errorf("reading capture %s: %w", f.Name(), err)
	}
	if info.Schema != CaptureSchema {
		return nil, fmt.Errorf("reading capture %s: schema %d, want %d",
			f.Name(), info.Schema, CaptureSchema)
	}

	s := &System{
		Release:   info.Release,
		Arch:      info.Arch,
		Cmdline:   info.Cmdline,
		Config:    info.Config,
		Debugfs:   info.Debugfs,
		Log:       info.Log,
		SetupData: info.SetupData,
	}
	if len(s.Log) > maxLogLines {
		s.Log = s.Log[:maxLogLines]
	}
	khoDir := filepath.Join(dir, CaptureKHODir)
	fi, err := lstatPlain(khoDir)
	switch {
	case err == nil && fi.IsDir():
		s.KHO = capturedFS(khoDir)
	case err == nil:
		return nil, fmt.Errorf("reading capture: %s is not a directory",
			khoDir)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("reading capture: %w", err)
	}
	return s, nil
}

// errNotPlain means a capture holds something other than a regular file
// or directory where one is read: a symlink, FIFO, device or socket.
var errNotPlain = errors.New("not a regular file or directory")

// lstatPlain stats name without following a symlink, and fails unless it
// is a regular file or a directory.
func lstatPlain(name string) (fs.FileInfo, error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errNotPlain}
	}
	return fi, nil
}

// capturedFS serves the kho/ directory of a capture. It opens only
// regular files and directories, and follows no symlink in any part of
// a name, so that a hostile capture can point neither outside itself
// (at the reader's own debugfs, whose in/sub_fdts/LUO must never be
// read) nor at a FIFO or device that would block or never end.
type capturedFS string

// Open opens name after checking each part of its path.
func (c capturedFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name,
			Err: fs.ErrInvalid}
	}
	if name != "." {
		p := string(c)
		for _, part := range strings.Split(name, "/") {
			p = filepath.Join(p, part)
			if _, err := lstatPlain(p); err != nil {
				return nil, err
			}
		}
	}
	return os.DirFS(string(c)).Open(name)
}
