; NSIS 3 script: the Windows installer of BiMaCoSR Upscaler (the one installer definition).
; Built by packaging/build_windows.sh with Debian's makensis:
;   makensis -INPUTCHARSET UTF8 -DVERSION=0.1.0 -DBUNDLE=build/win64/dist/bimacosr \
;            -DOUTFILE=dist/BiMaCoSR-Upscaler-0.1.0-win64-setup.exe -DROOT=. packaging/windows/bimacosr.nsi
; (on Windows the same with makensis.exe). BUNDLE is the PyInstaller one-folder bundle.
;
; - Two install modes (NSIS's MultiUser.nsh), per-user the default:
;   - just for me (per-user, no administrator rights): %LOCALAPPDATA%\Programs\BiMaCoSR Upscaler,
;     Start menu, desktop and registry (HKCU) of the current user;
;   - for all users (needs administrator rights): %ProgramFiles%\BiMaCoSR Upscaler, the common
;     Start menu and desktop, registry under HKLM (SetShellVarContext all, SHCTX).
;   An administrator chooses on the "Choose Users" page (Windows asks for elevation when the
;   installer starts: MULTIUSER_EXECUTIONLEVEL Highest); a standard user gets no prompt and no
;   page, and installs per-user. A later run defaults to the mode already installed.
; - Start-menu shortcut; desktop shortcut (a component, selected by default).
; - File associations offered, not forced: a component ("Open with" for JPEG, PNG, WebP, TIFF
;   and BMP through a ProgID and OpenWithProgids); it never takes over the default program.
; - Uninstaller (Settings > Apps and the Start-menu folder): removes the mode it was installed
;   with (found by its own folder), exactly the files the installer wrote (list generated at
;   build time), the shortcuts and the registry entries; the user's settings, logs, queue and
;   upscaled photos stay.
; Silent install: setup.exe /S [/CurrentUser | /AllUsers] [/D=C:\path]; silent uninstall:
; uninstall.exe /S. Components from the command line: /NODESKTOP, /NOASSOC (with or without /S).

Unicode true
SetCompressor /SOLID lzma
SetCompressorDictSize 64
ManifestDPIAware true

!ifndef VERSION
  !error "define VERSION (-DVERSION=0.1.0)"
!endif
!ifndef BUNDLE
  !error "define BUNDLE (the PyInstaller bundle folder)"
!endif
!ifndef ROOT
  !define ROOT "..\.."
!endif
!ifndef OUTFILE
  !define OUTFILE "BiMaCoSR-Upscaler-${VERSION}-win64-setup.exe"
!endif

!define APPNAME "BiMaCoSR Upscaler"
!define APPEXE "bimacosr-gui.exe"
!define PROGID "BiMaCoSR.Upscaler.Image"
!define UNINSTKEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\BiMaCoSR Upscaler"
!define APPKEY "Software\BiMaCoSR Upscaler"

; MultiUser.nsh: per-user by default; all users for an administrator who chooses it (page or
; /AllUsers). It sets $INSTDIR, SetShellVarContext and SHCTX (HKCU or HKLM) for the mode.
!define MULTIUSER_EXECUTIONLEVEL Highest
!define MULTIUSER_MUI
!define MULTIUSER_INSTALLMODE_COMMANDLINE
!define MULTIUSER_INSTALLMODE_DEFAULT_CURRENTUSER
!define MULTIUSER_INSTALLMODE_DEFAULT_REGISTRY_KEY "${APPKEY}"
!define MULTIUSER_INSTALLMODE_DEFAULT_REGISTRY_VALUENAME "InstallDir"
!define MULTIUSER_INSTALLMODE_INSTDIR "${APPNAME}"
!define MULTIUSER_INSTALLMODE_INSTDIR_REGISTRY_KEY "${APPKEY}"
!define MULTIUSER_INSTALLMODE_INSTDIR_REGISTRY_VALUENAME "InstallDir"
!define MULTIUSER_USE_PROGRAMFILES64
!define MULTIUSER_INSTALLMODE_FUNCTION onInstallModeChanged
!define MULTIUSER_INSTALLMODE_UNFUNCTION un.onInstallModeChanged

Name "${APPNAME}"
OutFile "${OUTFILE}"
; no InstallDir: MultiUser.nsh sets $INSTDIR per mode (a /D= folder is kept, see below)
BrandingText "${APPNAME} ${VERSION}"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APPNAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APPNAME} setup"
VIAddVersionKey "LegalCopyright" "MIT License"

