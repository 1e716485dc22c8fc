#!/bin/sh
# Build the Linux release of BiMaCoSR Upscaler into dist/:
#   dist/bimacosr/                         PyInstaller onedir bundle (bimacosr, bimacosr-gui)
#   dist/BiMaCoSR_Upscaler.AppDir/         the bundle + AppRun, .desktop file and icon
#   dist/BiMaCoSR_Upscaler-VER-ARCH.AppImage   only when appimagetool is available
#   dist/BiMaCoSR_Upscaler-VER-ARCH.tar.xz     always (the AppDir as a plain archive: xz with
#                                              its x86 filter, -9e, one 384 MiB dictionary)
# Then test it:  python packaging/smoke_test.py dist/BiMaCoSR_Upscaler-VER-ARCH.tar.xz
#
# Python: $PYTHON when set (an environment with `pip install -e .[package]` done), else the
# project's .venv, set up or refreshed with the [package] extra (PyInstaller).
# appimagetool: $APPIMAGETOOL, or `appimagetool` / `appimagetool-ARCH.AppImage` on PATH.
# It is not in PyPI or Debian; CI downloads it from the AppImage project's releases.
# The AppImage needs FUSE 2 (libfuse2) on the user's machine to run in place; without it,
# run it with --appimage-extract-and-run, or use the .tar.xz.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
else
    extras=package
    . "$ROOT/scripts/_venv.sh"
    PY=$VENV_PY
fi

VERSION=$("$PY" -c 'import bimacosr_app; print(bimacosr_app.__version__)')
ARCH=$(uname -m)
NAME="BiMaCoSR_Upscaler-$VERSION-$ARCH"
BUNDLE=dist/bimacosr
APPDIR=dist/BiMaCoSR_Upscaler.AppDir

echo "== PyInstaller (onedir) -> $BUNDLE"
"$PY" -m PyInstaller --noconfirm --distpath dist --workpath build/pyinstaller \
    packaging/bimacosr.spec

echo "== AppDir -> $APPDIR"
rm -rf "$APPDIR"
cp -al "$BUNDLE" "$APPDIR" 2>/dev/null || cp -a "$BUNDLE" "$APPDIR"
install -m 755 packaging/linux/AppRun "$APPDIR/AppRun"
install -m 644 packaging/linux/bimacosr.desktop "$APPDIR/bimacosr.desktop"
install -m 644 resources/icons/bimacosr-256.png "$APPDIR/bimacosr.png"
ln -sf bimacosr.png "$APPDIR/.DirIcon"
for size in 16 32 48 64 128 256 512; do
    dir="$APPDIR/usr/share/icons/hicolor/${size}x$size/apps"
    mkdir -p "$dir"
    install -m 644 "resources/icons/bimacosr-$size.png" "$dir/bimacosr.png"
done
mkdir -p "$APPDIR/usr/share/icons/hicolor/scalable/apps" "$APPDIR/usr/share/applications"
install -m 644 resources/icons/bimacosr.svg "$APPDIR/usr/share/icons/hicolor/scalable/apps/"
install -m 644 packaging/linux/bimacosr.desktop "$APPDIR/usr/share/applications/"

TOOL=${APPIMAGETOOL:-$(command -v appimagetool || command -v "appimagetool-$ARCH.AppImage" || true)}
rm -f "dist/$NAME.AppImage" "dist/$NAME.tar.xz"
if [ -n "$TOOL" ]; then
    echo "== AppImage -> dist/$NAME.AppImage ($TOOL)"
    # APPIMAGE_EXTRACT_AND_RUN: appimagetool is an AppImage itself; run it without FUSE.
    ARCH=$ARCH APPIMAGE_EXTRACT_AND_RUN=1 "$TOOL" --no-appstream "$APPDIR" "dist/$NAME.AppImage"
else
    echo "== AppImage skipped: appimagetool not found (set APPIMAGETOOL=/path/to/it);"
    echo "   the .tar.xz below is the fallback."
fi

# xz: the x86 (BCJ) filter makes the machine code compress better, and one dictionary larger
# than the libraries' spread finds what repeats across the archive: 89 MB where plain xz -9
# (64 MiB dictionary) gives 94 MB. One thread (a threaded xz would shrink the dictionary to
# its memory limit); about 4 GB to compress, 385 MB to unpack.
echo "== tar.xz -> dist/$NAME.tar.xz (xz --x86 -9e, one thread: several minutes)"
tar -C dist --owner=0 --group=0 --transform "s,^BiMaCoSR_Upscaler.AppDir,$NAME," \
    -cf - BiMaCoSR_Upscaler.AppDir |
    xz -T1 --x86 --lzma2=preset=9e,dict=384MiB > "dist/$NAME.tar.xz.part"
mv "dist/$NAME.tar.xz.part" "dist/$NAME.tar.xz"

echo "== sizes"
du -sh "$BUNDLE"
ls -l dist/*.tar.xz dist/*.AppImage 2>/dev/null || true
echo "Test with: python packaging/smoke_test.py dist/$NAME.tar.xz"
