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
units=(conv2d pool batch_norm lstm softmax_xent gemm)

# CUDA headers: $CUDA_HOME, else next to nvcc, else /usr/local/cuda.
source "$here/cuda_include.sh"

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
