#!/usr/bin/env bash
# build.sh: build the KHO test kernels that the VM tests and the demo boot.
#
# Usage: kernel/build.sh [SERIES...]      (default: 7.2 7.3)
#
# For each series it takes Debian's current linux-source-SERIES package
# (7.2 from sid, 7.3 from trixie-backports), applies kernel/kho.config on top
# of 'make tinyconfig' and builds an x86_64 bzImage. Results are cached
# outside the repository, keyed by the package version and the config's
# hash, and rebuilt only when either changes:
#
#   $KEXECMETA_CACHE/kernels/linux-SERIES-VERSION-CONFIGHASH/{bzImage,release}
#   $KEXECMETA_CACHE/kernels/SERIES -> the newest of those (a symlink)
#
# KEXECMETA_CACHE defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/kexecmeta.
# apt runs with a private sources list and private state under the cache:
# the machine's own apt configuration is only read (for its mirror URI),
# never changed. Needs: apt-get, dpkg-deb, gcc, make, flex, bison, bc,
# libelf-dev, cpio, xz-utils.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
config="$here/kho.config"
cache=${KEXECMETA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kexecmeta}
jobs=$(nproc 2>/dev/null || echo 2)

log() { printf 'kernel/build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

suite_for() {
	case "$1" in
	7.2) echo sid ;;
	7.3) echo trixie-backports ;;
	*) die "unknown series $1 (want 7.2 or 7.3)" ;;
	esac
}

# mirror prints the Debian archive URI the machine's apt already uses.
mirror() {
	local uri
	uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources \
		/etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null |
		grep -oE '[a-z]+://[^ ]*/debian/?( |$)' | head -n 1 | tr -d ' ')
	[ -n "$uri" ] || die "no Debian archive found in /etc/apt sources"
	echo "${uri%/}"
}

aptdir="$cache/apt"
aptopts=()

apt_setup() {
	local uri keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	uri=$(mirror)
	mkdir -p "$aptdir/sources.list.d" "$aptdir/lists/partial" \
		"$aptdir/cache/archives/partial"
	cat >"$aptdir/sources.list.d/kexecmeta.sources" <<SRC
Types: deb
URIs: $uri
Suites: sid trixie-backports
Components: main
Signed-By: $keyring
SRC
	aptopts=(
		-o "Dir::Etc::SourceList=/dev/null"
		-o "Dir::Etc::SourceParts=$aptdir/sources.list.d"
		-o "Dir::State::Lists=$aptdir/lists"
		-o "Dir::Cache=$aptdir/cache"
		-o "Dir::Etc::Preferences=/dev/null"
		-o "Dir::Etc::PreferencesParts=/dev/null"
		-o "APT::Default-Release="
	)
	log "updating private package lists ($uri: sid, trixie-backports)"
	apt-get "${aptopts[@]}" -q update >"$aptdir/update.log" 2>&1 ||
		die "apt-get update failed; see $aptdir/update.log"
}

# candidate prints the newest version of PKG in SUITE.
candidate() {
	apt-cache "${aptopts[@]}" madison "$1" 2>/dev/null |
		awk -v s="$2" -F' *[|] *' '$3 ~ ("(^| )" s "/") {print $2}' |
		sort -V | tail -n 1
}

build_one() {
	local series=$1 suite pkg version hash dir work deb tarball src
	suite=$(suite_for "$series")
	pkg=linux-source-$series
	version=$(candidate "$pkg" "$suite")
	[ -n "$version" ] || die "$pkg not found in $suite"
	hash=$(sha256sum "$config" | cut -c1-12)
	dir="$cache/kernels/linux-$series-$version-$hash"

	if [ -s "$dir/bzImage" ] && [ -s "$dir/release" ]; then
		log "$pkg $version: cached in $dir"
	else
		log "$pkg $version: building into $dir"
		work=$(mktemp -d "$cache/build.XXXXXX")
		trap 'rm -rf "$work"' EXIT

		# Fetch and unpack the source package.
		(cd "$work" && apt-get "${aptopts[@]}" -q download "$pkg=$version") \
			>"$work/download.log" 2>&1 ||
			die "apt-get download $pkg=$version: $(tail -n 3 "$work/download.log")"
		deb=$(ls "$work"/*.deb)
		dpkg-deb -x "$deb" "$work/pkg"
		tarball=$(ls "$work"/pkg/usr/src/linux-source-*.tar.* | head -n 1)
		[ -n "$tarball" ] || die "$deb holds no source tarball"
		mkdir "$work/src"
		tar -xf "$tarball" -C "$work/src" --strip-components=1

		# Configure: tinyconfig plus the KHO fragment, then check the
		# fragment survived olddefconfig.
		src="$work/src"
		make -C "$src" -s tinyconfig >/dev/null
		(cd "$src" && scripts/kconfig/merge_config.sh -m .config "$config") \
			>/dev/null
		make -C "$src" -s olddefconfig >/dev/null
		local missing
		missing=$(grep -E '^CONFIG_[A-Z0-9_]+=y' "$config" | while read -r l; do
			grep -qx "$l" "$src/.config" || echo "$l"
		done)
		[ -z "$missing" ] || die "config options lost: $missing"

		# Build.
		make -C "$src" -s -j"$jobs" bzImage >"$work/make.log" 2>&1 ||
			die "make bzImage failed: $(tail -n 20 "$work/make.log")"
		mkdir -p "$dir.tmp"
		cp "$src/arch/x86/boot/bzImage" "$dir.tmp/bzImage"
		make -C "$src" -s kernelrelease >"$dir.tmp/release"
		cp "$src/.config" "$dir.tmp/config"
		echo "$pkg $version" >"$dir.tmp/source"
		rm -rf "$dir"
		mv "$dir.tmp" "$dir"
		rm -rf "$work"
		trap - EXIT
	fi
	ln -sfn "$(basename "$dir")" "$cache/kernels/$series"
	echo "$series $(cat "$dir/release") $dir/bzImage"
}

# main is called on the last line, so bash has read the whole script
# before it runs anything: editing this file during a build (a git pull
# or checkout) cannot make the running build execute a shifted script.
main() {
	mkdir -p "$cache/kernels"
	[ $# -gt 0 ] || set -- 7.2 7.3

	# One build at a time per cache: a second caller waits for the first.
	exec 9>"$cache/.lock"
	flock 9
	apt_setup
	for s in "$@"; do
		build_one "$s"
	done
}

main "$@"; exit
