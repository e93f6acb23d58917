package kexecload

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Kernel images are identified from their headers, as the kernel's
// kexec_file_load probes do (checked against Linux 7.2.13):
//
//   - x86 bzImage: struct setup_header at 0x1f1 of struct boot_params
//     (arch/x86/include/uapi/asm/bootparam.h), probed by bzImage64_probe()
//     in arch/x86/kernel/kexec-bzimage64.c.
//   - arm64 Image: struct arm64_image_header
//     (arch/arm64/include/asm/image.h), probed by image_probe() in
//     arch/arm64/kernel/kexec_image.c.
//   - EFI zboot: the header in drivers/firmware/efi/libstub/zboot-header.S.
//     arm64 kexec_file_load does not take it raw; [Unwrap] it.
//   - A compressed Image (Image.gz, ...): also refused raw.
//
// All of these headers are little-endian on every architecture.
//
// The input is not trusted: every offset is checked against the size
// given, and nothing larger than a header is allocated. [IdentifyKernel]
// reads the first 4 KiB, a 256-byte version string, 64 bytes of a
// compressed payload, and for an arm64 Image scans at most 128 MiB for
// the version banner, 64 KiB at a time.

// Format is a kernel image format.
type Format string

// Kernel image formats.
const (
	FormatUnknown    Format = "unknown"
	FormatBzImage    Format = "bzImage"
	FormatARM64Image Format = "arm64-Image"
	FormatZboot      Format = "zboot"
	FormatELF        Format = "vmlinux-ELF"
	FormatGzip       Format = "gzip"
	FormatXz         Format = "xz"
	FormatZstd       Format = "zstd"
	FormatLz4        Format = "lz4"
	FormatBzip2      Format = "bzip2"
	FormatLzma       Format = "lzma"
	FormatLzo        Format = "lzo"
)

// ErrUnknownFormat is wrapped by a [*FormatError] for a file that is no
// kernel image kexecload knows.
var ErrUnknownFormat = errors.New("unknown kernel image format")

// ErrTruncatedImage is wrapped by a [*FormatError] for a header that
// points past the end of the file.
var ErrTruncatedImage = errors.New("kernel image truncated")

// ErrNeedsUnwrap is returned by [Image.CheckKexecFile] for an image the
// kernel only takes once decompressed: see [Unwrap].
var ErrNeedsUnwrap = errors.New(
	"kexec_file_load(2) does not take this image compressed")

// ErrImageRefused is returned by [Image.CheckKexecFile] for an image the
// kernel's probe would refuse with ENOEXEC or EINVAL.
var ErrImageRefused = errors.New(
	"kexec_file_load(2) would refuse this image")

// ErrArchMismatch is returned by [Image.CheckKexecFile] for an image built
// for another architecture.
var ErrArchMismatch = errors.New("kernel image is for another architecture")

// ErrUnwrapTooLarge is returned by [Unwrap] when the decompressed image
// exceeds [MaxUnwrapSize].
var ErrUnwrapTooLarge = errors.New("decompressed kernel image too large")

// ErrUnsupportedCompression is returned by [Unwrap] for a compression it
// cannot undo. Only gzip is built in, to keep the binary small.
var ErrUnsupportedCompression = errors.New("unsupported compression")

// FormatError is a kernel image header kexecload cannot use, with the file
// offset of the fault.
type FormatError struct {
	// Offset is the file offset of the fault.
	Offset int64

	// Msg says what was found there.
	Msg string

	// Err is ErrUnknownFormat or ErrTruncatedImage.
	Err error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%v at offset %#x: %s", e.Err, e.Offset, e.Msg)
}

// Unwrap returns the sentinel.
func (e *FormatError) Unwrap() error { return e.Err }

