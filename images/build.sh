#!/usr/bin/env bash
# build.sh - build the ContainerManager default images WITHOUT any registry.
#
#   cm-base:bookworm   debootstrap --variant=minbase bookworm + packages.txt,
#                      imported with `docker import` (no FROM, no pull)
#   toolboxv2:latest   Dockerfile target "latest" FROM cm-base:bookworm
#                      (cli_v4, preview_server, custom)
#   toolboxv2:dev      Dockerfile target "dev" (project_dev)
#
# Idempotent: every image carries the label org.containermanager.recipe=<sha256
# of its inputs>. An image whose label matches the current recipe is not
# rebuilt, so a second run only hashes a few files and asks `docker image
# inspect` (about a second).
#
# Usage: images/build.sh [--force] [--help]      (works from any cwd)
#
# Environment:
#   CM_DEBIAN_MIRROR           Debian mirror for debootstrap (default: the host's
#                              apt source for bookworm, else debootstrap's own default)
#   CM_DEBIAN_SECURITY_MIRROR  security mirror (default: the host's, else the main
#                              mirror's debian-security beside its debian)
#   CM_SECURITY_UPDATES=0      do not apply bookworm-updates/-security to cm-base
#   CM_BASE_IMAGE              base image name   (default cm-base:bookworm)
#   CM_TOOLBOX_REPO            toolbox repository (default toolboxv2)
#   CM_IMAGES_CACHE_DIR        .deb cache + lock (default /var/cache/cm-images,
#                              or ~/.cache/cm-images when not root)
#   DOCKER_BUILDKIT            defaults to 0 (classic builder: no buildx needed,
#                              FROM a local-only image never tries to pull)
set -euo pipefail

IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
readonly IMAGES_DIR
readonly SUITE=bookworm
readonly BASE_IMAGE="${CM_BASE_IMAGE:-cm-base:bookworm}"
readonly TOOLBOX_REPO="${CM_TOOLBOX_REPO:-toolboxv2}"
readonly MANAGED_BY="ContainerManager-images"
readonly RECIPE_LABEL="org.containermanager.recipe"
readonly SECURITY_UPDATES="${CM_SECURITY_UPDATES:-1}"
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

if [ "$(id -u)" = 0 ]; then
    CACHE_DIR="${CM_IMAGES_CACHE_DIR:-/var/cache/cm-images}"
else
    CACHE_DIR="${CM_IMAGES_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/cm-images}"
fi
readonly CACHE_DIR

FORCE=0
WORKDIR=""          # debootstrap scratch dir, removed by cleanup()
BUILD_LOG=""        # temp log of the current step, removed by cleanup()
SUDO=()             # ("sudo") when not root and debootstrap is needed
OLD_IMAGE_IDS=()    # replaced image IDs, removed at the end if dangling
START_TS="$(date +%s)"

