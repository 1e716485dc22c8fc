# Shared by scripts/bimacosr and scripts/test: create or refresh the project's .venv.
# Usage: extras=dev; . scripts/_venv.sh   (extras: "" or "dev"); sets $ROOT and $VENV_PY.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"

pick_python() {
    for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11 python3.10; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "BiMaCoSR Upscaler needs Python 3.10 or newer (set PYTHON=/path/to/python3)." >&2
    return 1
}

extras=${extras:-}
if [ ! -x "$VENV/bin/python" ]; then
    py=$(pick_python)
    echo "Creating $VENV with $py ..." >&2
    "$py" -m venv "$VENV"
fi
VENV_PY="$VENV/bin/python"

# Reinstall when the project definition or the C++ kernels changed since the last install.
stamp="$VENV/.bimacosr-installed-$extras"
fingerprint=$( (cat "$ROOT/pyproject.toml"; find "$ROOT/kernels" -type f -print0 | LC_ALL=C sort -z | xargs -0 cat) 2>/dev/null | cksum)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$fingerprint" ]; then
    spec="$ROOT"
    [ -n "$extras" ] && spec="$ROOT[$extras]"
    echo "Installing BiMaCoSR Upscaler${extras:+ with [$extras]} into $VENV ..." >&2
    "$VENV_PY" -m pip install --disable-pip-version-check -q --upgrade pip >&2
    "$VENV_PY" -m pip install --disable-pip-version-check -q -e "$spec" >&2
    echo "$fingerprint" > "$stamp"
fi