// Image is what IdentifyKernel learnt from a kernel image's headers.
type Image struct {
	// Format is the outer format of the file.
	Format Format

	// Arch is the GOARCH the kernel is built for, "" when not known.
	Arch string

	// Release is the kernel release (uname -r), "" when not found.
	Release string

	// Version is the whole version string the release was taken from,
	// without "Linux version ": "7.2.13 (builder@host) #1 SMP ...".
	Version string

	// Size is the file size.
	Size int64

	// CmdlineSize is the longest command line, without its NUL, that the
	// image's header allows: setup_header.cmdline_size for a bzImage (255
	// before boot protocol 2.06), 0 when the image does not say. See
	// MaxCmdlineLen for what kexec_file_load(2) takes.
	CmdlineSize int

	// MemSize is the memory the kernel needs once loaded, in bytes:
	// setup_header.init_size for a bzImage (protocol 2.10 and later),
	// image_size for an arm64 Image; 0 when the image does not say.
	MemSize uint64

	// KernelAlign is the alignment the kernel must be loaded at:
	// setup_header.kernel_alignment for a bzImage, 2 MiB for an arm64
	// Image; 0 when unknown.
	KernelAlign uint64

	// Protocol is the x86 boot protocol version, e.g. 0x020f.
	Protocol uint16

	// LoadFlags and XLoadFlags are a bzImage's setup_header.loadflags and
	// xloadflags.
	LoadFlags  uint8
	XLoadFlags uint16

	// Compression names a compressed payload's method: the format for a
	// compressed file, the zboot header's string ("gzip", "zstd22", ...)
	// for zboot.
	Compression string

	// Payload is the format found at the start of a compressed payload,
	// when it could be read cheaply (gzip only).
	Payload Format

	// PayloadOffset and PayloadSize locate a zboot image's compressed
	// payload in the file.
	PayloadOffset, PayloadSize int64

	// Notes are facts worth showing: flags, page size, limits.
	Notes []string

	// refused are the reasons kexec_file_load(2) would refuse the image
	// on any machine.
	refused []string
}

// Header layouts, little-endian on every architecture.
const (
	// struct boot_params and its struct setup_header at 0x1f1.
	bpSetupSects    = 0x1f1
	bpBootFlag      = 0x1fe
	bpHeader        = 0x202
	bpVersion       = 0x206
	bpKernelVersion = 0x20e
	bpLoadFlags     = 0x211
	bpXLoadFlags    = 0x236
	bpCmdlineSize   = 0x238
	bpKernelAlign   = 0x230
	bpInitSize      = 0x260
	bpEnd           = 0x268 // end of setup_header for protocol 2.15

	loadedHigh           = 1 << 0 // LOADED_HIGH
	xlfKernel64          = 1 << 0 // XLF_KERNEL_64
	xlfCanBeLoadedAbove4 = 1 << 1 // XLF_CAN_BE_LOADED_ABOVE_4G
	xlfEFIKexec          = 1 << 4 // XLF_EFI_KEXEC
	xlf5Level            = 1 << 5 // XLF_5LEVEL

	// MAX_ELFCOREHDR_STR_LEN: kexec-bzimage64.c keeps room for it.
	maxElfcorehdrStrLen = 30

	// struct arm64_image_header.
	a64TextOffset = 0x08
	a64ImageSize  = 0x10
	a64Flags      = 0x18
	a64Magic      = 0x38
	a64HeaderLen  = 0x40

	// arm64 COMMAND_LINE_SIZE (arch/arm64/include/uapi/asm/setup.h),
	// with its NUL. The FDT's bootargs are cut to it at boot without a
	// word, so kexecload checks it before.
	arm64CommandLineSize = 2048

	// The EFI zboot header (zboot-header.S).
	zbType      = 0x04
	zbPayOffset = 0x08
	zbPaySize   = 0x0c
	zbCompType  = 0x18
	zbPEOffset  = 0x3c

	// headLen is how much IdentifyKernel reads first.
	headLen = 4096

	// maxVersionLen caps the bzImage version string.
	maxVersionLen = 256

	// maxBannerScan caps the search for "Linux version " in an Image.
	maxBannerScan = 128 << 20
)

var (
	magicHdrS    = []byte("HdrS")
	magicARM64   = []byte("ARM\x64")
	magicZimg    = []byte("zimg")
	magicELF     = []byte("\x7fELF")
	bannerPrefix = []byte("Linux version ")
)

// compressedMagics are the compressions the kernel's own decompressors
// know (lib/decompress.c), by the bytes at offset 0.
var compressedMagics = []struct {
	magic  string
	format Format
}{
	{"\x1f\x8b", FormatGzip},
	{"\xfd7zXZ\x00", FormatXz},
	{"\x28\xb5\x2f\xfd", FormatZstd},
	{"\x02\x21\x4c\x18", FormatLz4}, // legacy frame, as the kernel writes
	{"\x04\x22\x4d\x18", FormatLz4},
	{"BZh", FormatBzip2},
	{"\x89LZO", FormatLzo},
	{"\x5d\x00\x00", FormatLzma},
}