say()  { printf '[images] %s\n' "$*"; }
warn() { printf '[images] warning: %s\n' "$*" >&2; }
die()  { printf '[images] error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        -f|--force) FORCE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

# --------------------------------------------------------------------------
# cleanup: remove the debootstrap tree. debootstrap mounts /proc and /sys
# inside the target while it runs; an interrupted run can leave them mounted,
# and rm -rf through such a mount would be a disaster. So unmount whatever is
# below WORKDIR first and refuse to delete if anything is still mounted.
# --------------------------------------------------------------------------
mounts_below() {
    awk -v d="${1%/}/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r
}

cleanup() {
    local rc=$? m
    if [ -n "$BUILD_LOG" ]; then
        rm -f "$BUILD_LOG"
    fi
    if [ -n "$WORKDIR" ] && [ -d "$WORKDIR" ]; then
        while IFS= read -r m; do
            [ -n "$m" ] && { "${SUDO[@]}" umount -l "$m" 2>/dev/null || true; }
        done < <(mounts_below "$WORKDIR")
        if [ -n "$(mounts_below "$WORKDIR")" ]; then
            warn "file systems still mounted below ${WORKDIR}; NOT deleting it, clean up by hand"
        else
            "${SUDO[@]}" rm -rf --one-file-system "$WORKDIR" || warn "could not remove ${WORKDIR}"
        fi
    fi
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a command with its output in a temp log; show the tail only on failure.
run_logged() {
    local what="$1"
    shift
    BUILD_LOG="$(mktemp "${TMPDIR:-/tmp}/cm-images-log.XXXXXX")"
    if ! "$@" >"$BUILD_LOG" 2>&1; then
        warn "${what} failed; last lines of its output:"
        tail -n 40 "$BUILD_LOG" >&2
        die "${what} failed"
    fi
    rm -f "$BUILD_LOG"
    BUILD_LOG=""
}

sha256() { sha256sum | cut -c1-64; }

image_label() {  # image label -> value ("" if the image or label is missing)
    docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

image_id() {
    docker image inspect -f '{{ .Id }}' "$1" 2>/dev/null || true
}

remember_old_image() {  # image -> note its ID for later removal if it gets replaced
    local id
    id="$(image_id "$1")"
    if [ -n "$id" ]; then
        OLD_IMAGE_IDS+=("$id")
    fi
}

# Package list from packages.txt: comments and blanks removed, sorted.
packages() {
    sed -e 's/#.*//' "${IMAGES_DIR}/packages.txt" | tr -s ' \t' '\n\n' | grep -v '^$' | LC_ALL=C sort -u
}

# --------------------------------------------------------------------------
# Mirror detection: the first http(s) URI the host's apt sources use for
# the given suite (one-line *.list and deb822 *.sources formats).
# --------------------------------------------------------------------------
detect_mirror() {  # suite default
    local suite="$1" default="$2" uri f
    uri="$(
        {
            for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [ -r "$f" ] || continue
                # deb [options] URI SUITE COMPONENT...
                awk -v s="$suite" '
                    { sub(/#.*/, "") }
                    $1 == "deb" {
                        i = 2
                        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                        if ($(i + 1) == s) print $i
                    }' "$f"
            done
            for f in /etc/apt/sources.list.d/*.sources; do
                [ -r "$f" ] || continue
                awk -v s="$suite" '
                    BEGIN { RS = ""; FS = "\n" }
                    {
                        types = ""; uris = ""; suites = ""; enabled = "yes"
                        for (i = 1; i <= NF; i++) {
                            line = $i
                            if (line ~ /^[ \t]*#/) continue
                            if (!match(line, /^[A-Za-z-]+:/)) continue
                            key = tolower(substr(line, 1, RLENGTH - 1))
                            val = substr(line, RLENGTH + 1)
                            gsub(/^[ \t]+|[ \t]+$/, "", val)
                            if (key == "types") types = val
                            else if (key == "uris") uris = val
                            else if (key == "suites") suites = val
                            else if (key == "enabled") enabled = tolower(val)
                        }
                        if (enabled == "no" || (" " types " ") !~ / deb /) next
                        n = split(suites, sv, /[ \t]+/)
                        for (j = 1; j <= n; j++) if (sv[j] == s) { split(uris, uv, /[ \t]+/); print uv[1]; break }
                    }' "$f"
            done
        } 2>/dev/null | grep -E '^https?://' | head -n 1
    )" || true
    uri="${uri%/}"
    printf '%s\n' "${uri:-$default}"
}

# --------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------
base_recipe() {
    {
        printf 'cm-base recipe v1\nsuite=%s\nvariant=minbase\nsecurity_updates=%s\n' \
            "$SUITE" "$SECURITY_UPDATES"
        printf 'packages:\n'
        packages
        printf 'base-finalize.sh:\n'
        cat "${IMAGES_DIR}/base-finalize.sh"
    } | sha256
}

toolbox_recipe() {  # base-image-id
    {
        printf 'toolbox recipe v1\nbase=%s\n' "$1"
        (
            cd "$IMAGES_DIR"
            find Dockerfile .dockerignore setup-image.sh python-requirements.txt rootfs -name __pycache__ -prune \
                -o \( -type f -o -type l \) -print0 \
                | LC_ALL=C sort -z \
                | while IFS= read -r -d '' f; do
                    printf '%s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256 <"$f")"
                done
        )
    } | sha256
}

# --------------------------------------------------------------------------
# cm-base:bookworm
# --------------------------------------------------------------------------
build_base() {
    local recipe="$1" mirror security_mirror rootdir pkgs t0
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    if [ "$(id -u)" != 0 ]; then
        # debootstrap/chroot/tar of a root file system need root.
        command -v sudo >/dev/null \
            || die "building ${BASE_IMAGE} needs root (debootstrap, chroot): run as root or install sudo"
        SUDO=(sudo)
        say "not root: using sudo for debootstrap"
    fi
    [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] \
        || die "missing /usr/share/keyrings/debian-archive-keyring.gpg (apt-get install debian-archive-keyring)"

    # No mirror host is named here: the host's own apt sources, else debootstrap's default.
    mirror="${CM_DEBIAN_MIRROR:-$(detect_mirror "$SUITE" "")}"
    security_mirror="${CM_DEBIAN_SECURITY_MIRROR:-$(detect_mirror "${SUITE}-security" "")}"
    pkgs="$(packages | paste -sd, -)"

    mkdir -p "${CACHE_DIR}/debootstrap"
    WORKDIR="$(mktemp -d "${TMPDIR:-/var/tmp}/cm-base.XXXXXX")"
    rootdir="${WORKDIR}/rootfs"

    say "debootstrap ${SUITE} (minbase) from ${mirror:-the default mirror of debootstrap} ..."
    t0="$SECONDS"
    run_logged "debootstrap" "${SUDO[@]}" debootstrap --variant=minbase \
        --include="$pkgs" --cache-dir="${CACHE_DIR}/debootstrap" \
        "$SUITE" "$rootdir" ${mirror:+"$mirror"}
    if [ -z "$mirror" ]; then
        # The mirror debootstrap chose, as it wrote it into the new system's sources.
        mirror="$(awk '$1 == "deb" { print $2; exit }' "${rootdir}/etc/apt/sources.list" 2>/dev/null || true)"
        mirror="${mirror%/}"
        [ -n "$mirror" ] || die "debootstrap wrote no apt source: set CM_DEBIAN_MIRROR"
    fi
    if [ -z "$security_mirror" ]; then
        case "$mirror" in
            */debian) security_mirror="${mirror}-security" ;;
            *) die "no security mirror known beside ${mirror}: set CM_DEBIAN_SECURITY_MIRROR" ;;
        esac
    fi

    say "  debootstrap took $((SECONDS - t0))s"
    t0="$SECONDS"
    if [ "$SECURITY_UPDATES" = 1 ]; then
        say "finalizing base (updates from ${mirror} + ${security_mirror}) ..."
    else
        say "finalizing base (no security updates) ..."
    fi
    # The chroot needs name resolution for apt; base-finalize.sh removes it.
    "${SUDO[@]}" cp -L /etc/resolv.conf "${rootdir}/etc/resolv.conf"
    "${SUDO[@]}" install -m 0755 "${IMAGES_DIR}/base-finalize.sh" "${rootdir}/tmp/cm-base-finalize.sh"
    run_logged "base-finalize.sh" "${SUDO[@]}" chroot "$rootdir" /bin/sh /tmp/cm-base-finalize.sh \
        "$mirror" "$security_mirror" "$SECURITY_UPDATES"
    "${SUDO[@]}" rm -f "${rootdir}/tmp/cm-base-finalize.sh"
    say "  finalizing took $((SECONDS - t0))s"
    t0="$SECONDS"

    if [ -n "$(mounts_below "$WORKDIR")" ]; then
        die "unexpected mounts below ${WORKDIR}: $(mounts_below "$WORKDIR" | tr '\n' ' ')"
    fi

    say "importing ${BASE_IMAGE} ..."
    remember_old_image "$BASE_IMAGE"
    # Device nodes are not needed: Docker provides /dev at run time.
    "${SUDO[@]}" tar --numeric-owner -C "$rootdir" --exclude='./dev/*' \
        --exclude='./proc/*' --exclude='./sys/*' -c . \
        | docker import \
            --message "cm-base ${SUITE} debootstrap minbase" \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["/bin/bash"]' \
            --change "LABEL managed-by=${MANAGED_BY}" \
            --change "LABEL org.containermanager.image=cm-base" \
            --change "LABEL org.containermanager.debian-suite=${SUITE}" \
            --change "LABEL ${RECIPE_LABEL}=${recipe}" \
            - "$BASE_IMAGE" >/dev/null
    say "  import took $((SECONDS - t0))s"

    cleanup
    WORKDIR=""
}

# --------------------------------------------------------------------------
# Python wheels (the ToolBox and Streamlit)
# --------------------------------------------------------------------------
# The images install python-requirements.txt from wheels downloaded here, on
# the host: its pip knows the host's package index settings and certificates
# (a build container may trust neither), and the image build needs no
# network. One directory per lock; a repeated build downloads nothing.
WHEELS_DIR=""
fetch_wheels() {
    local lock arch t0 platforms=()
    lock="$(sha256 <"${IMAGES_DIR}/python-requirements.txt")"
    WHEELS_DIR="${CACHE_DIR}/wheels/${lock:0:16}"
    if [ -f "${WHEELS_DIR}/.complete" ]; then
        return
    fi
    local pip=(python3 -m pip)
    "${pip[@]}" --version >/dev/null 2>&1 \
        || die "pip is needed to fetch the images' Python wheels (apt-get install python3-pip)"
    arch="$(uname -m)"
    for tag in manylinux_2_36 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 \
        manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_12 manylinux2010 \
        manylinux_2_5 manylinux1; do
        platforms+=(--platform "${tag}_${arch}")
    done
    say "downloading the Python wheels of python-requirements.txt ..."
    t0="$SECONDS"
    rm -rf "${WHEELS_DIR}.part"
    mkdir -p "${WHEELS_DIR}.part"
    # Bookworm's Python is 3.11; the wheels must fit it, not the host.
    run_logged "pip download" "${pip[@]}" download --quiet --no-deps --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
        "${platforms[@]}" --platform any \
        -d "${WHEELS_DIR}.part" -r "${IMAGES_DIR}/python-requirements.txt" pip==24.3.1
    touch "${WHEELS_DIR}.part/.complete"
    rm -rf "$WHEELS_DIR"
    mv "${WHEELS_DIR}.part" "$WHEELS_DIR"
    # Wheels of earlier locks are not needed any more.
    find "${CACHE_DIR}/wheels" -mindepth 1 -maxdepth 1 ! -path "$WHEELS_DIR" -exec rm -rf {} +
    say "  downloading took $((SECONDS - t0))s ($(du -sh "$WHEELS_DIR" | cut -f1))"
}

# --------------------------------------------------------------------------
# toolboxv2:latest / toolboxv2:dev
# --------------------------------------------------------------------------
# docker build with the context as one tar on stdin: the recipe's files and
# the wheels (which live in the cache, not in the source tree).
build_from_context() {  # docker build options...
    tar -c --exclude=__pycache__ -C "$IMAGES_DIR" Dockerfile setup-image.sh python-requirements.txt rootfs \
        -C "$(dirname "$WHEELS_DIR")" --transform "s|^$(basename "$WHEELS_DIR")|wheels|" \
        "$(basename "$WHEELS_DIR")" \
        | docker build "$@" -f Dockerfile -
}

build_toolbox() {  # target recipe
    local target="$1" recipe="$2" tag="${TOOLBOX_REPO}:$1" nocache=() t0
    # --force: do not reuse cached layers for the first target; "dev" builds
    # on the layers "latest" has just produced.
    if [ "$FORCE" = 1 ] && [ "$target" = latest ]; then
        nocache=(--no-cache)
    fi
    say "docker build ${tag} ..."
    t0="$SECONDS"
    remember_old_image "$tag"
    run_logged "docker build ${tag}" build_from_context "${nocache[@]}" \
        --target "$target" \
        --build-arg "BASE_IMAGE=${BASE_IMAGE}" \
        --label "managed-by=${MANAGED_BY}" \
        --label "${RECIPE_LABEL}=${recipe}" \
        -t "$tag"
    say "  docker build took $((SECONDS - t0))s"
}

# Remove images we replaced, but only if nothing else refers to them (no
# tag left); images still used by containers are kept by Docker.
prune_replaced() {
    local i id
    for (( i = ${#OLD_IMAGE_IDS[@]} - 1; i >= 0; i-- )); do
        id="${OLD_IMAGE_IDS[$i]}"
        if [ "$(docker image inspect -f '{{ len .RepoTags }}' "$id" 2>/dev/null || echo x)" = 0 ]; then
            docker image rm "$id" >/dev/null 2>&1 || true
        fi
    done
}

main() {
    local recipe current base_id want have target built=0

    command -v docker >/dev/null || die "docker CLI not found"
    docker version --format '{{ .Server.Version }}' >/dev/null 2>&1 \
        || die "cannot reach the Docker engine (is it running, may this user use it?)"

    # One build at a time (the test suite and a human may both run this).
    mkdir -p "$CACHE_DIR"
    if command -v flock >/dev/null; then
        exec 9>"${CACHE_DIR}/build.lock"
        if ! flock -n 9; then
            say "another build.sh is running; waiting for it ..."
            flock 9
        fi
    fi

    # 1. base
    recipe="$(base_recipe)"
    current="$(image_label "$BASE_IMAGE" "$RECIPE_LABEL")"
    if [ "$FORCE" = 0 ] && [ "$current" = "$recipe" ]; then
        say "${BASE_IMAGE} is current (recipe ${recipe:0:12}), skipping"
    else
        build_base "$recipe"
        built=1
        say "${BASE_IMAGE} built (recipe ${recipe:0:12})"
    fi
    base_id="$(image_id "$BASE_IMAGE")"
    [ -n "$base_id" ] || die "${BASE_IMAGE} is missing after the base step"

    # 2. toolbox images (their recipe includes the base image ID, so a new
    #    base always rebuilds them)
    want="$(toolbox_recipe "$base_id")"
    for target in latest dev; do
        # On a ToolBox host these names may be the real ToolBox images: an
        # image of that name that is not ours is never replaced.
        if [ -n "$(image_id "${TOOLBOX_REPO}:${target}")" ] \
            && [ "$(image_label "${TOOLBOX_REPO}:${target}" managed-by)" != "$MANAGED_BY" ]; then
            warn "${TOOLBOX_REPO}:${target} exists and is not ours (no label managed-by=${MANAGED_BY}): left untouched." \
                "Build ours under another name (CM_TOOLBOX_REPO=cm-toolbox images/build.sh) and set the types' image to it."
            continue
        fi
        have="$(image_label "${TOOLBOX_REPO}:${target}" "$RECIPE_LABEL")"
        if [ "$FORCE" = 0 ] && [ "$have" = "$want" ]; then
            say "${TOOLBOX_REPO}:${target} is current (recipe ${want:0:12}), skipping"
        else
            fetch_wheels
            build_toolbox "$target" "$want"
            built=1
            say "${TOOLBOX_REPO}:${target} built (recipe ${want:0:12})"
        fi
    done

    prune_replaced
    if [ "$built" = 1 ]; then
        docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
            | grep -E "^(${BASE_IMAGE}|${TOOLBOX_REPO}:(latest|dev)) " \
            | while read -r name size; do say "  ${name}  ${size}"; done || true
    fi
    say "done in $(( $(date +%s) - START_TS ))s"
}

main
