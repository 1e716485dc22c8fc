; NSIS 3 script: the Windows installer of BiMaCoSR Upscaler (the one installer definition).
; Built by packaging/build_windows.sh with Debian's makensis:
;   makensis -INPUTCHARSET UTF8 -DVERSION=0.1.0 -DBUNDLE=build/win64/dist/bimacosr \
;            -DOUTFILE=dist/BiMaCoSR-Upscaler-0.1.0-win64-setup.exe -DROOT=. packaging/windows/bimacosr.nsi
; (on Windows the same with makensis.exe). BUNDLE is the PyInstaller one-folder bundle.
;
; - Per-user install, no administrator rights: %LOCALAPPDATA%\Programs\BiMaCoSR Upscaler,
;   registry under HKCU only (RequestExecutionLevel user).
; - Start-menu shortcut; desktop shortcut (a component, selected by default).
; - File associations offered, not forced: a component ("Open with" for JPEG, PNG, WebP, TIFF
;   and BMP through a ProgID and OpenWithProgids); it never takes over the default program.
; - Uninstaller (Settings > Apps and the Start-menu folder): removes exactly the files the
;   installer wrote (list generated at build time), the shortcuts and the registry entries;
;   the user's settings, logs, queue and upscaled photos stay.
; Silent install: setup.exe /S [/D=C:\path]; silent uninstall: uninstall.exe /S.
; Components from the command line: /NODESKTOP, /NOASSOC (with or without /S).

Unicode true
SetCompressor /SOLID lzma
SetCompressorDictSize 64
ManifestDPIAware true
RequestExecutionLevel user

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

Name "${APPNAME}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\${APPNAME}"
InstallDirRegKey HKCU "${APPKEY}" "InstallDir"
BrandingText "${APPNAME} ${VERSION}"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APPNAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APPNAME} setup"
VIAddVersionKey "LegalCopyright" "MIT License"

!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "x64.nsh"
!include "Sections.nsh"

!define MUI_ICON "${ROOT}\resources\icons\bimacosr.ico"
!define MUI_UNICON "${ROOT}\resources\icons\bimacosr.ico"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC
!define MUI_FINISHPAGE_RUN "$INSTDIR\${APPEXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APPNAME}"

!insertmacro MUI_PAGE_WELCOME
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
  WriteRegStr HKCU "${APPKEY}" "InstallDir" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayName" "${APPNAME}"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTKEY}" "Publisher" "${APPNAME}"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayIcon" "$INSTDIR\${APPEXE},0"
  WriteRegStr HKCU "${UNINSTKEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTKEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTKEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTKEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTKEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKCU "${UNINSTKEY}" "EstimatedSize" $0
SectionEnd

Section "Desktop shortcut" SecDesktop
  CreateShortcut "$DESKTOP\${APPNAME}.lnk" "$INSTDIR\${APPEXE}" "" "$INSTDIR\${APPEXE}" 0
SectionEnd

!macro ASSOC EXT
  WriteRegStr HKCU "Software\Classes\${EXT}\OpenWithProgids" "${PROGID}" ""
  WriteRegStr HKCU "Software\Classes\Applications\${APPEXE}\SupportedTypes" "${EXT}" ""
!macroend
!macro UNASSOC EXT
  DeleteRegValue HKCU "Software\Classes\${EXT}\OpenWithProgids" "${PROGID}"
  DeleteRegKey /ifempty HKCU "Software\Classes\${EXT}\OpenWithProgids"
  DeleteRegKey /ifempty HKCU "Software\Classes\${EXT}"
!macroend

Section "Offer ${APPNAME} in $\"Open with$\" for JPEG, PNG, WebP, TIFF and BMP" SecAssoc
  WriteRegStr HKCU "Software\Classes\${PROGID}" "" "Image to upscale"
  WriteRegStr HKCU "Software\Classes\${PROGID}\DefaultIcon" "" "$INSTDIR\${APPEXE},0"
  WriteRegStr HKCU "Software\Classes\${PROGID}\shell\open\command" "" '"$INSTDIR\${APPEXE}" "%1"'
  WriteRegStr HKCU "Software\Classes\Applications\${APPEXE}" "FriendlyAppName" "${APPNAME}"
  WriteRegStr HKCU "Software\Classes\Applications\${APPEXE}\shell\open\command" "" '"$INSTDIR\${APPEXE}" "%1"'
  !insertmacro ASSOC ".jpg"
  !insertmacro ASSOC ".jpeg"
  !insertmacro ASSOC ".png"
  !insertmacro ASSOC ".webp"
  !insertmacro ASSOC ".tif"
  !insertmacro ASSOC ".tiff"
  !insertmacro ASSOC ".bmp"
  WriteRegDWORD HKCU "${APPKEY}" "Associations" 1
  ; tell Explorer (SHChangeNotify SHCNE_ASSOCCHANGED)
  System::Call 'shell32::SHChangeNotify(i 0x08000000, i 0, p 0, p 0)'
SectionEnd

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "${APPNAME} needs 64-bit Windows." /SD IDOK
    Abort
  ${EndIf}
  SetRegView 64
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

Section "Uninstall"
  ; files and folders of the bundle, generated by build_windows.sh (deepest first)
  !include "${BUNDLE}.uninstall.nsh"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$DESKTOP\${APPNAME}.lnk"
  Delete "$SMPROGRAMS\${APPNAME}\${APPNAME}.lnk"
  Delete "$SMPROGRAMS\${APPNAME}\Uninstall ${APPNAME}.lnk"
  RMDir "$SMPROGRAMS\${APPNAME}"
  DeleteRegKey HKCU "Software\Classes\${PROGID}"
  DeleteRegKey HKCU "Software\Classes\Applications\${APPEXE}"
  !insertmacro UNASSOC ".jpg"
  !insertmacro UNASSOC ".jpeg"
  !insertmacro UNASSOC ".png"
  !insertmacro UNASSOC ".webp"
  !insertmacro UNASSOC ".tif"
  !insertmacro UNASSOC ".tiff"
  !insertmacro UNASSOC ".bmp"
  DeleteRegKey HKCU "${UNINSTKEY}"
  DeleteRegKey HKCU "${APPKEY}"
  System::Call 'shell32::SHChangeNotify(i 0x08000000, i 0, p 0, p 0)'
SectionEnd
