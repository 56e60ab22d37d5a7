/* Criterion's own main for a CUDA test program, plus exit 77 (ctest SKIP_RETURN_CODE) when no CUDA device is
 * present, so `ctest -L cuda` shows the program as skipped rather than passed. Include once, in the program's file. */
#ifndef VOX_TESTS_CUDA_SKIP_MAIN_H
#define VOX_TESTS_CUDA_SKIP_MAIN_H
#include <criterion/criterion.h>

#include "core/backend.h"

int main(int argc, char *argv[]) {
  struct criterion_test_set *tests = criterion_initialize();
  int result = 0;
  if (criterion_handle_args(argc, argv, true)) result = !criterion_run_all_tests(tests);
  criterion_finalize(tests);
  /* probed only after the forked test workers finished: a CUDA context must not exist before fork */
  if (result == 0 && !vox_backend_get(VOX_CUDA)->available) return 77;
  return result;
}
#endif
