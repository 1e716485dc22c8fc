# Build the Windows release into dist\: the PyInstaller bundle dist\bimacosr\ and the per-user
# installer dist\BiMaCoSR_Upscaler-<version>-win64-setup.exe (Inno Setup 6).
# Run from any folder with the Python that has `pip install -e .[package]` done:
#   powershell -ExecutionPolicy Bypass -File packaging\build_windows.ps1
# Then test:  python packaging\smoke_test.py dist\bimacosr
$ErrorActionPreference = "Stop"
Set-Location (Split-Path -Parent $PSScriptRoot)
$python = if ($env:PYTHON) { $env:PYTHON } else { "python" }

& $python -m PyInstaller --noconfirm --distpath dist --workpath build\pyinstaller packaging\bimacosr.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed ($LASTEXITCODE)" }

$version = (& $python -c "import bimacosr_app; print(bimacosr_app.__version__)").Trim()
$iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $iscc) { $iscc = Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe" }
if (-not (Test-Path $iscc)) { throw "Inno Setup 6 (ISCC.exe) not found: choco install innosetup" }
& $iscc "/DAppVersion=$version" packaging\windows\bimacosr.iss
if ($LASTEXITCODE -ne 0) { throw "ISCC failed ($LASTEXITCODE)" }
Get-ChildItem dist\*.exe | Format-Table Name, Length