// IdentifyKernel identifies a kernel image of size bytes from its headers.
// It returns a [*FormatError] for a file it does not recognise or whose
// header points past its end.
func IdentifyKernel(r io.ReaderAt, size int64) (*Image, error) {
	head, err := readAtMost(r, 0, min(size, headLen))
	if err != nil {
		return nil, fmt.Errorf("reading kernel image header: %w", err)
	}
	img := &Image{Format: FormatUnknown, Size: size}

	// Order matters: a bzImage and an arm64 Image with an EFI stub both
	// start with "MZ", and so does zboot.
	switch {
	case len(head) >= bpHeader+4 &&
		bytes.Equal(head[bpHeader:bpHeader+4], magicHdrS):
		err = identifyBzImage(img, r, head)
	case len(head) >= zbPEOffset+4 && head[0] == 'M' && head[1] == 'Z' &&
		bytes.Equal(head[zbType:zbType+4], magicZimg):
		err = identifyZboot(img, r, head)
	case len(head) >= a64HeaderLen &&
		bytes.Equal(head[a64Magic:a64Magic+4], magicARM64):
		err = identifyARM64(img, r, head)
	case bytes.HasPrefix(head, magicELF):
		identifyELF(img, head)
	default:
		err = identifyCompressed(img, r, head)
	}
	if err != nil {
		return nil, err
	}
	return img, nil
}

// readAtMost reads n bytes at off, or fewer at the end of the file.
func readAtMost(r io.ReaderAt, off, n int64) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	return readInto(r, make([]byte, n), off)
}

// cString returns b up to its first NUL, or nil without one.
func cString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return nil
}

