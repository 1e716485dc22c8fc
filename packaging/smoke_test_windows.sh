#!/bin/bash
# Smoke test of the Windows installer under Wine 10 (the chroot of build_windows.sh):
#
#   sudo packaging/smoke_test_windows.sh [dist/BiMaCoSR-Upscaler-VER-win64-setup.exe]
#
#  1. a fresh Wine prefix; the installer's manifest asks for no elevation (asInvoker: a
#     double-click never brings a UAC prompt); the installer run silently (/S: per-user, default
#     components) as a standard user would (/TESTASSTANDARDUSER, see below): it installs by
#     itself, no elevated relaunch; the files, the Start-menu and desktop shortcuts and the
#     registry entries checked;
#  2. the installed `bimacosr --self-test`;
#  3. the installed `bimacosr upscale` on two val photos (128x96 LR centre crops of
#     kde_BytheWater and lomiri_aitzgorri from ../shared/data/val, the crops of
#     docs/ARCHITECTURE.md "Sign sensitivity"), read from a C:\ folder with spaces and
#     non-ASCII names and written to another drive (Z:\) with a backslashed path; the outputs
#     must equal the Linux build's within the floor stated there (max and mean |difference|
#     at most 1.5x the floor's largest max and its mean);
#  4. an output held open by another Windows program while a run replaces it: the run fails
#     with a clear message, the old file is intact and no temporary file is left; once the
#     file is closed, the same run replaces it;
#  5. the window (bimacosr-gui.exe) on a virtual screen with one photo: Upscale pressed
#     (Ctrl+Enter), the finished photo selected; screenshot -> build/win64/smoke/window.png;
#     settings and log in the Windows locations platformdirs gives (%LOCALAPPDATA%);
#  6. the uninstaller run silently; nothing of the app may be left in the prefix but the
#     outputs and the user's settings, queue and log;
#  7. the all-users mode in the same prefix, through the elevation relaunch: Wine runs as an
#     administrator, so `/TESTASSTANDARDUSER` makes the installer treat itself as unelevated;
#     `/S /AllUsers /TESTASSTANDARDUSER` must quit at once (exit 0, nothing installed) after
#     starting itself again "runas" with /AllUsers /RELAUNCHED (under Wine runas just starts
#     it), and that instance installs into C:\Program Files\BiMaCoSR Upscaler, the common Start
#     menu and desktop and HKLM (nothing in HKCU or the per-user places), polled for with a
#     timeout; the installed `bimacosr --self-test` from there; its uninstaller, unelevated, with
#     /RELAUNCHED (no second relaunch) must leave everything in place, then `/S
#     /TESTASSTANDARDUSER` relaunches itself elevated and removes it; then nothing of the app left.
# The Linux reference outputs come from $LINUX_BIMACOSR (a Linux `bimacosr` program), else
# dist/bimacosr/bimacosr, else ./scripts/bimacosr (the development install).
# Results: build/win64/smoke/ (report.txt, window.png, outputs). Needs root, like the build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=windows/common.sh
. packaging/windows/common.sh
enter_namespace "$@"
STEPS=7

