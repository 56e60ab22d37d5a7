#!/usr/bin/env bash
# Failure handling: one rank of 4 hits a corrupt sample at step 2; the job must exit non-zero with a message naming
# the rank, and every rank must be gone within seconds (no rank left waiting in a collective).
set -uo pipefail
if ! command -v mpirun >/dev/null 2>&1; then echo "SKIP: mpirun not found"; exit 77; fi
D=${DIST_DRIVER:-${VOX_BUILD_DIR:-.}/tests/dist_driver}
[ -x "$D" ] || { echo "FAIL: test driver $D not built"; exit 1; }
export VOX_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
# Run the driver under a name of this test's own, so that the check for leftover ranks below cannot see the ranks of
# another MPI test running at the same time.
ln -s "$(readlink -f "$D")" "$W/dist_driver_failure"
D="$W/dist_driver_failure"
t0=$(date +%s.%N)
timeout 60 mpirun --allow-run-as-root --oversubscribe --bind-to none -np 4 "$D" --steps 50 --fail-rank 2 --fail-step 2 \
  >"$W/out.log" 2>&1
rc=$?
t1=$(date +%s.%N)
cat "$W/out.log"
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "mpi_failure: exit code $rc after ${secs}s"
[ "$rc" -ne 0 ] || { echo "FAIL: the job succeeded despite the failure"; exit 1; }
[ "$rc" -ne 124 ] || { echo "FAIL: the job hung (killed by timeout)"; exit 1; }
grep -q 'rank 2 of 4 failed' "$W/out.log" || { echo "FAIL: no message naming the failing rank"; exit 1; }
grep -q 'corrupt sample in step 2' "$W/out.log" || { echo "FAIL: the error itself was not reported"; exit 1; }
awk -v s="$secs" 'BEGIN { exit !(s < 15) }' || { echo "FAIL: took ${secs}s (> 15s) to exit"; exit 1; }
if pgrep -f "$D" >/dev/null; then echo "FAIL: driver processes still running"; exit 1; fi
echo "mpi_failure: OK"
