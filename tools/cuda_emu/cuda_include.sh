# Sourced by build.sh and ../fake_cupy/run.sh: sets cuda_inc to a folder holding cuda_runtime.h
# ($CUDA_HOME, else the toolkit next to nvcc, else /usr/local/cuda), or exits with a message.
cuda_home="${CUDA_HOME:-${CUDA_PATH:-}}"
if [[ -z "$cuda_home" ]] && command -v nvcc >/dev/null 2>&1; then
    cuda_home="$(cd "$(dirname "$(readlink -f "$(command -v nvcc)")")/.." && pwd)"
fi
cuda_inc="${cuda_home:-/usr/local/cuda}/include"
[[ -f "$cuda_inc/cuda_runtime.h" ]] || cuda_inc=/usr/local/cuda/include
if [[ ! -f "$cuda_inc/cuda_runtime.h" ]]; then
    echo "no cuda_runtime.h under $cuda_inc; set CUDA_HOME to a CUDA toolkit" >&2
    exit 1
fi