!include "MultiUser.nsh"
!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "x64.nsh"
!include "Sections.nsh"

!define MUI_ICON "${ROOT}\resources\icons\bimacosr.ico"
!define MUI_UNICON "${ROOT}\resources\icons\bimacosr.ico"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC
!define MUI_FINISHPAGE_RUN
!define MUI_FINISHPAGE_RUN_FUNCTION LaunchApp
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APPNAME}"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MULTIUSER_PAGE_INSTALLMODE
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Section "!${APPNAME} (required)" SecApp
  SectionIn RO
  SetOutPath "$INSTDIR"
  ; the whole bundle; the uninstaller removes exactly these files (uninstall_files.nsh)
  File /r "${BUNDLE}\*.*"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateDirectory "$SMPROGRAMS\${APPNAME}"
  CreateShortcut "$SMPROGRAMS\${APPNAME}\${APPNAME}.lnk" "$INSTDIR\${APPEXE}" "" "$INSTDIR\${APPEXE}" 0
  CreateShortcut "$SMPROGRAMS\${APPNAME}\Uninstall ${APPNAME}.lnk" "$INSTDIR\uninstall.exe"
  WriteRegStr SHCTX "${APPKEY}" "InstallDir" "$INSTDIR"
  WriteRegStr SHCTX "${UNINSTKEY}" "DisplayName" "${APPNAME}"
  WriteRegStr SHCTX "${UNINSTKEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr SHCTX "${UNINSTKEY}" "Publisher" "${APPNAME}"
  WriteRegStr SHCTX "${UNINSTKEY}" "DisplayIcon" "$INSTDIR\${APPEXE},0"
  WriteRegStr SHCTX "${UNINSTKEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr SHCTX "${UNINSTKEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr SHCTX "${UNINSTKEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD SHCTX "${UNINSTKEY}" "NoModify" 1
  WriteRegDWORD SHCTX "${UNINSTKEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD SHCTX "${UNINSTKEY}" "EstimatedSize" $0
SectionEnd

Section "Desktop shortcut" SecDesktop
  CreateShortcut "$DESKTOP\${APPNAME}.lnk" "$INSTDIR\${APPEXE}" "" "$INSTDIR\${APPEXE}" 0
SectionEnd

!macro ASSOC EXT
  WriteRegStr SHCTX "Software\Classes\${EXT}\OpenWithProgids" "${PROGID}" ""
  WriteRegStr SHCTX "Software\Classes\Applications\${APPEXE}\SupportedTypes" "${EXT}" ""
!macroend
!macro UNASSOC EXT
  DeleteRegValue SHCTX "Software\Classes\${EXT}\OpenWithProgids" "${PROGID}"
  DeleteRegKey /ifempty SHCTX "Software\Classes\${EXT}\OpenWithProgids"
  DeleteRegKey /ifempty SHCTX "Software\Classes\${EXT}"
!macroend

Section "Offer ${APPNAME} in $\"Open with$\" for JPEG, PNG, WebP, TIFF and BMP" SecAssoc
  WriteRegStr SHCTX "Software\Classes\${PROGID}" "" "Image to upscale"
  WriteRegStr SHCTX "Software\Classes\${PROGID}\DefaultIcon" "" "$INSTDIR\${APPEXE},0"
  WriteRegStr SHCTX "Software\Classes\${PROGID}\shell\open\command" "" '"$INSTDIR\${APPEXE}" "%1"'
  WriteRegStr SHCTX "Software\Classes\Applications\${APPEXE}" "FriendlyAppName" "${APPNAME}"
  WriteRegStr SHCTX "Software\Classes\Applications\${APPEXE}\shell\open\command" "" '"$INSTDIR\${APPEXE}" "%1"'
  !insertmacro ASSOC ".jpg"
  !insertmacro ASSOC ".jpeg"
  !insertmacro ASSOC ".png"
  !insertmacro ASSOC ".webp"
  !insertmacro ASSOC ".tif"
  !insertmacro ASSOC ".tiff"
  !insertmacro ASSOC ".bmp"
  WriteRegDWORD SHCTX "${APPKEY}" "Associations" 1
  ; tell Explorer (SHChangeNotify SHCNE_ASSOCCHANGED)
  System::Call 'shell32::SHChangeNotify(i 0x08000000, i 0, p 0, p 0)'
SectionEnd

Var CmdLineInstDir  ; a folder given with /D= (MultiUser.nsh would replace it)
Var UninstDir       ; the uninstaller's own folder: the installation it removes

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "${APPNAME} needs 64-bit Windows." /SD IDOK
    Abort
  ${EndIf}
  SetRegView 64  ; before MULTIUSER_INIT: HKLM\Software, not WOW6432Node
  StrCpy $CmdLineInstDir $INSTDIR  ; empty without /D= (no InstallDir)
  !insertmacro MULTIUSER_INIT
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/NODESKTOP" $R1
  ${IfNot} ${Errors}
    !insertmacro UnselectSection ${SecDesktop}
  ${EndIf}
  ClearErrors
  ${GetOptions} $R0 "/NOASSOC" $R1
  ${IfNot} ${Errors}
    !insertmacro UnselectSection ${SecAssoc}
  ${EndIf}
FunctionEnd

; called by MultiUser.nsh after each mode change (init, /AllUsers, /CurrentUser, the page)
Function onInstallModeChanged
  ${If} $CmdLineInstDir != ""
    StrCpy $INSTDIR $CmdLineInstDir
  ${EndIf}
FunctionEnd

Function un.onInstallModeChanged
  StrCpy $INSTDIR $UninstDir  ; never the folder recorded in the registry
FunctionEnd

Function un.onInit
  SetRegView 64
  StrCpy $UninstDir $INSTDIR
  !insertmacro MULTIUSER_UNINIT
  ; The mode is the one whose recorded folder is this uninstaller's (both may be installed).
  ReadRegStr $R0 HKCU "${APPKEY}" "InstallDir"
  ReadRegStr $R1 HKLM "${APPKEY}" "InstallDir"
  ${If} $R0 == $UninstDir
    Call un.MultiUser.InstallMode.CurrentUser
  ${ElseIf} $R1 == $UninstDir
    ${If} $MultiUser.Privileges != "Admin"
    ${AndIf} $MultiUser.Privileges != "Power"
      MessageBox MB_ICONSTOP "${APPNAME} was installed for all users: uninstalling it needs administrator rights." /SD IDOK
      SetErrorLevel 740  ; ERROR_ELEVATION_REQUIRED
      Quit
    ${EndIf}
    Call un.MultiUser.InstallMode.AllUsers
  ${EndIf}
FunctionEnd

; The finish page's "Start": through Explorer, so the app runs with the user's normal rights
; (an administrator's installer runs elevated; an elevated window takes no drops from Explorer).
Function LaunchApp
  Exec '"$WINDIR\explorer.exe" "$INSTDIR\${APPEXE}"'
FunctionEnd

Section "Uninstall"
  ; files and folders of the bundle, generated by build_windows.sh (deepest first)
  !include "${BUNDLE}.uninstall.nsh"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$DESKTOP\${APPNAME}.lnk"
  Delete "$SMPROGRAMS\${APPNAME}\${APPNAME}.lnk"
  Delete "$SMPROGRAMS\${APPNAME}\Uninstall ${APPNAME}.lnk"
  RMDir "$SMPROGRAMS\${APPNAME}"
  DeleteRegKey SHCTX "Software\Classes\${PROGID}"
  DeleteRegKey SHCTX "Software\Classes\Applications\${APPEXE}"
  !insertmacro UNASSOC ".jpg"
  !insertmacro UNASSOC ".jpeg"
  !insertmacro UNASSOC ".png"
  !insertmacro UNASSOC ".webp"
  !insertmacro UNASSOC ".tif"
  !insertmacro UNASSOC ".tiff"
  !insertmacro UNASSOC ".bmp"
  DeleteRegKey SHCTX "${UNINSTKEY}"
  DeleteRegKey SHCTX "${APPKEY}"
  System::Call 'shell32::SHChangeNotify(i 0x08000000, i 0, p 0, p 0)'
SectionEnd
