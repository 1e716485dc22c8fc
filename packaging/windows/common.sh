# Shared by packaging/build_windows.sh and packaging/smoke_test_windows.sh (sourced by bash).
#
# Everything Windows runs under Wine 10 inside a Debian 13 (trixie) chroot: Debian 12's Wine 8
# cannot run Qt (QGuiApplication aborts: Windows.UI UISettings missing), and trixie's Wine needs
# glibc 2.38. The chroot, the Wine prefixes and the downloads are cached outside the checkout,
# in $BIMACOSR_WIN_CACHE (default /var/cache/bimacosr-windows, 7.0 GB with both prefixes).
#
# The calling script re-executes itself in a private mount namespace (unshare -m), so the bind
# mounts (/proc, /dev, /sys, the checkout at /src, ../shared at /shared) disappear with it, even
# when it is killed. Needs root (debootstrap, chroot, mount).

ROOT=$(pwd)
CACHE=${BIMACOSR_WIN_CACHE:-/var/cache/bimacosr-windows}
CHROOT=$CACHE/chroot
DOWNLOADS=$CACHE/downloads
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Debian packages inside the chroot; a change of this list reinstalls (stamp below).
CHROOT_PACKAGES="wine wine64 wine32:i386 nsis xvfb xauth x11-apps imagemagick python3-pip
python3-setuptools python3-numpy python3-pil cmake ninja-build g++-mingw-w64-x86-64-posix
osslsigncode ca-certificates xz-utils xdotool procps"
STEP=0
STEPS=${STEPS:-?}
T0=$(date +%s)

step() {
    STEP=$((STEP + 1))
    printf '[%s/%s %4ss] %s\n' "$STEP" "$STEPS" "$(($(date +%s) - T0))" "$*"
}

note() {
    printf '        %s\n' "$*"
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Re-run the calling script in its own mount namespace (once).
enter_namespace() {
    [ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and bind mounts)"
    if [ -z "${BIMACOSR_WIN_NS:-}" ]; then
        command -v unshare >/dev/null || die "unshare (util-linux) not found"
        BIMACOSR_WIN_NS=1 exec unshare --mount --propagation private "$0" "$@"
    fi
}

# The trixie chroot with Wine 10 and the build tools (cached; 3.6 GB).
ensure_chroot() {
    stamp=$CHROOT/.bimacosr-packages
    if [ ! -x "$CHROOT/usr/bin/apt-get" ] || [ ! -f "$CHROOT/.bimacosr-debootstrap-ok" ]; then
        if ! command -v debootstrap >/dev/null; then
            note "installing debootstrap on the host"
            apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
        fi
        rm -rf "$CHROOT"
        mkdir -p "$CHROOT"
        note "debootstrap --variant=minbase trixie $CHROOT ($MIRROR)"
        debootstrap --variant=minbase trixie "$CHROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
            || die "debootstrap failed, see $CACHE/debootstrap.log"
        touch "$CHROOT/.bimacosr-debootstrap-ok"
    fi
    mount_chroot
    want=$(echo "$CHROOT_PACKAGES" | tr -s ' \n' ' ')
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        note "apt-get install in the chroot: $want"
        cp /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true
        # shellcheck disable=SC2086
        in_chroot sh -c "dpkg --add-architecture i386 && apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            $want" >"$CACHE/apt.log" 2>&1 || die "apt-get in the chroot failed, see $CACHE/apt.log"
        echo "$want" >"$stamp"
    fi
    # pip in the chroot trusts what the host trusts (a host behind a TLS-inspecting proxy).
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        cp /etc/ssl/certs/ca-certificates.crt "$CHROOT/etc/ssl/host-ca-certificates.crt"
    fi
}

mount_chroot() {
    [ -n "${_MOUNTED:-}" ] && return 0
    for d in proc dev sys; do
        mkdir -p "$CHROOT/$d"
    done
    mount -t proc proc "$CHROOT/proc"
    mount --rbind /dev "$CHROOT/dev"
    mount --rbind /sys "$CHROOT/sys"  # without /sys, cv2.resize throws "Unknown exception"
    mkdir -p "$CHROOT/src" "$CHROOT/cache" "$CHROOT/tmp"
    chmod 1777 "$CHROOT/tmp"
    mount --bind "$ROOT" "$CHROOT/src"
    mkdir -p "$DOWNLOADS"
    mount --bind "$DOWNLOADS" "$CHROOT/cache"
    if [ -d "$ROOT/../shared" ]; then
        mkdir -p "$CHROOT/shared"
        mount --bind "$ROOT/../shared" "$CHROOT/shared"
    fi
    _MOUNTED=1
}

# Run a command in the chroot (root, HOME=/root, Wine quiet).
in_chroot() {
    chroot "$CHROOT" env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root \
        PIP_CERT=/etc/ssl/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 LANG=C.UTF-8 \
        WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml,winemenubuilder.exe=" "$@"
}

# Run a command under Wine in the chroot with $WINEPREFIX (a path inside the chroot) and a
# virtual X screen. Output goes through a pipe: a Windows Python whose stdout is a file under
# this Wine dies at start.
in_wine() {
    prefix=$1
    shift
    in_chroot env WINEPREFIX="$prefix" WINEARCH=win64 xvfb-run -a -s "-screen 0 1600x1000x24" \
        "$@" 2>&1 | { grep -a -v --line-buffered '^X connection to .* broken' || true; }
}
