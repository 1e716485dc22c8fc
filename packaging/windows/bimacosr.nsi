; NSIS 3 script: the Windows installer of BiMaCoSR Upscaler (the one installer definition).
; Built by packaging/build_windows.sh with Debian's makensis:
;   makensis -INPUTCHARSET UTF8 -DVERSION=0.1.0 -DBUNDLE=build/win64/dist/bimacosr \
;            -DOUTFILE=dist/BiMaCoSR-Upscaler-0.1.0-win64-setup.exe -DROOT=. packaging/windows/bimacosr.nsi
; (on Windows the same with makensis.exe). BUNDLE is the PyInstaller one-folder bundle.
;
; - Two install modes, per-user the default (our own mode logic: NSIS's MultiUser.nsh cannot
;   start unelevated and elevate only for an all-users install):
;   - just for me (per-user, no administrator rights): %LOCALAPPDATA%\Programs\BiMaCoSR Upscaler,
;     Start menu, desktop and registry (HKCU) of the current user;
;   - for all users (needs administrator rights): %ProgramFiles%\BiMaCoSR Upscaler, the common
;     Start menu and desktop, registry under HKLM (SetShellVarContext all, SHCTX, 64-bit view).
;   The installer asks for no rights (RequestExecutionLevel user): a double-click never brings a
;   UAC prompt. The "Choose Users" page (after Welcome) preselects "Just for me", or the mode
;   already installed; "For all users" in an unelevated installer relaunches it elevated
;   (ExecShell "runas": the UAC prompt) with /AllUsers and the given /D=, /NODESKTOP, /NOASSOC,
;   and this instance quits; the elevated one skips Welcome and this page. Declined: a message,
;   and the page stays.
; - Start-menu shortcut; desktop shortcut (a component, selected by default).
; - File associations offered, not forced: a component ("Open with" for JPEG, PNG, WebP, TIFF
;   and BMP through a ProgID and OpenWithProgids); it never takes over the default program.
; - Uninstaller (Settings > Apps and the Start-menu folder): removes the mode it was installed
;   with (found by its own folder), exactly the files the installer wrote (list generated at
;   build time), the shortcuts and the registry entries; the user's settings, logs, queue and
;   upscaled photos stay. An all-users one started unelevated relaunches itself elevated
;   (runas, also with /S); if that is declined or fails it stops with exit code 740
;   (ERROR_ELEVATION_REQUIRED) and, without /S, a message.
; Command line: setup.exe [/S] [/CurrentUser | /AllUsers] [/NODESKTOP] [/NOASSOC] [/D=C:\path]
;   /S alone installs per-user without any prompt; /AllUsers (with or without /S) relaunches an
;   unelevated installer elevated, as the page does (the UAC prompt appears; an elevated caller,
;   e.g. a deployment tool, gets no prompt and no relaunch; the relaunching process exits with 0
;   at once, the elevated one installs); /CurrentUser forces per-user. uninstall.exe [/S].
;   Internal and test-only switches (installer and uninstaller): /RELAUNCHED marks the elevated
;   relaunch (if it is still unelevated: exit code 740, no second relaunch); /TESTASSTANDARDUSER
;   makes the process treat itself as unelevated even when it is an administrator (Wine runs as
;   one), so that the relaunch path can be tested; the relaunched process never gets it.

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

; the per-user folder: FOLDERID_UserProgramFiles (%LOCALAPPDATA%\Programs), as MultiUser.nsh
!define USERPROGRAMFILES "{5CD7AEE2-2219-4A67-B85D-6C9CE15660CB}"

; the installer and the uninstaller run with the caller's rights; all users relaunches elevated
RequestExecutionLevel user

Name "${APPNAME}"
OutFile "${OUTFILE}"
; no InstallDir: SetModeCurrentUser / SetModeAllUsers set $INSTDIR (a /D= folder is kept)
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
!include "LogicLib.nsh"
!include "nsDialogs.nsh"

!define MUI_ICON "${ROOT}\resources\icons\bimacosr.ico"
!define MUI_UNICON "${ROOT}\resources\icons\bimacosr.ico"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC
!define MUI_FINISHPAGE_RUN
!define MUI_FINISHPAGE_RUN_FUNCTION LaunchApp
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APPNAME}"

!define MUI_PAGE_CUSTOMFUNCTION_PRE SkipIfRelaunched
!insertmacro MUI_PAGE_WELCOME
Page custom ModePageCreate ModePageLeave
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

Var CmdLineInstDir  ; a folder given with /D= (empty without: no InstallDir)
Var UninstDir       ; the uninstaller's own folder: the installation it removes
Var AllUsers        ; 1: all-users mode (chosen or preselected), 0: per-user
Var ModeFixed       ; 1: /AllUsers or /CurrentUser (or the elevated relaunch) chose the mode
Var IsAdmin         ; 1: this process has administrator rights (elevated)
Var Relaunched      ; 1: this is the elevated relaunch (/RELAUNCHED)
Var NoDesktop       ; 1: /NODESKTOP given (passed on to the relaunch)
Var NoAssoc         ; 1: /NOASSOC given (passed on to the relaunch)
Var RadioMe
Var RadioAll

