#!/usr/bin/env bash
# Runs the unit test programs named on the command line under valgrind memcheck (tests/CMakeLists.txt registers two
# halves): any invalid access, use of uninitialised memory or definitely-lost block fails the test. (Criterion
# reports its result before valgrind's leak check, so the verdict comes from valgrind's own output.)
set -u
build="${VOX_BUILD_DIR:?}"
command -v valgrind >/dev/null || { echo "valgrind is not installed (bash .ci/setup.sh installs it)"; exit 1; }
export VOX_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 VOX_CPU_CACHE_MB=0  # no block reuse: every free is checked
status=0
[ $# -gt 0 ] || { echo "usage: memcheck.sh TEST_PROGRAM..."; exit 2; }
for t in "$@"; do
  bin="$build/tests/$t"
  [ -x "$bin" ] || { echo "memcheck: $t is missing"; status=1; continue; }
  log=$(mktemp)
  valgrind -q --trace-children=yes --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite "$bin" --jobs 1 >"$log" 2>&1
  if grep -qE '^==[0-9]+== ' "$log" || ! grep -q 'Failing: 0 | Crashing: 0' "$log"; then
    echo "memcheck: $t FAILED"; grep -E '^==[0-9]+== |Synthesis|FAIL' "$log" | head -40; status=1
  else
    echo "memcheck: $t clean ($(grep -o 'Tested: [0-9]*' "$log"))"
  fi
  rm -f "$log"
done
exit $status
