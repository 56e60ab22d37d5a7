/* Version and build description, from definitions the build system passes in.
 * Backends are reported from the live registry so "compiled in" and "usable here" can both be seen. */
#include "core/version.h"

#include <cblas.h>
#include <stdio.h>
#include <string.h>

#include "core/backend.h"

const char *vox_version(void) { return VOX_VERSION; }
const char *vox_build_type(void) { return VOX_BUILD_TYPE; }

const char *vox_build_backends(void) {
  static char buf[512];
  /* Which OpenBLAS threading the process loaded decides CPU speed (see CMakeLists.txt), so it is shown. */
  int par = openblas_get_parallel();
  size_t n = (size_t)snprintf(buf, sizeof buf, "cpu (%s, %s threads)", openblas_get_config(),
                              par == 2 ? "OpenMP" : par == 1 ? "pthread" : "no");
#ifdef VOX_HAVE_CUDA
  n += (size_t)snprintf(buf + n, sizeof buf - n, " cuda%s",
                        vox_backend_get(VOX_CUDA)->available ? "" : " (compiled in; no usable device here)");
#endif
  (void)n;
  return buf;
}