; $IsAdmin and $Relaunched from the account type and the command line ($R0: the parameters).
!macro READ_RIGHTS
  StrCpy $IsAdmin 0
  UserInfo::GetAccountType
  Pop $R1
  ${If} $R1 == "Admin"
    StrCpy $IsAdmin 1
  ${EndIf}
  ClearErrors
  ${GetOptions} $R0 "/TESTASSTANDARDUSER" $R1
  ${IfNot} ${Errors}
    StrCpy $IsAdmin 0  ; test-only: behave as a standard user (or an unelevated administrator)
  ${EndIf}
  StrCpy $Relaunched 0
  ClearErrors
  ${GetOptions} $R0 "/RELAUNCHED" $R1
  ${IfNot} ${Errors}
    StrCpy $Relaunched 1
  ${EndIf}
!macroend

Function SetModeCurrentUser
  StrCpy $AllUsers 0
  SetShellVarContext current  ; SHCTX = HKCU
  ReadRegStr $INSTDIR HKCU "${APPKEY}" "InstallDir"
  ${If} $INSTDIR == ""
    GetKnownFolderPath $INSTDIR ${USERPROGRAMFILES}
    ${If} $INSTDIR == ""
      StrCpy $INSTDIR "$LOCALAPPDATA\Programs"
    ${EndIf}
    StrCpy $INSTDIR "$INSTDIR\${APPNAME}"
  ${EndIf}
  ${If} $CmdLineInstDir != ""
    StrCpy $INSTDIR $CmdLineInstDir
  ${EndIf}
FunctionEnd

Function SetModeAllUsers
  StrCpy $AllUsers 1
  SetShellVarContext all  ; SHCTX = HKLM
  ReadRegStr $INSTDIR HKLM "${APPKEY}" "InstallDir"
  ${If} $INSTDIR == ""
    StrCpy $INSTDIR "$PROGRAMFILES64\${APPNAME}"
  ${EndIf}
  ${If} $CmdLineInstDir != ""
    StrCpy $INSTDIR $CmdLineInstDir
  ${EndIf}
FunctionEnd

; Start this installer again elevated (the UAC prompt), for all users, and quit. Returns with
; the error flag set when it could not be started (the prompt declined).
Function RelaunchElevated
  StrCpy $R9 "/AllUsers /RELAUNCHED"
  ${If} ${Silent}
    StrCpy $R9 "/S $R9"
  ${EndIf}
  ${If} $NoDesktop == 1
    StrCpy $R9 "$R9 /NODESKTOP"
  ${EndIf}
  ${If} $NoAssoc == 1
    StrCpy $R9 "$R9 /NOASSOC"
  ${EndIf}
  ${If} $CmdLineInstDir != ""
    StrCpy $R9 "$R9 /D=$CmdLineInstDir"  ; last and unquoted, as NSIS wants
  ${EndIf}
  ClearErrors
  ExecShell "runas" "$EXEPATH" "$R9"
  ${IfNot} ${Errors}
    SetErrorLevel 0  ; Quit alone exits with 2 ("aborted by the script")
    Quit
  ${EndIf}
FunctionEnd

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "${APPNAME} needs 64-bit Windows." /SD IDOK
    Abort
  ${EndIf}
  SetRegView 64  ; HKLM\Software, not WOW6432Node
  StrCpy $CmdLineInstDir $INSTDIR  ; empty without /D= (no InstallDir)
  ${GetParameters} $R0
  !insertmacro READ_RIGHTS
  StrCpy $NoDesktop 0
  ClearErrors
  ${GetOptions} $R0 "/NODESKTOP" $R1
  ${IfNot} ${Errors}
    StrCpy $NoDesktop 1
    !insertmacro UnselectSection ${SecDesktop}
  ${EndIf}
  StrCpy $NoAssoc 0
  ClearErrors
  ${GetOptions} $R0 "/NOASSOC" $R1
  ${IfNot} ${Errors}
    StrCpy $NoAssoc 1
    !insertmacro UnselectSection ${SecAssoc}
  ${EndIf}
  ; the mode: per-user, or the one already installed (per-user first), or the command line's
  StrCpy $AllUsers 0
  ReadRegStr $R1 HKCU "${APPKEY}" "InstallDir"
  ReadRegStr $R2 HKLM "${APPKEY}" "InstallDir"
  ${If} $R1 == ""
  ${AndIf} $R2 != ""
    StrCpy $AllUsers 1
  ${EndIf}
  StrCpy $ModeFixed 0
  ClearErrors
  ${GetOptions} $R0 "/CurrentUser" $R1
  ${IfNot} ${Errors}
    StrCpy $AllUsers 0
    StrCpy $ModeFixed 1
  ${Else}
    ClearErrors
    ${GetOptions} $R0 "/AllUsers" $R1
    ${IfNot} ${Errors}
      StrCpy $AllUsers 1
      StrCpy $ModeFixed 1
    ${EndIf}
  ${EndIf}
  ${If} ${Silent}
  ${AndIf} $ModeFixed == 0
    StrCpy $AllUsers 0  ; /S alone: per-user, never a prompt
  ${EndIf}
  ${If} $AllUsers == 1
  ${AndIf} $ModeFixed == 1
  ${AndIf} $IsAdmin == 0
    ${If} $Relaunched == 1
      ; the relaunch did not bring administrator rights: no second one
      MessageBox MB_ICONSTOP "Installing ${APPNAME} for all users needs administrator rights." /SD IDOK
      SetErrorLevel 740  ; ERROR_ELEVATION_REQUIRED
      Quit
    ${EndIf}
    Call RelaunchElevated  ; quits when the elevated installer was started
    ${If} ${Silent}
      SetErrorLevel 740
      Quit
    ${EndIf}
    MessageBox MB_ICONEXCLAMATION "Administrator rights were not granted, so ${APPNAME} cannot be installed for all users. Choose $\"Just for me$\", or try again."
    StrCpy $ModeFixed 0  ; show the page, "for all users" still selected
  ${EndIf}
  ${If} $AllUsers == 1
    Call SetModeAllUsers
  ${Else}
    Call SetModeCurrentUser
  ${EndIf}