SETUP=${1:-$(ls -t dist/BiMaCoSR-Upscaler-*-win64-setup.exe 2>/dev/null | head -1)}
[ -f "$SETUP" ] || die "no installer: build it with packaging/build_windows.sh, or name it"
SETUP=$(realpath "$SETUP")
case "$SETUP" in "$ROOT"/*) ;; *) die "the installer must lie inside the checkout ($ROOT)" ;; esac
SETUP_IN=/src/${SETUP#"$ROOT"/}
VAL=$ROOT/../shared/data/val
OUT=build/win64/smoke
PREFIX=/root/wine-smoke
HP=$CHROOT$PREFIX
USERDIR=$HP/drive_c/users/root
WIN_USER='C:\users\root'
INSTDIR_WIN="$WIN_USER"'\AppData\Local\Programs\BiMaCoSR Upscaler'
INSTDIR=$USERDIR/AppData/Local/Programs/BiMaCoSR\ Upscaler
PHOTOS_WIN="$WIN_USER"'\Fotos für Tests'
PHOTOS=$USERDIR/Fotos\ für\ Tests
OUTS_WIN='Z:\tmp\bimacosr smoke\Ergebnisse é'
OUTS=$CHROOT/tmp/bimacosr\ smoke/Ergebnisse\ é
# The floors of docs/ARCHITECTURE.md "Sign sensitivity" (x4, 1/255): largest max, mean.
declare -A FLOOR_MAX=([kde_BytheWater]=23.3 [lomiri_aitzgorri_by_Aitzol_Berasategi]=5.2)
declare -A FLOOR_MEAN=([kde_BytheWater]=0.76 [lomiri_aitzgorri_by_Aitzol_Berasategi]=0.38)
rm -rf "$OUT" && mkdir -p "$OUT"
REPORT=$OUT/report.txt
: >"$REPORT"
report() { echo "$*" | tee -a "$REPORT" | sed 's/^/        /'; }
fail() { report "FAILED: $*"; die "smoke test failed: $*"; }
expect_programs() {  # FOLDER WHERE: the installed executables and the uninstaller are there
    for f in bimacosr.exe bimacosr-gui.exe uninstall.exe; do
        [ -f "$1/$f" ] || fail "$f not installed$2"
    done
}
wine_run() { in_wine "$PREFIX" "$@"; }
# One Windows program in the prefix; its output through a pipe (see common.sh).
app() { wine_run wine "$INSTDIR_WIN\\$1" "${@:2}"; }

# ---- 1 ----------------------------------------------------------------------------------------
step "fresh Wine prefix, silent install of $(basename "$SETUP")"
ensure_chroot
rm -rf "$HP" "$CHROOT/tmp/bimacosr smoke"
wine_run wineboot --init >/dev/null
(cd "$HP/drive_c" && find . | LC_ALL=C sort) >"$OUT/prefix-before.txt"
grep -aq 'requestedExecutionLevel level="asInvoker"' "$SETUP" \
    || fail "the installer's manifest asks for elevation (not asInvoker)"
report "manifest: requestedExecutionLevel asInvoker (no UAC prompt on a double-click)"
t=$(date +%s)
# The files must be there when the installer process returns: no elevated relaunch did it.
wine_run sh -c "wine '$SETUP_IN' /S /TESTASSTANDARDUSER; echo \"installer exit status \$?\"
    [ -f '$PREFIX/drive_c/users/root/AppData/Local/Programs/BiMaCoSR Upscaler/uninstall.exe' ] \
        && echo 'installed by this process'
    wineserver -w" >"$OUT/install.txt"
grep -aq "installer exit status 0" "$OUT/install.txt" || fail "the per-user install failed: $(cat "$OUT/install.txt")"
grep -aq "installed by this process" "$OUT/install.txt" \
    || fail "the per-user install as a standard user did not install by itself"
report "install: $(($(date +%s) - t)) s, $(du -sm "$INSTDIR" | cut -f1) MB in $INSTDIR_WIN (as a standard user, no elevation)"
expect_programs "$INSTDIR" ""
START_MENU=$USERDIR/AppData/Roaming/Microsoft/Windows/Start\ Menu/Programs/BiMaCoSR\ Upscaler
[ -f "$START_MENU/BiMaCoSR Upscaler.lnk" ] || fail "no Start-menu shortcut"
desktop=$(find "$USERDIR" -maxdepth 2 -iname 'BiMaCoSR Upscaler.lnk' -path '*esktop*' | head -1)
[ -n "$desktop" ] || fail "no desktop shortcut"
reg() { wine_run wine reg query "$@"; }
reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\BiMaCoSR Upscaler' \
    | grep -q UninstallString || fail "no uninstall entry in HKCU"
reg 'HKCU\Software\Classes\.png\OpenWithProgids' | grep -q BiMaCoSR.Upscaler.Image \
    || fail "the 'Open with' entry for .png is missing"
if reg 'HKCU\Software\Classes\.png' /ve 2>/dev/null | grep -q BiMaCoSR; then
    fail "the installer took over .png's default program"
fi
report "shortcuts (Start menu, desktop), uninstall entry and 'Open with' entries in HKCU: ok"

# ---- 2 ----------------------------------------------------------------------------------------
step "installed bimacosr --self-test"
t=$(date +%s)
app bimacosr.exe --self-test >"$OUT/self-test.txt" || true
sed 's/^/        /' "$OUT/self-test.txt" | tail -5
grep -aq "self-test passed" "$OUT/self-test.txt" || fail "self-test did not pass"
report "self-test passed in $(($(date +%s) - t)) s"

# ---- 3 ----------------------------------------------------------------------------------------
step "installed bimacosr upscale on two val photos (spaces, non-ASCII, other drive) vs Linux"
[ -d "$VAL" ] || die "no val photos in $VAL"
mkdir -p "$PHOTOS" "$OUTS" "$OUT/linux-in" "$OUT/linux-out"
declare -A NAME=([kde_BytheWater]="Wasser am Fluss – kde_BytheWater"
                 [lomiri_aitzgorri_by_Aitzol_Berasategi]="山 lomiri_aitzgorri_by_Aitzol_Berasategi")
for photo in "${!NAME[@]}"; do
    in_chroot python3 -c "
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert('RGB')
w, h = im.size
l, t = (w - 128) // 2, (h - 96) // 2
im.crop((l, t, l + 128, t + 96)).save(sys.argv[2])" "/shared/data/val/$photo.webp" \
        "/src/$OUT/linux-in/$photo.png"
    cp "$OUT/linux-in/$photo.png" "$PHOTOS/${NAME[$photo]}.png"
done
t=$(date +%s)
app bimacosr.exe upscale "$PHOTOS_WIN" -o "$OUTS_WIN" --scale 4 --format png >"$OUT/upscale.txt" \
    || { cat "$OUT/upscale.txt"; fail "bimacosr upscale failed"; }
report "Windows upscale of 2 photos: $(($(date +%s) - t)) s"
declare -A WIN_PNG
linux=${LINUX_BIMACOSR:-}
if [ -z "$linux" ]; then
    if [ -x dist/bimacosr/bimacosr ]; then linux=dist/bimacosr/bimacosr; else linux=./scripts/bimacosr; fi
fi
"$linux" upscale "$OUT/linux-in" -o "$OUT/linux-out" --scale 4 --format png >"$OUT/linux-upscale.txt" 2>&1 \
    || { tail -5 "$OUT/linux-upscale.txt"; fail "the Linux reference run failed ($linux)"; }
for photo in "${!NAME[@]}"; do
    win_png=$(find "$OUTS" -name "${NAME[$photo]}*.png" | head -1)
    WIN_PNG[$photo]=$win_png
    lin_png=$(find "$OUT/linux-out" -name "$photo*.png" | head -1)
    [ -f "$win_png" ] && [ -f "$lin_png" ] || fail "missing output of $photo"
    cp "$win_png" "$OUT/windows-$photo.png"
    line=$(in_chroot python3 -c "
import sys
import numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert('RGB'), dtype=np.float64)
b = np.asarray(Image.open(sys.argv[2]).convert('RGB'), dtype=np.float64)
assert a.shape == b.shape, (a.shape, b.shape)
d = np.abs(a - b)
fmax, fmean = float(sys.argv[3]), float(sys.argv[4])
bmax, bmean = max(1.0, 1.5 * fmax), max(0.05, 1.5 * fmean)
ok = d.max() <= bmax and d.mean() <= bmean
print(f'{\"ok\" if ok else \"FAIL\"} {a.shape[1]}x{a.shape[0]} max {d.max():.1f}/255 '
      f'(bound {bmax:.1f}), mean {d.mean():.3f}/255 (bound {bmean:.2f}), '
      f'identical pixels {np.mean(d.max(axis=2) == 0):.1%}')" \
        "/src/$OUT/windows-$photo.png" "/src/$lin_png" "${FLOOR_MAX[$photo]}" "${FLOOR_MEAN[$photo]}")
    report "$photo (as '${NAME[$photo]}.png'): Windows vs Linux $line"
    case "$line" in ok*) ;; *) fail "$photo differs beyond the floor" ;; esac
done

# ---- 4 ----------------------------------------------------------------------------------------
step "an output held open by another program while a run replaces it"
held=${WIN_PNG[kde_BytheWater]}
sha_before=$(sha256sum "$held" | cut -d' ' -f1)
held_win="$OUTS_WIN\\$(basename "$held")"
# The holder: the build's Windows Python (build_windows.sh's prefix) opening the file as an
# image viewer does (CreateFile sharing read and write, not delete) for 40 s.
HOLDER_PY=/root/wine-build/drive_c/Python311/python.exe
[ -f "$CHROOT$HOLDER_PY" ] || die "no $HOLDER_PY: run packaging/build_windows.sh first"
wine_run sh -c "wine $HOLDER_PY -c 'import sys, time
f = open(sys.argv[1], \"rb\")
print(\"holder: open\", flush=True)
time.sleep(40)' '$held_win' &
    sleep 12
    wine '$INSTDIR_WIN\\bimacosr.exe' upscale '$PHOTOS_WIN\\${NAME[kde_BytheWater]}.png' \
        -o '$OUTS_WIN' --scale 4 --format png --on-exists overwrite; echo \"exit status \$?\"
    wineserver -k" >"$OUT/held-open.txt" 2>&1 || true
sed 's/^/        /' "$OUT/held-open.txt" | grep -a -v '^ *$' | tail -4
if grep -aq "exit status 0" "$OUT/held-open.txt"; then
    report "held-open output: replaced while open (this Wine let the rename through)"
else
    grep -aqi "open in another program\|being used by another process\|in use" "$OUT/held-open.txt" \
        || fail "no clear message for an output held open"
    [ "$(sha256sum "$held" | cut -d' ' -f1)" = "$sha_before" ] || fail "the held-open output changed"
    report "held-open output: run failed with a clear message, old file intact"
fi
if find "$OUTS" -name '.bimacosr-*.part' | grep -q .; then fail "a temporary file was left"; fi
app bimacosr.exe upscale "$PHOTOS_WIN\\${NAME[kde_BytheWater]}.png" -o "$OUTS_WIN" --scale 4 \
    --format png --on-exists overwrite >"$OUT/after-close.txt" \
    || { cat "$OUT/after-close.txt"; fail "the run after closing the file failed"; }
report "after the file was closed, the same run replaced it: ok"

# ---- 5 ----------------------------------------------------------------------------------------
step "the window on a virtual screen: a photo upscaled and compared, screenshot"
rm -f "$CHROOT/tmp/gui-shot.png"
in_chroot env WINEPREFIX="$PREFIX" WINEARCH=win64 xvfb-run -a -s "-screen 0 1600x1000x24" sh -c "
    wine '$INSTDIR_WIN\\bimacosr-gui.exe' '$PHOTOS_WIN\\${NAME[lomiri_aitzgorri_by_Aitzol_Berasategi]}.png' >/tmp/gui.log 2>&1 &
    for i in \$(seq 90); do
        w=\$(xdotool search --name 'BiMaCoSR Upscaler' 2>/dev/null | tail -1)
        [ -n \"\$w\" ] && break; sleep 1
    done
    [ -n \"\$w\" ] || { echo 'no window'; exit 1; }
    echo \"window after \$i s\"
    sleep 20
    xdotool windowsize \$w 1500 940 windowmove \$w 40 20 windowactivate --sync \$w 2>/dev/null || true
    sleep 2
    xdotool key --window \$w ctrl+Return
    sleep 70
    import -window root /tmp/gui-shot.png
    xdotool key --window \$w ctrl+q
    sleep 5
    wineserver -k
" 2>&1 | grep -a -v '^X connection' | sed 's/^/        /' || true
cp "$CHROOT/tmp/gui-shot.png" "$OUT/window.png" 2>/dev/null || fail "no screenshot"
report "screenshot: $OUT/window.png"
settings_dir=$USERDIR/AppData/Local/BiMaCoSR\ Upscaler
[ -f "$settings_dir/settings.ini" ] || [ -d "$settings_dir" ] \
    || fail "no settings in %LOCALAPPDATA%\\BiMaCoSR Upscaler"
report "settings, queue and log under %LOCALAPPDATA%\\BiMaCoSR Upscaler: $(cd "$settings_dir" && find . -type f | sed 's|^\./||' | tr '\n' ' ')"

# ---- 6 ----------------------------------------------------------------------------------------
step "silent uninstall; only outputs and the user's settings may be left"
t=$(date +%s)
wine_run sh -c "wine '$INSTDIR_WIN\\uninstall.exe' /S; sleep 2; wineserver -w"
report "uninstall: $(($(date +%s) - t)) s"
[ ! -e "$INSTDIR" ] || fail "the program folder is still there: $(find "$INSTDIR" | head -5)"
[ ! -e "$START_MENU" ] || fail "the Start-menu folder is still there"
[ ! -e "$desktop" ] || fail "the desktop shortcut is still there"
if reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\BiMaCoSR Upscaler' 2>/dev/null \
        | grep -q UninstallString; then fail "the uninstall entry is still there"; fi
if reg 'HKCU\Software\Classes\.png\OpenWithProgids' 2>/dev/null | grep -q BiMaCoSR; then
    fail "the 'Open with' entry is still there"
fi
if grep -qi 'bimacosr' "$HP/user.reg"; then
    fail "registry entries left: $(grep -i bimacosr "$HP/user.reg" | head -3)"
fi
(cd "$HP/drive_c" && find . | LC_ALL=C sort) >"$OUT/prefix-after.txt"
# New paths that are the app's: anything naming it, outside what the user keeps.
left=$(comm -13 "$OUT/prefix-before.txt" "$OUT/prefix-after.txt" \
    | grep -i 'bimacosr' \
    | grep -v -e '^\./users/root/AppData/Local/BiMaCoSR Upscaler' \
        -e '^\./users/root/Fotos für Tests' -e '^\./users/root/AppData/Local/Temp' || true)
[ -z "$left" ] || fail "left after uninstall: $(echo "$left" | head -5)"
[ -f "$held" ] || fail "the outputs were removed"
report "after uninstall: program, shortcuts and registry entries gone; outputs and settings kept"

# ---- 7 ----------------------------------------------------------------------------------------
step "all users: silent install (/S /AllUsers) through the elevated relaunch, self-test, uninstall"
AU_DIR_WIN='C:\Program Files\BiMaCoSR Upscaler'
AU_DIR=$HP/drive_c/Program\ Files/BiMaCoSR\ Upscaler
AU_DIR_IN="$PREFIX/drive_c/Program Files/BiMaCoSR Upscaler"  # inside the chroot
AU_START=$HP/drive_c/ProgramData/Microsoft/Windows/Start\ Menu/Programs/BiMaCoSR\ Upscaler
AU_DESKTOP=$HP/drive_c/users/Public/Desktop/BiMaCoSR\ Upscaler.lnk
AU_KEY='HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\BiMaCoSR Upscaler'
# `wine reg` is the 32-bit reg.exe here: /reg:64 reads the view the installer writes (and
# Settings > Apps lists), not WOW6432Node.
if grep -qi 'bimacosr' "$HP/system.reg"; then fail "HKLM names the app before the all-users install"; fi
t=$(date +%s)
# The first process quits as soon as it has started the elevated one: poll (0.5 s, at most
# 180 s) until the relaunched installer (seen by its command line) has gone and the uninstall
# key is there.
wine_run sh -c "wine '$SETUP_IN' /S /AllUsers /TESTASSTANDARDUSER; echo \"first instance: exit status \$?\"
    [ -e '$AU_DIR_IN/uninstall.exe' ] && echo 'first instance: installed by itself'
    seen=0; done=0
    for i in \$(seq 360); do
        if ps -eo args | grep -aq '[/]AllUsers /RELAUNCHED'; then seen=1; sleep 0.5; continue; fi
        if wine reg query '$AU_KEY' /reg:64 2>/dev/null | grep -q UninstallString; then done=1; break; fi
        sleep 0.5
    done
    echo \"relaunched instance seen: \$seen, finished: \$done\"
    wineserver -w" >"$OUT/install-allusers.txt"
sed 's/^/        /' "$OUT/install-allusers.txt"
grep -aq "first instance: exit status 0" "$OUT/install-allusers.txt" || fail "the unelevated /AllUsers installer did not exit with 0"
if grep -aq "installed by itself" "$OUT/install-allusers.txt"; then
    fail "the unelevated /AllUsers installer installed without the elevated relaunch"
fi
grep -aq "relaunched instance seen: 1, finished: 1" "$OUT/install-allusers.txt" \
    || fail "no elevated relaunch, or it did not finish within 180 s"
report "all-users install through the elevated relaunch: $(($(date +%s) - t)) s, $(du -sm "$AU_DIR" | cut -f1) MB in $AU_DIR_WIN"
expect_programs "$AU_DIR" " under Program Files"
[ -f "$AU_START/BiMaCoSR Upscaler.lnk" ] || fail "no all-users Start-menu shortcut"
[ -f "$AU_DESKTOP" ] || fail "no all-users (Public) desktop shortcut"
if grep -qi 'bimacosr' "$HP/user.reg"; then
    fail "the all-users install wrote to HKCU: $(grep -i bimacosr "$HP/user.reg" | head -3)"
fi
[ ! -e "$INSTDIR" ] && [ ! -e "$START_MENU" ] && [ ! -e "$desktop" ] \
    || fail "the all-users install wrote into the user's folders"
reg "$AU_KEY" /reg:64 | grep -q "InstallLocation.*Program Files" \
    || fail "no uninstall entry in HKLM (64-bit view)"
reg 'HKLM\Software\Classes\.png\OpenWithProgids' /reg:64 | grep -q BiMaCoSR.Upscaler.Image \
    || fail "the all-users 'Open with' entry for .png is missing"
report "shortcuts (common Start menu, Public desktop), uninstall entry and 'Open with' entries in HKLM, nothing in HKCU: ok"
t=$(date +%s)
wine_run wine "$AU_DIR_WIN\\bimacosr.exe" --self-test >"$OUT/self-test-allusers.txt" || true
grep -aq "self-test passed" "$OUT/self-test-allusers.txt" \
    || { tail -5 "$OUT/self-test-allusers.txt"; fail "self-test from Program Files did not pass"; }
report "self-test from $AU_DIR_WIN passed in $(($(date +%s) - t)) s"
# Unelevated and marked as the relaunch already: it must refuse (740) and remove nothing.
wine_run sh -c "wine '$AU_DIR_WIN\\uninstall.exe' /S /TESTASSTANDARDUSER /RELAUNCHED; sleep 2; wineserver -w"
[ -f "$AU_DIR/uninstall.exe" ] && [ -f "$AU_START/BiMaCoSR Upscaler.lnk" ] \
    || fail "the unelevated all-users uninstaller removed files"
reg "$AU_KEY" /reg:64 | grep -q UninstallString || fail "the unelevated all-users uninstaller removed the uninstall entry"
report "unelevated all-users uninstaller without a relaunch: refused, nothing removed"
t=$(date +%s)
wine_run sh -c "wine '$AU_DIR_WIN\\uninstall.exe' /S /TESTASSTANDARDUSER
    for i in \$(seq 360); do
        [ ! -e '$AU_DIR_IN' ] && ! wine reg query '$AU_KEY' /reg:64 >/dev/null 2>&1 && break
        sleep 0.5
    done
    sleep 2; wineserver -w"
report "all-users uninstall through the elevated relaunch: $(($(date +%s) - t)) s"
[ ! -e "$AU_DIR" ] || fail "the Program Files folder is still there: $(find "$AU_DIR" | head -5)"
[ ! -e "$AU_START" ] || fail "the all-users Start-menu folder is still there"
[ ! -e "$AU_DESKTOP" ] || fail "the Public desktop shortcut is still there"
if grep -qi 'bimacosr' "$HP/system.reg"; then
    fail "HKLM entries left: $(grep -i bimacosr "$HP/system.reg" | head -3)"
fi
(cd "$HP/drive_c" && find . | LC_ALL=C sort) >"$OUT/prefix-after-allusers.txt"
left=$(comm -13 "$OUT/prefix-after.txt" "$OUT/prefix-after-allusers.txt" | grep -i 'bimacosr' \
    | grep -v -e '^\./users/root/AppData/Local/BiMaCoSR Upscaler' -e '^\./users/root/AppData/Local/Temp' \
    || true)
[ -z "$left" ] || fail "left after the all-users uninstall: $(echo "$left" | head -5)"
report "after the all-users uninstall: Program Files folder, shortcuts and HKLM entries gone"
report "smoke test passed in $(($(date +%s) - T0)) s"
