/* The per-device backend registry and kernel dispatch. Backends fill their tables from constructors in
 * their own files; the op layer only ever calls vox_kernel_run. */
#include "core/backend.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/tensor.h"

static vox_backend backends[VOX_DEVICE_COUNT] = {
    [VOX_CPU] = {.name = "cpu", .device = VOX_CPU},
    [VOX_CUDA] = {.name = "cuda", .device = VOX_CUDA},
};

static const char *kernel_names[VOX_K_COUNT] = {
#define VOX_KERNEL(name) #name,
#include "core/kernels.def"
#undef VOX_KERNEL
};

static pthread_once_t probe_once[VOX_DEVICE_COUNT] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};
static void probe_cpu(void) {}
static void probe_cuda(void) {
  if (backends[VOX_CUDA].probe) backends[VOX_CUDA].probe(&backends[VOX_CUDA]);
}

vox_backend *vox_backend_table(vox_device device) { return &backends[device]; }

vox_backend *vox_backend_get(vox_device device) {
  pthread_once(&probe_once[device], device == VOX_CUDA ? probe_cuda : probe_cpu);
  return &backends[device];
}
const char *vox_kernel_name(vox_kernel_id id) { return id < VOX_K_COUNT ? kernel_names[id] : "?"; }

void vox_backend_register_kernel(vox_device device, vox_kernel_id id, vox_kernel_fn fn) {
  backends[device].kernels[id] = fn;
}

vox_status vox_kernel_run(const char *op, vox_kernel_id id, const vox_kernel_args *args) {
  /* The device of the first tensor given: a backward whose first output is not wanted (an input that needs no
   * gradient) passes NULL there, and must still run where its operands are. */
  const struct vox_tensor *t = NULL;
  for (int i = 0; i < args->n_out && !t; i++) t = args->out[i];
  for (int i = 0; i < args->n_in && !t; i++) t = args->in[i];
  vox_device device = t ? t->device : VOX_CPU;
  for (int i = 0; i < args->n_in; i++)
    if (args->in[i] && args->in[i]->device != device)
      return vox_errorf(VOX_ERR_DEVICE, "%s: operand %d is on %s, expected %s", op, i,
                        vox_device_name(args->in[i]->device), vox_device_name(device));
  for (int i = 0; i < args->n_out; i++)
    if (args->out[i] && args->out[i]->device != device)
      return vox_errorf(VOX_ERR_DEVICE, "%s: output %d is on %s, expected %s", op, i,
                        vox_device_name(args->out[i]->device), vox_device_name(device));
  vox_backend *be = vox_backend_get(device);
  if (!be->available)
    return vox_errorf(VOX_ERR_DEVICE, "%s: device %s is not available", op, vox_device_name(device));
  vox_kernel_fn fn = be->kernels[id];
  if (!fn)
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: backend %s has no kernel %s", op, be->name, kernel_names[id]);
  vox_status st = fn(args);
  if (st != VOX_OK) return vox_error_context(st, "%s: ", op);
  return VOX_OK;
}

static int num_threads = 0;

int vox_num_threads(void) {
  if (num_threads <= 0) {
    const char *env = getenv("VOX_NUM_THREADS");
    num_threads = env && atoi(env) > 0 ? atoi(env) : omp_get_num_procs();
  }
  return num_threads;
}

void vox_set_num_threads(int n) { num_threads = n > 0 ? n : omp_get_num_procs(); }

static _Atomic int matmul_precision[VOX_DEVICE_COUNT];

void vox_set_matmul_precision(vox_device device, vox_precision precision) {
  if (device >= 0 && device < VOX_DEVICE_COUNT) matmul_precision[device] = (int)precision;
}
vox_precision vox_matmul_precision(vox_device device) {
  return device >= 0 && device < VOX_DEVICE_COUNT ? (vox_precision)matmul_precision[device] : VOX_PRECISION_F32;
}