// printable reports whether b is plain printable ASCII.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func identifyBzImage(img *Image, r io.ReaderAt, head []byte) error {
	img.Format, img.Arch = FormatBzImage, "386"
	le := binary.LittleEndian
	if len(head) < bpEnd {
		return &FormatError{Offset: int64(len(head)), Err: ErrTruncatedImage,
			Msg: fmt.Sprintf("bzImage setup header ends at %#x", bpEnd)}
	}
	if f := le.Uint16(head[bpBootFlag:]); f != 0xaa55 {
		return &FormatError{Offset: bpBootFlag, Err: ErrUnknownFormat,
			Msg: fmt.Sprintf("\"HdrS\" at %#x but boot_flag %#04x, "+
				"want 0xaa55", bpHeader, f)}
	}

	// The header fields, each present from the protocol that added it.
	h := head // shorter lines
	img.Protocol = le.Uint16(h[bpVersion:])
	img.LoadFlags = h[bpLoadFlags]
	img.CmdlineSize = 255
	if img.Protocol >= 0x0206 {
		// Capped so that int stays positive on 32-bit machines.
		img.CmdlineSize = int(min(le.Uint32(h[bpCmdlineSize:]), 1<<30))
	}
	if img.Protocol >= 0x020c {
		img.XLoadFlags = le.Uint16(h[bpXLoadFlags:])
	}
	if img.Protocol >= 0x020a {
		img.MemSize = uint64(le.Uint32(h[bpInitSize:]))
		img.KernelAlign = uint64(le.Uint32(h[bpKernelAlign:]))
	}
	if img.XLoadFlags&xlfKernel64 != 0 {
		img.Arch = "amd64"
	}
	setupSects := int64(h[bpSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	setupLen := (setupSects + 1) * 512
	if img.Size < setupLen {
		return &FormatError{Offset: img.Size, Err: ErrTruncatedImage,
			Msg: fmt.Sprintf("bzImage setup code ends at %#x", setupLen)}
	}
	img.Notes = append(img.Notes, fmt.Sprintf(
		"boot protocol %d.%02d, loadflags %#02x, xloadflags %#04x",
		img.Protocol>>8, img.Protocol&0xff, img.LoadFlags,
		img.XLoadFlags))

	// What bzImage64_probe() refuses; the EFI and 5-level checks depend
	// on the running kernel, so they are only noted.
	if img.Protocol < 0x020c {
		img.refused = append(img.refused, fmt.Sprintf(
			"boot protocol %#04x, want at least 0x020c", img.Protocol))
	}
	if img.LoadFlags&loadedHigh == 0 {
		img.refused = append(img.refused,
			"zImage, not a bzImage (LOADED_HIGH clear)")
	}
	if img.XLoadFlags&xlfKernel64 == 0 {
		img.refused = append(img.refused, "XLF_KERNEL_64 clear")
	}
	if img.XLoadFlags&xlfCanBeLoadedAbove4 == 0 {
		img.refused = append(img.refused,
			"XLF_CAN_BE_LOADED_ABOVE_4G clear")
	}
	if img.XLoadFlags&xlf5Level == 0 {
		img.Notes = append(img.Notes, "XLF_5LEVEL clear: refused "+
			"while the running kernel uses 5-level paging")
	}
	if img.XLoadFlags&xlfEFIKexec == 0 {
		img.Notes = append(img.Notes,
			"XLF_EFI_KEXEC clear: no EFI runtime services after a "+
				"kexec on an EFI machine")
	}

	// The version string: kernel_version + 0x200, inside the setup code.
	kv := int64(le.Uint16(h[bpKernelVersion:]))
	if kv == 0 {
		return nil
	}
	off := kv + 0x200
	if off >= setupLen {
		img.Notes = append(img.Notes, fmt.Sprintf(
			"kernel_version %#x points past the setup code", kv))
		return nil
	}
	b, err := readAtMost(r, off, min(maxVersionLen, setupLen-off))
	if err != nil {
		return fmt.Errorf("reading bzImage version at %#x: %w", off, err)
	}
	if v := cString(b); printable(v) && len(v) > 0 {
		img.Version = string(v)
		img.Release, _, _ = strings.Cut(img.Version, " ")
	}
	return nil
}

func identifyARM64(img *Image, r io.ReaderAt, head []byte) error {
	img.Format, img.Arch = FormatARM64Image, "arm64"
	img.CmdlineSize = arm64CommandLineSize - 1
	le := binary.LittleEndian
	imageSize := le.Uint64(head[a64ImageSize:])
	flags := le.Uint64(head[a64Flags:])
	img.MemSize = imageSize
	img.KernelAlign = 2 << 20 // MIN_KIMG_ALIGN

	// image_load() in arch/arm64/kernel/kexec_image.c refuses these.
	if imageSize == 0 {
		img.refused = append(img.refused,
			"image_size 0 (a kernel older than 3.17)")
	}
	if flags&1 != 0 {
		img.Notes = append(img.Notes, "big-endian kernel")
	}
	pages := [4]string{"unspecified", "4K", "16K", "64K"}
	img.Notes = append(img.Notes, fmt.Sprintf(
		"text_offset %#x, image_size %#x, page size %s",
		le.Uint64(head[a64TextOffset:]), imageSize, pages[flags>>1&3]))

	var err error
	img.Version, img.Release, err = findBanner(r, img.Size)
	return err
}

// findBanner scans the first maxBannerScan bytes of an uncompressed kernel
// for linux_banner, "Linux version 7.2.13 (builder@host) ...\n", and
// returns it without the prefix and newline, and the release.
func findBanner(r io.ReaderAt, size int64) (version, release string,
	err error) {
	const chunk = 64 << 10
	// Chunks overlap so that a prefix across two is seen once.
	overlap := int64(len(bannerPrefix) - 1)
	limit := min(size, maxBannerScan)
	buf := make([]byte, max(0, min(chunk, limit)))
	for off := int64(0); off < limit; off += chunk - overlap {
		want := int(min(chunk, limit-off))
		b, err := readInto(r, buf[:want], off)
		if err != nil {
			return "", "", fmt.Errorf("reading kernel at %#x: %w",
				off, err)
		}
		for i := 0; ; {
			j := bytes.Index(b[i:], bannerPrefix)
			if j < 0 {
				break
			}
			at := off + int64(i+j)
			v, err := readAtMost(r, at, min(maxVersionLen, size-at))
			if err != nil {
				return "", "", fmt.Errorf("reading kernel at %#x: %w",
					at, err)
			}
			if rel, ok := bannerRelease(v); ok {
				v = bytes.TrimSuffix(cString(v), []byte("\n"))
				return string(v[len(bannerPrefix):]), rel, nil
			}
			i += j + 1
		}
		if len(b) < want || off+int64(len(b)) >= limit {
			break
		}
	}
	return "", "", nil
}

// readInto fills b from off, or less at the end of the file.
func readInto(r io.ReaderAt, b []byte, off int64) ([]byte, error) {
	n, err := r.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

// bannerRelease takes the release from a NUL-terminated banner, refusing
// format strings and other text that only starts like one.
func bannerRelease(b []byte) (string, bool) {
	v := bytes.TrimSuffix(cString(b), []byte("\n"))
	if !printable(v) || len(v) <= len(bannerPrefix) {
		return "", false
	}
	rel, _, _ := bytes.Cut(v[len(bannerPrefix):], []byte(" "))
	if len(rel) == 0 || rel[0] < '0' || rel[0] > '9' {
		return "", false
	}
	return string(rel), true
}

func identifyZboot(img *Image, r io.ReaderAt, head []byte) error {
	img.Format = FormatZboot
	le := binary.LittleEndian
	img.PayloadOffset = int64(le.Uint32(head[zbPayOffset:]))
	img.PayloadSize = int64(le.Uint32(head[zbPaySize:]))
	if end := img.PayloadOffset + img.PayloadSize; end > img.Size {
		return &FormatError{Offset: img.Size, Err: ErrTruncatedImage,
			Msg: fmt.Sprintf("zboot payload ends at %#x", end)}
	}
	if c := cString(head[zbCompType:a64Magic]); printable(c) {
		img.Compression = string(c)
	}

	// The PE machine type gives the architecture.
	pe := int64(le.Uint32(head[zbPEOffset:]))
	if pe+6 <= int64(len(head)) &&
		bytes.Equal(head[pe:pe+4], []byte("PE\x00\x00")) {
		img.Arch = peMachines[le.Uint16(head[pe+4:])]
	}
	if img.Arch == "arm64" {
		img.CmdlineSize = arm64CommandLineSize - 1
	}
	if img.Compression == "gzip" {
		return peekGzip(img, r, img.PayloadOffset, img.PayloadSize)
	}
	return nil
}

// peMachines maps PE IMAGE_FILE_MACHINE_ values to GOARCH.
var peMachines = map[uint16]string{
	0x8664: "amd64",
	0xaa64: "arm64",
	0x5064: "riscv64",
	0x6264: "loong64",
}

// elfMachines maps ELF e_machine values to GOARCH.
var elfMachines = map[uint16]string{
	3:   "386",
	62:  "amd64",
	183: "arm64",
	243: "riscv64",
	258: "loong64",
}

func identifyELF(img *Image, head []byte) {
	img.Format = FormatELF
	if len(head) >= 20 && head[5] == 1 { // ELFDATA2LSB
		img.Arch = elfMachines[binary.LittleEndian.Uint16(head[18:])]
	}
	img.refused = append(img.refused, "an uncompressed vmlinux ELF file; "+
		"use the bzImage or Image the build made from it")
}

func identifyCompressed(img *Image, r io.ReaderAt, head []byte) error {
	for _, m := range compressedMagics {
		if bytes.HasPrefix(head, []byte(m.magic)) {
			img.Format, img.Compression = m.format, string(m.format)
			if m.format == FormatGzip {
				return peekGzip(img, r, 0, img.Size)
			}
			return nil
		}
	}
	if isCpio(head) {
		return &FormatError{Err: ErrUnknownFormat,
			Msg: "a cpio archive (an initramfs?), not a kernel"}
	}
	return &FormatError{Err: ErrUnknownFormat, Msg: fmt.Sprintf(
		"bytes % x (no \"HdrS\" at %#x, no arm64 magic at %#x)",
		head[:min(len(head), 8)], bpHeader, a64Magic)}
}

// isCpio reports whether b starts like a newc cpio archive.
func isCpio(b []byte) bool {
	return bytes.HasPrefix(b, []byte("070701")) ||
		bytes.HasPrefix(b, []byte("070702"))
}

// peekGzip decompresses the start of a gzip payload to see what it holds.
// A payload that does not decompress is left for Unwrap to report.
func peekGzip(img *Image, r io.ReaderAt, off, n int64) error {
	zr, err := gzip.NewReader(io.NewSectionReader(r, off, n))
	if err != nil {
		img.Notes = append(img.Notes, fmt.Sprintf("gzip payload at "+
			"%#x: %v", off, err))
		return nil
	}
	defer zr.Close()
	b := make([]byte, a64HeaderLen)
	got, err := io.ReadFull(zr, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		img.Notes = append(img.Notes, fmt.Sprintf("gzip payload at "+
			"%#x: %v", off, err))
		return nil
	}
	b = b[:got]
	switch {
	case len(b) == a64HeaderLen &&
		bytes.Equal(b[a64Magic:a64Magic+4], magicARM64):
		img.Payload, img.Arch = FormatARM64Image, "arm64"
		img.CmdlineSize = arm64CommandLineSize - 1
	case isCpio(b):
		return &FormatError{Offset: off, Err: ErrUnknownFormat,
			Msg: "a gzip-compressed cpio archive (an initramfs?), " +
				"not a kernel"}
	default:
		img.Payload = FormatUnknown
	}
	return nil
}

// MaxCmdlineLen is the longest command line, without its NUL, that
// kexec_file_load(2) takes for this image and the next kernel keeps
// whole, or 0 when not known. For a bzImage that is cmdline_size less the
// NUL and the 30 bytes bzImage64_load() keeps for "elfcorehdr=". For an
// arm64 kernel it is COMMAND_LINE_SIZE less the NUL.
func (img *Image) MaxCmdlineLen() int {
	switch img.Format {
	case FormatBzImage:
		return max(0, img.CmdlineSize-1-maxElfcorehdrStrLen)
	default:
		return img.CmdlineSize
	}
}

// CheckKexecFile says whether kexec_file_load(2) on a machine of
// architecture goarch (normally runtime.GOARCH) would take the image as
// it is. It returns an error wrapping ErrArchMismatch, ErrNeedsUnwrap or
// ErrImageRefused, with the reasons, or nil.
func (img *Image) CheckKexecFile(goarch string) error {
	if img.Arch != "" && img.Arch != goarch {
		return fmt.Errorf("%w: %s image is for %s, running %s",
			ErrArchMismatch, img.Format, img.Arch, goarch)
	}
	if len(img.refused) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrImageRefused, img.Format,
			strings.Join(img.refused, "; "))
	}
	switch img.Format {
	case FormatBzImage, FormatARM64Image:
		return nil
	case FormatZboot:
		if goarch == "arm64" || goarch == "riscv64" ||
			goarch == "loong64" {
			return fmt.Errorf("%w: %s (%s)", ErrNeedsUnwrap, img.Format,
				img.Compression)
		}
		return fmt.Errorf("%w: %s on %s", ErrImageRefused, img.Format,
			goarch)
	default:
		return fmt.Errorf("%w: %s-compressed", ErrNeedsUnwrap, img.Format)
	}
}

