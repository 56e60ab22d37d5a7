#!/usr/bin/env bash
# Runs the CUDA attention kernels' own source on the CPU: kernels/flash_attn_{fwd,bwd,ref}.cu are compiled as C++
# against host shims (tests/cuda/emu: threads, warps, ldmatrix, mma.sync) and checked against a double reference.
set -euo pipefail
src="${VOX_SOURCE_DIR:?VOX_SOURCE_DIR not set}"
emu="$src/tests/cuda/emu"
cxx="${CXX:-g++}"
if ! command -v "$cxx" > /dev/null || ! echo '#include <barrier>' | "$cxx" -std=c++20 -x c++ -fsyntax-only - 2> /dev/null; then
  echo "cuda_attention_emulated: no C++20 compiler with <barrier>; skipped"
  exit 77
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$src/kernels/flash_attn.h" "$src/kernels/flash_attn_common.cuh" "$work/"
# The inline-assembly block of flash_attn_mma.cuh (fa_smem_addr .. fa_mma) is replaced by the emulated versions.
awk '/^__device__ __forceinline__ uint32_t fa_smem_addr/ { print "#include \"mma_emulated.h\""; skip = 1 }
     /^__device__ __forceinline__ uint32_t fa_pack_bf16/ { skip = 0 }
     !skip' "$src/kernels/flash_attn_mma.cuh" > "$work/flash_attn_mma.cuh"
grep -q mma_emulated.h "$work/flash_attn_mma.cuh" || { echo "flash_attn_mma.cuh: assembly block markers not found"; exit 1; }
# Kernel bodies only (the launchers use the real runtime); dynamic shared memory comes from the emulator.
cut_at() { # file marker out
  awk -v m="$2" 'index($0, m) == 1 { exit } { print }' "$src/kernels/$1" |
    sed -e 's|extern __shared__ __align__(16) unsigned char fa_smem\[\];|unsigned char *fa_smem = emu_smem_ptr;|' \
        -e 's|extern __shared__ float sm\[\];|float *sm = (float *)emu_smem_ptr;|' > "$work/$3"
  grep -q emu_smem_ptr "$work/$3" || { echo "$1: shared-memory declaration not found"; exit 1; }
}
cut_at flash_attn_fwd.cu "static bool aligned16" fwd.inc
cut_at flash_attn_bwd.cu "template <int D> static int tc_backward" bwd.inc
cut_at flash_attn_ref.cu "/* ---- launchers" ref.inc
"$cxx" -std=c++20 -O2 -pthread -w -I"$emu" -I"$work" "$emu/attention_emulated.cpp" -o "$work/attention_emulated"
"$work/attention_emulated"
