#!/usr/bin/env bash
# Runs the CUDA op test programs under compute-sanitizer (memcheck: out-of-bounds and misaligned device accesses,
# leaks of device allocations); exits 77 (skipped) where there is no GPU or no compute-sanitizer.
set -u
BUILD="${VOX_BUILD_DIR:-$(pwd)}"
SAN="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if [ ! -x "$SAN" ]; then echo "sanitize: compute-sanitizer not found; skipped"; exit 77; fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "sanitize: no usable NVIDIA GPU on this machine; skipped"
  exit 77
fi
status=0
ran=0
for t in "$BUILD"/tests/test_cuda_ops "$BUILD"/tests/test_cuda_ops_nn; do
  [ -x "$t" ] || { echo "sanitize: $t was not built"; status=1; continue; }
  echo "== compute-sanitizer --tool memcheck $(basename "$t")"
  "$SAN" --tool memcheck --leak-check full --error-exitcode 3 --target-processes all "$t" --jobs 1
  rc=$?
  if [ $rc -eq 77 ]; then echo "sanitize: $(basename "$t") found no device; skipped"; continue; fi
  ran=1
  [ $rc -eq 0 ] || { echo "sanitize: $(basename "$t") failed (exit $rc)"; status=1; }
done
[ $ran -eq 1 ] || [ $status -ne 0 ] || exit 77
exit $status
