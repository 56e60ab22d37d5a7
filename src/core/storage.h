/* vox_storage: a ref-counted block of device memory owned by the allocator of its device's backend.
 * Live and peak byte counters per device let tests prove that training does not leak. */
#ifndef VOX_CORE_STORAGE_H
#define VOX_CORE_STORAGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/status.h"

typedef struct vox_storage {
  vox_device device;
  size_t nbytes;
  void *data;
  atomic_int refcount;
} vox_storage;

/* New storage of `nbytes` (contents uninitialised), refcount 1. */
vox_status vox_storage_new(vox_device device, size_t nbytes, vox_storage **out);
vox_storage *vox_storage_retain(vox_storage *s);
void vox_storage_release(vox_storage *s);

/* Bytes currently held by tensors on `device`, and the high-water mark since the last reset. */
size_t vox_memory_live_bytes(vox_device device);
size_t vox_memory_peak_bytes(vox_device device);
void vox_memory_reset_peak(vox_device device);
/* Called by backends' allocators; not for general use. */
void vox_memory_count_alloc(vox_device device, size_t nbytes);
void vox_memory_count_free(vox_device device, size_t nbytes);

#endif
