#!/bin/sh
# Build the macOS release into dist/: "BiMaCoSR Upscaler.app" (PyInstaller onedir BUNDLE with
# Info.plist document types for images) and BiMaCoSR_Upscaler-VER-ARCH.dmg (drag to
# Applications), both signed.
#   PYTHON=python3 packaging/build_macos.sh      # $PYTHON: has `pip install -e .[package]`
# Signing: ad-hoc ("-") by default, which runs on the building Mac and, after the user's
# right-click > Open, on others. For distribution set CODESIGN_IDENTITY="Developer ID
# Application: NAME (TEAMID)" (hardened runtime, entitlements, secure timestamp) and
# NOTARY_PROFILE to a `xcrun notarytool store-credentials` profile: the .dmg is then notarized
# and stapled (docs/PACKAGING.md, "macOS notarization").
# Then test:  python3 packaging/smoke_test.py "dist/BiMaCoSR Upscaler.app"
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
IDENTITY=${CODESIGN_IDENTITY:--}
APP="dist/BiMaCoSR Upscaler.app"

"$PY" -m PyInstaller --noconfirm --distpath dist --workpath build/pyinstaller \
    packaging/bimacosr.spec
VERSION=$("$PY" -c 'import bimacosr_app; print(bimacosr_app.__version__)')
DMG="dist/BiMaCoSR_Upscaler-$VERSION-$(uname -m).dmg"

if [ "$IDENTITY" = "-" ]; then
    codesign --force --deep --sign - "$APP"
else
    codesign --force --deep --options runtime --timestamp \
        --entitlements packaging/macos/entitlements.plist --sign "$IDENTITY" "$APP"
fi
codesign --verify --deep --strict --verbose=2 "$APP"

STAGE=build/dmg
rm -rf "$STAGE" "$DMG"
mkdir -p "$STAGE"
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname "BiMaCoSR Upscaler" -srcfolder "$STAGE" -fs HFS+ -format UDZO \
    -ov "$DMG"
codesign --force --sign "$IDENTITY" "$DMG"

if [ -n "${NOTARY_PROFILE:-}" ] && [ "$IDENTITY" != "-" ]; then
    xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
    xcrun stapler staple "$DMG"
    xcrun stapler validate "$DMG"
fi
du -sh "$APP"
ls -l "$DMG"
