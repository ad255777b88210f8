#!/usr/bin/env bash
# Builds the CUDA host emulator library from the repository's current cuda/*.cu sources.
#
#   bash tools/cuda_emu/build.sh            -> tools/cuda_emu/build/libemu.so
#   SANITIZE=address bash tools/cuda_emu/build.sh -> tools/cuda_emu/build/libemu_asan.so
#
# Needs g++ (C++20, for <barrier>) and the CUDA runtime *headers* (cuda_runtime.h; no GPU, no nvcc
# run). Everything it writes goes under tools/cuda_emu/build/ (git-ignored): the transformed
# copies of the kernel sources (kernel<<<grid, block, smem, stream>>>(args) rewritten into
# emulate_launch(...) calls) and the shared library that check.py loads.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
src="$repo/cuda"
out="${EMU_BUILD_DIR:-$here/build}"
units=(conv2d pool batch_norm lstm softmax_xent)

# CUDA headers: $CUDA_HOME, else next to nvcc, else /usr/local/cuda.
cuda_home="${CUDA_HOME:-${CUDA_PATH:-}}"
if [[ -z "$cuda_home" ]] && command -v nvcc >/dev/null 2>&1; then
    cuda_home="$(cd "$(dirname "$(readlink -f "$(command -v nvcc)")")/.." && pwd)"
fi
cuda_inc="${cuda_home:-/usr/local/cuda}/include"
[[ -f "$cuda_inc/cuda_runtime.h" ]] || cuda_inc=/usr/local/cuda/include
if [[ ! -f "$cuda_inc/cuda_runtime.h" ]]; then
    echo "build.sh: no cuda_runtime.h under $cuda_inc; set CUDA_HOME to a CUDA toolkit" >&2
    exit 1
fi

flags=(-std=c++20 -O1 -g -fPIC -shared -pthread -Wno-attributes -Wno-subobject-linkage)
lib="$out/libemu.so"
if [[ -n "${SANITIZE:-}" ]]; then
    flags+=("-fsanitize=$SANITIZE" -fno-omit-frame-pointer)
    lib="$out/libemu_${SANITIZE//,/_}.so"
fi

mkdir -p "$out/src"
for u in "${units[@]}"; do
    python3 "$here/transform.py" "$src/$u.cu" "$out/src/$u.cpp"
done
cpps=()
for u in "${units[@]}"; do cpps+=("$out/src/$u.cpp"); done
${CXX:-g++} "${flags[@]}" ${CXXFLAGS:-} -I"$here" -I"$src" -I"$cuda_inc" \
    "${cpps[@]}" "$here/api.cpp" "$here/runtime.cpp" -o "$lib"
echo "built $lib"
