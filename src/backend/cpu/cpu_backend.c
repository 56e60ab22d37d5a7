/* The CPU backend: 64-byte aligned host allocations and plain memcpy transfers. Its kernels live in the
 * other files of this folder and register themselves with VOX_REGISTER_KERNEL. */
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"

static vox_status cpu_alloc(size_t nbytes, void **ptr) {
  size_t rounded = (nbytes + 63) & ~(size_t)63;
  *ptr = aligned_alloc(64, rounded);
  return *ptr ? VOX_OK : vox_errorf(VOX_ERR_NOMEM, "cpu: cannot allocate %zu bytes", nbytes);
}
static void cpu_free(void *ptr, size_t nbytes) { free(ptr); }
static vox_status cpu_copy(void *dst, const void *src, size_t nbytes) {
  memcpy(dst, src, nbytes);
  return VOX_OK;
}
static vox_status cpu_synchronize(void) { return VOX_OK; }

__attribute__((constructor(101))) static void cpu_backend_init(void) {
  vox_backend *be = vox_backend_table(VOX_CPU);
  be->available = true;
  be->alloc = cpu_alloc;
  be->free = cpu_free;
  be->copy_to_host = cpu_copy;
  be->copy_from_host = cpu_copy;
  be->synchronize = cpu_synchronize;
}
