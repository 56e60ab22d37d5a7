/* Ref-counted storage allocated through the device backend, with live/peak byte counters per device.
 * The counters are what the leak tests read: they must return to baseline after every training step. */
#include "core/storage.h"

#include <stdlib.h>

#include "core/backend.h"

static atomic_size_t live_bytes[VOX_DEVICE_COUNT];
static atomic_size_t peak_bytes[VOX_DEVICE_COUNT];

void vox_memory_count_alloc(vox_device device, size_t nbytes) {
  size_t now = atomic_fetch_add(&live_bytes[device], nbytes) + nbytes;
  size_t peak = atomic_load(&peak_bytes[device]);
  while (now > peak && !atomic_compare_exchange_weak(&peak_bytes[device], &peak, now)) {
  }
}
void vox_memory_count_free(vox_device device, size_t nbytes) { atomic_fetch_sub(&live_bytes[device], nbytes); }
size_t vox_memory_live_bytes(vox_device device) { return atomic_load(&live_bytes[device]); }
size_t vox_memory_peak_bytes(vox_device device) { return atomic_load(&peak_bytes[device]); }
void vox_memory_reset_peak(vox_device device) { atomic_store(&peak_bytes[device], atomic_load(&live_bytes[device])); }

vox_status vox_storage_new(vox_device device, size_t nbytes, vox_storage **out) {
  *out = NULL;
  vox_backend *be = vox_backend_get(device);
  if (!be->available || !be->alloc)
    return vox_errorf(VOX_ERR_DEVICE, "storage: device %s is not available in this build or machine",
                      vox_device_name(device));
  vox_storage *s = calloc(1, sizeof *s);
  if (!s) return vox_errorf(VOX_ERR_NOMEM, "storage: out of host memory");
  s->device = device;
  s->nbytes = nbytes;
  atomic_init(&s->refcount, 1);
  vox_status st = be->alloc(nbytes ? nbytes : 1, &s->data);
  if (st != VOX_OK) {
    free(s);
    return vox_error_context(st, "storage: allocating %zu bytes on %s: ", nbytes, vox_device_name(device));
  }
  vox_memory_count_alloc(device, nbytes);
  *out = s;
  return VOX_OK;
}

vox_storage *vox_storage_retain(vox_storage *s) {
  if (s) atomic_fetch_add(&s->refcount, 1);
  return s;
}

void vox_storage_release(vox_storage *s) {
  if (!s || atomic_fetch_sub(&s->refcount, 1) != 1) return;
  vox_backend_get(s->device)->free(s->data, s->nbytes);
  vox_memory_count_free(s->device, s->nbytes);
  free(s);
}