FunctionEnd

; the elevated relaunch starts at the page after "Choose Users"
Function SkipIfRelaunched
  ${If} $Relaunched == 1
    Abort
  ${EndIf}
FunctionEnd

Function ModePageCreate
  ${If} $ModeFixed == 1
    Abort  ; chosen on the command line (or by the relaunch)
  ${EndIf}
  !insertmacro MUI_HEADER_TEXT "Choose Users" "Choose for which users you want to install ${APPNAME}."
  nsDialogs::Create 1018
  Pop $R0
  ${If} $R0 == error
    Abort
  ${EndIf}
  ${NSD_CreateLabel} 0 0 100% 24u "Install ${APPNAME} just for you, or for everyone who uses this computer."
  Pop $R0
  ${NSD_CreateRadioButton} 10u 32u -10u 12u "&Just for me (recommended)"
  Pop $RadioMe
  ${NSD_AddStyle} $RadioMe ${WS_GROUP}
  ${NSD_CreateLabel} 22u 45u -22u 12u "No administrator rights needed; only your account gets ${APPNAME}."
  Pop $R0
  ${NSD_CreateRadioButton} 10u 64u -10u 12u "For &all users of this computer (asks for administrator rights)"
  Pop $RadioAll
  ${NSD_CreateLabel} 22u 77u -22u 12u "Installs into Program Files; Windows asks for administrator rights."
  Pop $R0
  ${If} $AllUsers == 1
    ${NSD_Check} $RadioAll
  ${Else}
    ${NSD_Check} $RadioMe
  ${EndIf}
  nsDialogs::Show
FunctionEnd

Function ModePageLeave
  ${NSD_GetState} $RadioAll $R0
  ${If} $R0 == ${BST_CHECKED}
    ${If} $IsAdmin == 0
      Call RelaunchElevated  ; quits when the elevated installer was started
      MessageBox MB_ICONEXCLAMATION "Administrator rights were not granted, so ${APPNAME} cannot be installed for all users. Choose $\"Just for me$\", or try again."
      Abort  ; stay on the page
    ${EndIf}
    Call SetModeAllUsers
  ${Else}
    Call SetModeCurrentUser
  ${EndIf}
FunctionEnd

Function un.onInit
  SetRegView 64
  StrCpy $UninstDir $INSTDIR  ; from _?=: this uninstaller's folder
  ${GetParameters} $R0
  !insertmacro READ_RIGHTS
  SetShellVarContext current
  ; The mode is the one whose recorded folder is this uninstaller's (both may be installed).
  ReadRegStr $R1 HKCU "${APPKEY}" "InstallDir"
  ReadRegStr $R2 HKLM "${APPKEY}" "InstallDir"
  ${If} $R1 != $UninstDir
  ${AndIf} $R2 == $UninstDir
    ${If} $IsAdmin == 0
      ${If} $Relaunched == 0
        ; start the uninstaller again elevated (the UAC prompt), and quit
        StrCpy $R9 "/RELAUNCHED"
        ${If} ${Silent}
          StrCpy $R9 "/S $R9"
        ${EndIf}
        ClearErrors
        ExecShell "runas" "$UninstDir\uninstall.exe" "$R9"
        ${IfNot} ${Errors}
          SetErrorLevel 0
          Quit
        ${EndIf}
      ${EndIf}
      MessageBox MB_ICONSTOP "${APPNAME} was installed for all users: uninstalling it needs administrator rights, which were not granted." /SD IDOK
      SetErrorLevel 740  ; ERROR_ELEVATION_REQUIRED
      Quit
    ${EndIf}
    SetShellVarContext all  ; SHCTX = HKLM
  ${EndIf}
FunctionEnd

; The finish page's "Start": through Explorer, so the app runs with the user's normal rights
; (the all-users installer runs elevated; an elevated window takes no drops from Explorer).
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
