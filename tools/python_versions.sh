#!/usr/bin/env bash
# Installs fastnn (CPU module only) and runs its test suite under each given Python, in a fresh
# virtual environment per interpreter, then prints one line per version. Needs the package registry
# (pip installs numpy, tqdm, pytest for each). PyTorch is not installed: its cross-checks skip.
#
#   bash tools/python_versions.sh /root/.pyenv/versions/3.9.18/bin/python3 python3.13 ...
#
# The results of the last run are in benchmarks/results/python-versions-*.txt.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results=()
for python in "$@"; do
    version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') || {
        results+=("$python: cannot run"); continue; }
    venv="$work/venv-$version"
    start=$SECONDS
    if ! "$python" -m venv "$venv" || ! FASTNN_CUDA=OFF "$venv/bin/pip" install -q "$repo[test]" >"$work/install-$version.log" 2>&1; then
        results+=("Python $version: install failed ($(tail -1 "$work/install-$version.log"))")
        continue
    fi
    # From the repository root, as README says: pytest imports the installed package.
    summary=$(cd "$repo" && "$venv/bin/pytest" -q -p no:cacheprovider 2>&1 | tail -1)
    numpy=$("$venv/bin/python" -c 'import numpy; print(numpy.__version__)')
    results+=("Python $version (numpy $numpy): $summary [$((SECONDS - start)) s with the build]")
done
printf '%s\n' "${results[@]}"
