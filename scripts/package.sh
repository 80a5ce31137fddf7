#!/usr/bin/env bash
# Builds the Debian package `containermanager` (cm, cm-api, docksh, the systemd unit, the
# configuration, man pages, shell completions and the images' recipe) with cargo-deb, and prints
# the path of the .deb on the last line of stdout. See docs/packaging.md.
#
# Usage: scripts/package.sh [--profile release|dev|NAME] [--no-build] [--help]   (from any cwd)
#
#   --profile NAME  the Cargo profile to build and package (default: release, or
#                   CM_PACKAGE_PROFILE). `dev` reuses the debug build the tests make; such a
#                   package is for tests only.
#   --no-build      package the binaries already built for that profile (fails when missing).
#
# Generated files go to target/package/ (man pages, completions, the staged images recipe) and the
# package to target/debian/. Needs cargo-deb (scripts/install-deps.sh installs it). Idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly ROOT

say() { printf '[package] %s\n' "$*" >&2; }
die() { printf '[package] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

profile="${CM_PACKAGE_PROFILE:-release}"
build=1
while [ "$#" -gt 0 ]; do
    case "$1" in
        --profile)
            [ "$#" -ge 2 ] || die "--profile needs a value (release, dev or a custom profile)"
            profile="$2"
            shift
            ;;
        --profile=*) profile="${1#--profile=}" ;;
        --no-build) build=0 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[ -n "$profile" ] || die "the profile is empty"
case "$profile" in
    dev) profile_dir=debug ;;
    *) profile_dir="$profile" ;;
esac

cd "$ROOT"
command -v cargo >/dev/null || die "cargo not found (install Rust)"
if ! cargo deb --version >/dev/null 2>&1; then
    die "cargo-deb is missing: run scripts/install-deps.sh (or: cargo install cargo-deb --locked)"
fi

# Where Cargo puts binaries (CARGO_TARGET_DIR or build.target-dir may move it).
target_dir="$(cargo metadata --no-deps --format-version 1 --locked \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[ -n "$target_dir" ] || die "cargo metadata did not name the target directory"
bin_dir="${target_dir}/${profile_dir}"

if [ "$build" = 1 ]; then
    say "building cm, docksh and cm-api (profile ${profile}) ..."
    cargo build --locked --profile "$profile" -p cm-cli -p cm-api --bins
fi
for bin in cm cm-api docksh; do
    [ -x "${bin_dir}/${bin}" ] || die "${bin_dir}/${bin} is missing: build it (without --no-build)"
done

# The generated assets: always below this checkout's target/ (the paths in
# crates/cm-api/Cargo.toml's [package.metadata.deb] point there), rebuilt from scratch so that
# nothing of an earlier run lingers.
out="${ROOT}/target/package"
rm -rf "$out"
mkdir -p "${out}/completions" "${out}/man"

say "generating shell completions and man pages with ${bin_dir}/cm ..."
"${bin_dir}/cm" completions bash >"${out}/completions/cm.bash"
"${bin_dir}/cm" completions zsh >"${out}/completions/_cm"
"${bin_dir}/cm" completions fish >"${out}/completions/cm.fish"
"${bin_dir}/cm" man --out "${out}/man" >/dev/null \
    || die "\`cm man\` failed: is ${bin_dir}/cm older than the man command? Build it again."
for f in "${out}"/completions/*; do
    [ -s "$f" ] || die "the completion script ${f} is empty"
done
[ -s "${out}/man/cm.1" ] || die "\`cm man\` wrote no cm.1"

# The images' recipe, as images/build.sh needs it beside itself, with normalised modes (the
# checkout's depend on the umask): executables 0755, the rest 0644; no Python caches.
say "staging the images' recipe ..."
mkdir -p "${out}/images"
cp -R "${ROOT}/images/." "${out}/images/"
find "${out}/images" \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +
find "${out}/images" -type d -exec chmod 0755 {} +
find "${out}/images" -type f -perm /111 -exec chmod 0755 {} +
find "${out}/images" -type f ! -perm /111 -exec chmod 0644 {} +

# dev-profile binaries are large: faster compression, the package is for tests only.
deb_args=(-p cm-api --no-build --profile "$profile" --locked)
if [ "$profile" != release ]; then
    deb_args+=(--fast)
fi
say "cargo deb ${deb_args[*]} ..."
deb_log="$(mktemp "${TMPDIR:-/tmp}/cm-package.XXXXXX")"
deb_err="$(mktemp "${TMPDIR:-/tmp}/cm-package.XXXXXX")"
trap 'rm -f "$deb_log" "$deb_err"' EXIT
status=0
cargo deb "${deb_args[@]}" >"$deb_log" 2>"$deb_err" || status=$?
# cargo-deb warns about every source path with "/target/" in it that is not a build product; the
# files generated above are not meant to be built, so those warnings are noise. (It also warns that
# a dev-profile package is unsupported: such packages are for the tests only.)
grep -v "^warning: Only source paths starting with exactly 'target/release/' are detected as Cargo target dir. '../../target/package/" \
    "$deb_err" >&2 || true
if [ "$status" -ne 0 ]; then
    cat "$deb_log" >&2
    die "cargo deb failed (exit code ${status})"
fi
deb="$(grep '\.deb$' "$deb_log" | tail -n 1)"
if [ -z "$deb" ] || [ ! -f "$deb" ]; then
    cat "$deb_log" >&2
    die "cargo deb named no .deb file"
fi
say "built ${deb}"
printf '%s\n' "$deb"
