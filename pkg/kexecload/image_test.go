package kexecload

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const testBanner = "Linux version 7.2.13 (builder@host) (gcc 14.2.0) " +
	"#1 SMP PREEMPT_DYNAMIC Tue Jan  6 10:00:00 UTC 2026\n"

// bzImageOpts describes a synthetic bzImage.
type bzImageOpts struct {
	protocol    uint16
	loadFlags   uint8
	xloadFlags  uint16
	cmdlineSize uint32
	setupSects  uint8
	kverField   uint16 // setup_header.kernel_version
	version     string // written at kverField+0x200
	bootFlag    uint16
	size        int
}

func defaultBzImage() bzImageOpts {
	return bzImageOpts{
		protocol:    0x020f,
		loadFlags:   loadedHigh,
		xloadFlags:  0x7f,
		cmdlineSize: 2047,
		setupSects:  4,
		kverField:   0x700,
		version:     "7.2.13 (builder@host) #1 SMP PREEMPT_DYNAMIC",
		bootFlag:    0xaa55,
		size:        8192,
	}
}

// makeBzImage builds the headers of a bzImage as arch/x86/boot/header.S
// lays them out; the rest is zeros.
func makeBzImage(o bzImageOpts) []byte {
	b := make([]byte, o.size)
	le := binary.LittleEndian
	b[bpSetupSects] = o.setupSects
	le.PutUint16(b[bpBootFlag:], o.bootFlag)
	copy(b[bpHeader:], "HdrS")
	le.PutUint16(b[bpVersion:], o.protocol)
	le.PutUint16(b[bpKernelVersion:], o.kverField)
	b[bpLoadFlags] = o.loadFlags
	le.PutUint16(b[bpXLoadFlags:], o.xloadFlags)
	le.PutUint32(b[bpCmdlineSize:], o.cmdlineSize)
	if o.kverField != 0 && int(o.kverField)+0x200 < len(b) {
		copy(b[int(o.kverField)+0x200:], o.version+"\x00")
	}
	return b
}