// MaxUnwrapSize caps what Unwrap writes: well above any arm64 Image.
const MaxUnwrapSize = 256 << 20

// Unwrap writes the decompressed kernel inside a gzip-compressed file or a
// gzip zboot image to w, and returns how many bytes it wrote. It stops
// with ErrUnwrapTooLarge past MaxUnwrapSize, and returns
// ErrUnsupportedCompression for any other compression.
func Unwrap(w io.Writer, r io.ReaderAt, img *Image) (int64, error) {
	return unwrap(w, r, img, MaxUnwrapSize)
}

// unwrap is Unwrap with the cap as an argument, for tests.
func unwrap(w io.Writer, r io.ReaderAt, img *Image, limit int64) (int64,
	error) {
	var off, n int64
	switch {
	case img.Format == FormatGzip:
		off, n = 0, img.Size
	case img.Format == FormatZboot && img.Compression == "gzip":
		off, n = img.PayloadOffset, img.PayloadSize
	case img.Format == FormatZboot:
		return 0, fmt.Errorf("unwrapping zboot image: %w %q",
			ErrUnsupportedCompression, img.Compression)
	case img.Compression != "":
		return 0, fmt.Errorf("unwrapping kernel: %w %s",
			ErrUnsupportedCompression, img.Compression)
	default:
		return 0, fmt.Errorf("unwrapping kernel: %s is not compressed",
			img.Format)
	}

	zr, err := gzip.NewReader(io.NewSectionReader(r, off, n))
	if err != nil {
		return 0, fmt.Errorf("unwrapping %s at %#x: %w", img.Format, off,
			err)
	}
	defer zr.Close()
	// One member only: zboot has padding after it.
	zr.Multistream(false)
	got, err := io.Copy(w, io.LimitReader(zr, limit+1))
	if err != nil {
		return got, fmt.Errorf("unwrapping %s at %#x: %w", img.Format,
			off, err)
	}
	if got > limit {
		return got, fmt.Errorf("unwrapping %s: %w: got more than %d "+
			"bytes", img.Format, ErrUnwrapTooLarge, limit)
	}
	return got, nil
}
