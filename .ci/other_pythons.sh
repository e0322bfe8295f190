#!/usr/bin/env bash
# The torch-free tests (module load-time rule, Python 3.9 syntax, terminology, ...) under the Pythons that
# Slicer bundles: 3.9 (Slicer 5.8) and 3.12 (5.10 and later). torch is not installed there (it would be a
# several-GB CUDA build); the engine's torch code runs under the default interpreter (`make test`).
# Each environment is cached outside the checkout; a missing interpreter is reported and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/dcaseg-ci"
deps=(pytest numpy SimpleITK psutil)
status=0
for version in 3.9 3.12; do
    python=""
    for candidate in $(ls -d "$HOME"/.pyenv/versions/"$version".*/bin/python 2>/dev/null | sort -rV) \
                     $(command -v "python$version" || true); do
        if "$candidate" -c "import venv" 2>/dev/null; then python=$candidate; break; fi
    done
    if [ -z "$python" ]; then
        echo "Python $version: skipped (no python$version interpreter on this machine)"
        continue
    fi
    venv="$cache/venv-py$version"
    if [ ! -f "$venv/.ready" ]; then
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/pip" install -q --upgrade pip
        "$venv/bin/pip" install -q "${deps[@]}"
        "$venv/bin/pip" install -q slicer-core 2>/dev/null || echo "Python $version: no slicer-core wheel; the load test uses stand-ins for slicer and vtk"
        touch "$venv/.ready"
    fi
    echo "Python $version ($("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')): torch-free tests"
    PYTHONUTF8=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider Testing || status=1
done
exit $status