// makeARM64Image builds an arm64 Image header (arch/arm64/include/asm/
// image.h) of size bytes with banner at bannerAt (none when < 0).
func makeARM64Image(size, bannerAt int, imageSize uint64) []byte {
	b := make([]byte, size)
	le := binary.LittleEndian
	copy(b, "MZ")
	le.PutUint64(b[a64ImageSize:], imageSize)
	le.PutUint64(b[a64Flags:], 0x2) // LE, 4K pages
	copy(b[a64Magic:], "ARM\x64")
	if bannerAt >= 0 {
		copy(b[bannerAt:], testBanner+"\x00")
	}
	return b
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeZboot wraps payload in an EFI zboot header (zboot-header.S) with
// a PE header for machine, and 512 bytes of padding after the payload.
func makeZboot(payload []byte, comp string, machine uint16) []byte {
	const payOff = 0x1000
	b := make([]byte, payOff+len(payload)+512)
	le := binary.LittleEndian
	copy(b, "MZ")
	copy(b[zbType:], "zimg")
	le.PutUint32(b[zbPayOffset:], payOff)
	le.PutUint32(b[zbPaySize:], uint32(len(payload)))
	copy(b[zbCompType:], comp+"\x00")
	le.PutUint32(b[a64Magic:], 0x818223cd) // LINUX_PE_MAGIC
	le.PutUint32(b[zbPEOffset:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	le.PutUint16(b[0x44:], machine)
	copy(b[payOff:], payload)
	return b
}

func TestIdentifyKernel(t *testing.T) {
	bz := defaultBzImage()
	old := bz
	old.protocol = 0x0205
	old.xloadFlags = 0
	bz32 := bz
	bz32.xloadFlags = 0
	badFlag := bz
	badFlag.bootFlag = 0x1234
	short := bz
	short.setupSects = 30
	noVer := bz
	noVer.kverField = 0
	farVer := bz
	farVer.kverField = 0x1000
	nonPrint := bz
	nonPrint.version = "7.2\x01"

	arm := makeARM64Image(1<<20, 0x9000, 1<<20)
	// A banner across the first 64 KiB chunk boundary.
	armEdge := makeARM64Image(1<<20, 64<<10-5, 1<<20)
	// A format string first, as kernels have, then the banner.
	armFmt := makeARM64Image(1<<20, 0x9000, 1<<20)
	copy(armFmt[0x100:], "Linux version %s\x00")
	armNoBanner := makeARM64Image(4096, -1, 4096)
	armOld := makeARM64Image(4096, -1, 0)

	armGz := gzipBytes(t, arm)
	cpioGz := gzipBytes(t, []byte("070701000000000000"))
	zboot := makeZboot(armGz, "gzip", 0xaa64)
	zbootZstd := makeZboot([]byte("\x28\xb5\x2f\xfd..."), "zstd22",
		0xaa64)
	zbootShort := zboot[:len(zboot)-len(armGz)]

	elf := make([]byte, 64)
	copy(elf, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(elf[18:], 62)

	for _, tt := range []struct {
		name        string
		data        []byte
		format      Format
		arch        string
		release     string
		cmdlineSize int
		maxCmdline  int
		payload     Format
		check       error // CheckKexecFile on arch
		wantErr     error
		offset      int64 // of a FormatError
	}{
		{
			name: "bzImage", data: makeBzImage(bz),
			format: FormatBzImage, arch: "amd64", release: "7.2.13",
			cmdlineSize: 2047, maxCmdline: 2016,
		},
		{
			name: "bzImage protocol 2.05", data: makeBzImage(old),
			format: FormatBzImage, arch: "386", cmdlineSize: 255,
			maxCmdline: 224, release: "7.2.13", check: ErrImageRefused,
		},
		{
			name: "32-bit bzImage", data: makeBzImage(bz32),
			format: FormatBzImage, arch: "386", release: "7.2.13",
			cmdlineSize: 2047, maxCmdline: 2016, check: ErrImageRefused,
		},
		{
			name: "bzImage without version", data: makeBzImage(noVer),
			format: FormatBzImage, arch: "amd64", cmdlineSize: 2047,
			maxCmdline: 2016,
		},
		{
			name: "bzImage version past setup", data: makeBzImage(farVer),
			format: FormatBzImage, arch: "amd64", cmdlineSize: 2047,
			maxCmdline: 2016,
		},
		{
			name: "bzImage version not text", data: makeBzImage(nonPrint),
			format: FormatBzImage, arch: "amd64", cmdlineSize: 2047,
			maxCmdline: 2016,
		},
		{
			name: "bzImage bad boot_flag", data: makeBzImage(badFlag),
			wantErr: ErrUnknownFormat, offset: bpBootFlag,
		},
		{
			name: "bzImage truncated", data: makeBzImage(short),
			wantErr: ErrTruncatedImage, offset: 8192,
		},
		{
			name: "bzImage header truncated",
			data: makeBzImage(bz)[:0x240], wantErr: ErrTruncatedImage,
			offset: 0x240,
		},
		{
			name: "arm64 Image", data: arm, format: FormatARM64Image,
			arch: "arm64", release: "7.2.13", cmdlineSize: 2047,
			maxCmdline: 2047,
		},
		{
			name: "arm64 banner across chunks", data: armEdge,
			format: FormatARM64Image, arch: "arm64", release: "7.2.13",
			cmdlineSize: 2047, maxCmdline: 2047,
		},
		{
			name: "arm64 format string skipped", data: armFmt,
			format: FormatARM64Image, arch: "arm64", release: "7.2.13",
			cmdlineSize: 2047, maxCmdline: 2047,
		},
		{
			name: "arm64 no banner", data: armNoBanner,
			format: FormatARM64Image, arch: "arm64", cmdlineSize: 2047,
			maxCmdline: 2047,
		},
		{
			name: "arm64 image_size 0", data: armOld,
			format: FormatARM64Image, arch: "arm64", cmdlineSize: 2047,
			maxCmdline: 2047, check: ErrImageRefused,
		},
		{
			name: "Image.gz", data: armGz, format: FormatGzip,
			arch: "arm64", payload: FormatARM64Image, cmdlineSize: 2047,
			maxCmdline: 2047, check: ErrNeedsUnwrap,
		},
		{
			name: "zboot", data: zboot, format: FormatZboot,
			arch: "arm64", payload: FormatARM64Image, cmdlineSize: 2047,
			maxCmdline: 2047, check: ErrNeedsUnwrap,
		},
		{
			name: "zboot zstd", data: zbootZstd, format: FormatZboot,
			arch: "arm64", cmdlineSize: 2047, maxCmdline: 2047,
			check: ErrNeedsUnwrap,
		},
		{
			name: "zboot truncated", data: zbootShort,
			wantErr: ErrTruncatedImage, offset: int64(len(zbootShort)),
		},
		{
			name: "xz", data: []byte("\xfd7zXZ\x00rest"), format: FormatXz,
			check: ErrNeedsUnwrap,
		},
		{
			name: "vmlinux", data: elf, format: FormatELF, arch: "amd64",
			check: ErrImageRefused,
		},
		{
			name: "cpio", data: []byte("070701000000"),
			wantErr: ErrUnknownFormat,
		},
		{
			name: "gzip cpio", data: cpioGz, wantErr: ErrUnknownFormat,
		},
		{
			name: "text", data: []byte("#!/bin/sh\necho hi\n"),
			wantErr: ErrUnknownFormat,
		},
		{name: "empty", data: nil, wantErr: ErrUnknownFormat},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img, err := IdentifyKernel(bytes.NewReader(tt.data),
				int64(len(tt.data)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("IdentifyKernel = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				var fe *FormatError
				if !errors.As(err, &fe) || fe.Offset != tt.offset {
					t.Errorf("IdentifyKernel = %v, want a FormatError "+
						"at offset %#x", err, tt.offset)
				}
				return
			}
			if img.Format != tt.format || img.Arch != tt.arch ||
				img.Release != tt.release ||
				img.CmdlineSize != tt.cmdlineSize ||
				img.Payload != tt.payload {
				t.Errorf("IdentifyKernel = %s/%s release %q cmdline "+
					"%d payload %q, want %s/%s release %q cmdline %d "+
					"payload %q", img.Format, img.Arch, img.Release,
					img.CmdlineSize, img.Payload, tt.format, tt.arch,
					tt.release, tt.cmdlineSize, tt.payload)
			}
			if got := img.MaxCmdlineLen(); got != tt.maxCmdline {
				t.Errorf("MaxCmdlineLen() = %d, want %d", got,
					tt.maxCmdline)
			}
			arch := tt.arch
			if arch == "" {
				arch = "arm64"
			}
			if err := img.CheckKexecFile(arch); !errors.Is(err,
				tt.check) {
				t.Errorf("CheckKexecFile(%s) = %v, want %v", arch, err,
					tt.check)
			}
		})
	}
}

func TestIdentifyKernelErrorText(t *testing.T) {
	data := []byte("#!/bin/sh\necho hi\n")
	_, err := IdentifyKernel(bytes.NewReader(data), int64(len(data)))
	want := `unknown kernel image format at offset 0x0: bytes 23 21 2f ` +
		`62 69 6e 2f 73 (no "HdrS" at 0x202, no arm64 magic at 0x38)`
	if err == nil || err.Error() != want {
		t.Errorf("IdentifyKernel = %v, want %s", err, want)
	}
}

func TestCheckKexecFileArch(t *testing.T) {
	data := makeBzImage(defaultBzImage())
	img, err := IdentifyKernel(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	err = img.CheckKexecFile("arm64")
	if !errors.Is(err, ErrArchMismatch) {
		t.Errorf("CheckKexecFile(arm64) = %v, want %v", err,
			ErrArchMismatch)
	}
}

func TestUnwrap(t *testing.T) {
	arm := makeARM64Image(256<<10, 0x9000, 256<<10)
	armGz := gzipBytes(t, arm)
	for _, tt := range []struct {
		name    string
		data    []byte
		limit   int64
		want    []byte
		wantErr error
	}{
		{name: "Image.gz", data: armGz, limit: MaxUnwrapSize, want: arm},
		{
			name: "zboot", data: makeZboot(armGz, "gzip", 0xaa64),
			limit: MaxUnwrapSize, want: arm,
		},
		{
			name: "zboot zstd", data: makeZboot([]byte("x"), "zstd22",
				0xaa64), limit: MaxUnwrapSize,
			wantErr: ErrUnsupportedCompression,
		},
		{
			name: "xz", data: []byte("\xfd7zXZ\x00rest"),
			limit: MaxUnwrapSize, wantErr: ErrUnsupportedCompression,
		},
		{
			name: "too large", data: armGz, limit: 1000,
			wantErr: ErrUnwrapTooLarge,
		},
		{
			name: "corrupt", data: armGz[:len(armGz)/2],
			limit: MaxUnwrapSize, wantErr: io.ErrUnexpectedEOF,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(tt.data)
			img, err := IdentifyKernel(r, int64(len(tt.data)))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			n, err := unwrap(&out, r, img, tt.limit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Unwrap = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (n != int64(len(tt.want)) ||
				!bytes.Equal(out.Bytes(), tt.want)) {
				t.Errorf("Unwrap = %d bytes, want the %d-byte Image", n,
					len(tt.want))
			}
		})
	}
}

func TestUnwrapUncompressed(t *testing.T) {
	data := makeBzImage(defaultBzImage())
	img, err := IdentifyKernel(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unwrap(io.Discard, bytes.NewReader(data), img); err ==
		nil {
		t.Error("Unwrap(bzImage) = nil, want an error")
	}
}

var seriesRE = regexp.MustCompile(`[0-9]+\.[0-9]+`)

// TestIdentifyRealKernels reads the kernels the kernel/ build scripts
// leave in ~/.cache/kexecmeta/kernels, when there are any.
func TestIdentifyRealKernels(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip(err)
	}
	paths, _ := filepath.Glob(filepath.Join(home,
		".cache/kexecmeta/kernels/*/bzImage"))
	if len(paths) == 0 {
		t.Skip("no bzImage under ~/.cache/kexecmeta/kernels")
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			img, err := IdentifyKernel(f, fi.Size())
			if err != nil {
				t.Fatal(err)
			}
			// The directory is named after the major.minor release.
			series := seriesRE.FindString(filepath.Base(filepath.Dir(p)))
			if img.Format != FormatBzImage || img.Arch != "amd64" ||
				!strings.HasPrefix(img.Release, series+".") {
				t.Errorf("IdentifyKernel(%s) = %s/%s release %q, want "+
					"bzImage/amd64 release %s.*", p, img.Format,
					img.Arch, img.Release, series)
			}
			if err := img.CheckKexecFile("amd64"); err != nil {
				t.Errorf("CheckKexecFile(amd64) = %v", err)
			}
			if img.MemSize <= uint64(img.Size) || img.KernelAlign == 0 {
				t.Errorf("IdentifyKernel(%s): init_size %d, "+
					"kernel_alignment %d; want init_size above the "+
					"file size %d", p, img.MemSize, img.KernelAlign,
					img.Size)
			}
			t.Logf("%s: %s, cmdline_size %d, max %d, notes %q", p,
				img.Version, img.CmdlineSize, img.MaxCmdlineLen(),
				img.Notes)
		})
	}
}
