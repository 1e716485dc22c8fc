# Build the Windows release natively on Windows (CI: windows-2022, where NSIS is preinstalled):
# the PyInstaller bundle dist\bimacosr\ and the NSIS installer
# dist\BiMaCoSR-Upscaler-<version>-win64-setup.exe (per-user by default, all users with /AllUsers
# or its "Choose Users" page), from the same installer definition (packaging\windows\bimacosr.nsi)
# and the same makensis defines as packaging/build_windows.sh, which builds it on Linux under
# Wine. Run from any folder with the Python that has `pip install -e .[package]` done:
#   powershell -ExecutionPolicy Bypass -File packaging\build_windows.ps1
# Then test:  python packaging\smoke_test.py dist\bimacosr
$ErrorActionPreference = "Stop"
Set-Location (Split-Path -Parent $PSScriptRoot)
$python = if ($env:PYTHON) { $env:PYTHON } else { "python" }

& $python -m PyInstaller --noconfirm --distpath dist --workpath build\pyinstaller packaging\bimacosr.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed ($LASTEXITCODE)" }

$version = (& $python -c "import bimacosr_app; print(bimacosr_app.__version__)").Trim()
$bundle = (Resolve-Path dist\bimacosr).Path
# The uninstaller deletes exactly the bundle's files, then its folders (deepest first).
$files = Get-ChildItem -Recurse -File $bundle | ForEach-Object {
    '  Delete "$INSTDIR\' + $_.FullName.Substring($bundle.Length + 1).Replace('$', '$$') + '"' }
$dirs = Get-ChildItem -Recurse -Directory $bundle | Sort-Object { $_.FullName.Length } -Descending |
    ForEach-Object { '  RMDir "$INSTDIR\' + $_.FullName.Substring($bundle.Length + 1).Replace('$', '$$') + '"' }
Set-Content -Encoding UTF8 -Path "$bundle.uninstall.nsh" -Value (@($files) + @($dirs))

$makensis = (Get-Command makensis.exe -ErrorAction SilentlyContinue).Source
if (-not $makensis) { $makensis = Join-Path ${env:ProgramFiles(x86)} "NSIS\makensis.exe" }
if (-not (Test-Path $makensis)) { throw "NSIS (makensis.exe) not found: choco install nsis" }
$root = (Get-Location).Path
& $makensis -INPUTCHARSET UTF8 "-DVERSION=$version" "-DBUNDLE=$bundle" "-DROOT=$root" `
    "-DOUTFILE=$root\dist\BiMaCoSR-Upscaler-$version-win64-setup.exe" packaging\windows\bimacosr.nsi
if ($LASTEXITCODE -ne 0) { throw "makensis failed ($LASTEXITCODE)" }
Get-ChildItem dist\*.exe | Format-Table Name, Length
