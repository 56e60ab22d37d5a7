#!/usr/bin/env bash
# Runs tests/cuda/test_cuda_matmul.c without a GPU: cuda_blas.c is compiled against an emulated cuBLASLt
# (tests/cuda/emu_blas) whose "device" is host memory, so its layout, transpose and batching logic is checked.
set -euo pipefail
src="${VOX_SOURCE_DIR:?VOX_SOURCE_DIR not set}"
build="${VOX_BUILD_DIR:?VOX_BUILD_DIR not set}"
emu="$src/tests/cuda/emu_blas"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The emulation headers come first so that cuda_blas.c sees them instead of the toolkit's.
${CC:-cc} -std=gnu17 -O1 -w -I"$emu" -I"$src/src" -I"$src/tests/support" $(pkg-config --cflags criterion) \
  "$emu/harness.c" "$src/tests/cuda/test_cuda_matmul.c" -o "$work/matmul_emulated" \
  "$build/tests/libvox_test_support.a" -L"$build" -lvox $(pkg-config --libs criterion) -lm -Wl,-rpath,"$build"
"$work/matmul_emulated" --jobs 1
