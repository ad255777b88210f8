#!/usr/bin/env bash
# Runs fastnn's GPU code paths on the CPU: the CUDA kernels under host emulation (tools/cuda_emu),
# bound by the real cuda/module.cpp as fastnn._cuda, with a NumPy-backed fake CuPy (this folder).
#
#   bash tools/fake_cupy/run.sh              # the cuda-marked tests (pytest -m cuda): ~3 min on 2 cores
#   bash tools/fake_cupy/run.sh CMD ARGS...  # any command, e.g.
#   bash tools/fake_cupy/run.sh python -m fastnn train lenet5 --device cuda --limit-train 256 --limit-eval 128
#   bash tools/fake_cupy/run.sh python tools/fake_cupy/diff_fuzz.py 1 300   # CPU vs GPU differential fuzz
#
# It tests the installed fastnn (pip install . from this checkout first): its Python files and _C,
# with its _cuda replaced by the emulated one, copied under tools/fake_cupy/build/ (git-ignored).
# Needs g++ (C++20), pybind11 and the CUDA runtime headers (as tools/cuda_emu/build.sh); no GPU.
# See README.md for what this can and cannot show.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$here/build"
python="${PYTHON:-python3}"

bash "$repo/tools/cuda_emu/build.sh" >/dev/null  # transformed kernel sources in tools/cuda_emu/build/src
emu_src="$repo/tools/cuda_emu/build/src"

# The installed package, outside the checkout (whose fastnn/ has no _C).
installed="$(cd / && "$python" -c 'import fastnn, os; print(os.path.dirname(fastnn.__file__))')"
if ! diff -rq --exclude='*.so' --exclude=__pycache__ "$repo/fastnn" "$installed" >/dev/null; then
    echo "run.sh: warning: the installed fastnn ($installed) differs from this checkout's fastnn/;" \
         "run pip install . to test the checkout" >&2
fi
rm -rf "$out/site"
mkdir -p "$out/site"
cp -r "$installed" "$out/site/fastnn"
rm -f "$out/site/fastnn"/_cuda*.so

read -r py_inc pybind_inc ext < <("$python" -c 'import sysconfig, pybind11
print(sysconfig.get_paths()["include"], pybind11.get_include(), sysconfig.get_config_var("EXT_SUFFIX"))')
source "$repo/tools/cuda_emu/cuda_include.sh"
${CXX:-g++} -std=c++20 -O1 -fPIC -shared -pthread -Wno-attributes -Wno-subobject-linkage \
    -I"$repo/tools/cuda_emu" -I"$repo/cuda" -I"$cuda_inc" -I"$py_inc" -I"$pybind_inc" \
    -include "$repo/tools/cuda_emu/emu.h" \
    "$emu_src"/*.cpp "$repo/cuda/module.cpp" "$repo/tools/cuda_emu/runtime.cpp" \
    -o "$out/site/fastnn/_cuda$ext"

export PYTHONPATH="$out/site:$here${PYTHONPATH:+:$PYTHONPATH}"
export FAKE_CUPY_CACHE="$out/kernels"
if [[ $# -eq 0 ]]; then
    set -- "$python" -m pytest "$repo/tests" -m cuda -p no:cacheprovider -q -rs
fi
# Python must not put the current folder first on sys.path (python -m / -c do), or the checkout's
# fastnn/ (without _C) would shadow the copy with the emulated _cuda: PYTHONSAFEPATH (3.11+).
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { echo "run.sh: needs Python 3.11 or newer (PYTHONSAFEPATH)" >&2; exit 1; }
export PYTHONSAFEPATH=1
exec "$@"
