/* Backend dispatch: each device has a vox_backend (allocator, copies, a kernel table indexed by
 * vox_kernel_id). Kernels register themselves at load time, so adding a backend touches no op code. */
#ifndef VOX_CORE_BACKEND_H
#define VOX_CORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "core/dtype.h"
#include "core/status.h"

struct vox_tensor;

typedef enum vox_kernel_id {
#define VOX_KERNEL(name) VOX_K_##name,
#include "core/kernels.def"
#undef VOX_KERNEL
  VOX_K_COUNT
} vox_kernel_id;

#define VOX_KERNEL_MAX_IO 8
typedef struct vox_kernel_args {
  int n_in, n_out;
  const struct vox_tensor *in[VOX_KERNEL_MAX_IO];
  struct vox_tensor *out[VOX_KERNEL_MAX_IO];
  const void *params; /* the kernel's struct from core/kernel_params.h, or NULL */
} vox_kernel_args;

typedef vox_status (*vox_kernel_fn)(const vox_kernel_args *args);

typedef struct vox_backend {
  const char *name;
  vox_device device;
  bool available; /* false when compiled in but no device is present (valid after vox_backend_get) */
  /* Detects the device on first use rather than at load time (so forked test processes and machines
   * without a driver are fine); sets `available`. NULL when there is nothing to detect. */
  void (*probe)(struct vox_backend *self);
  vox_status (*alloc)(size_t nbytes, void **ptr);
  void (*free)(void *ptr, size_t nbytes);
  /* Contiguous byte copies between host memory and this device (or within it). */
  vox_status (*copy_to_host)(void *dst, const void *src, size_t nbytes);
  vox_status (*copy_from_host)(void *dst, const void *src, size_t nbytes);
  vox_status (*synchronize)(void);
  vox_kernel_fn kernels[VOX_K_COUNT];
} vox_backend;

/* The backend of `device` (never NULL; check ->available). */
vox_backend *vox_backend_get(vox_device device);
const char *vox_kernel_name(vox_kernel_id id);
/* The table itself, without probing the device: for backends filling it in at load time. */
vox_backend *vox_backend_table(vox_device device);

/* Runs kernel `id` on the device of out[0] (or in[0] when there is no output). `op` names the calling op
 * in errors. */
vox_status vox_kernel_run(const char *op, vox_kernel_id id, const vox_kernel_args *args);

/* Registration from kernel files: VOX_REGISTER_KERNEL(VOX_CPU, SOFTMAX, cpu_softmax). */
void vox_backend_register_kernel(vox_device device, vox_kernel_id id, vox_kernel_fn fn);
#define VOX_REGISTER_KERNEL(device, name, fn)                                              \
  __attribute__((constructor)) static void vox_register_##fn(void) {                        \
    vox_backend_register_kernel(device, VOX_K_##name, fn);                                 \
  }

/* Mixed precision of a device's GEMMs and attention (default VOX_PRECISION_F32). With VOX_PRECISION_BF16,
 * vox_op_matmul, vox_op_linear and vox_op_attention cast f32 operands to bf16 through the differentiable cast
 * (tensor-core products with f32 accumulation) and return f32: activations between these ops, norms, softmax and
 * losses stay f32, and f32 leaves (master weights) receive f32 gradients. On the CPU (f32-only attention kernel)
 * only matmul and linear follow the setting. */
typedef enum vox_precision { VOX_PRECISION_F32 = 0, VOX_PRECISION_BF16 } vox_precision;
void vox_set_matmul_precision(vox_device device, vox_precision precision);
vox_precision vox_matmul_precision(vox_device device);

/* Number of worker threads kernels use (VOX_NUM_THREADS env, else all cores). */
int vox_num_threads(void);
void vox_set_num_threads(int n);

#endif
