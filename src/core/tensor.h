/* vox_tensor: a strided, ref-counted view of a storage, plus the autograd fields (grad, producer node).
 * Functions here never record autograd nodes; the differentiable versions of views live in core/ops.h. */
#ifndef VOX_CORE_TENSOR_H
#define VOX_CORE_TENSOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/status.h"
#include "core/storage.h"

#define VOX_MAX_DIMS 8

struct vox_node;
struct vox_tensor;
/* Called when a leaf's gradient has received its final contribution of a backward pass. */
typedef void (*vox_grad_hook_fn)(struct vox_tensor *leaf, void *ctx);

typedef struct vox_tensor {
  vox_dtype dtype;
  vox_device device;
  int ndim;
  int64_t shape[VOX_MAX_DIMS];
  int64_t strides[VOX_MAX_DIMS]; /* in elements; 0 for broadcast dims */
  int64_t offset;                /* in elements from storage->data */
  vox_storage *storage;
  atomic_int refcount;

  bool requires_grad;
  struct vox_tensor *grad;       /* owned; accumulated by backward for tensors that require grad */
  struct vox_node *node;         /* owned reference to the op that produced it (NULL for leaves) */
  vox_grad_hook_fn grad_hook;
  void *grad_hook_ctx;
} vox_tensor;

/* ---- creation (refcount 1, caller releases) ---- */
vox_status vox_tensor_empty(vox_dtype dtype, vox_device device, int ndim, const int64_t *shape, vox_tensor **out);
vox_status vox_tensor_zeros(vox_dtype dtype, vox_device device, int ndim, const int64_t *shape, vox_tensor **out);
vox_status vox_tensor_full(vox_dtype dtype, vox_device device, int ndim, const int64_t *shape, double value,
                           vox_tensor **out);
/* Copies `data` (host memory, contiguous, of the given dtype) into a new tensor on `device`. */
vox_status vox_tensor_from_host(vox_dtype dtype, vox_device device, int ndim, const int64_t *shape,
                                const void *data, vox_tensor **out);
vox_status vox_tensor_empty_like(const vox_tensor *t, vox_tensor **out);
vox_status vox_tensor_zeros_like(const vox_tensor *t, vox_tensor **out);
/* A new tensor with the same shape, fresh contiguous storage and the same values (no autograd). */
vox_status vox_tensor_clone(const vox_tensor *t, vox_tensor **out);

vox_tensor *vox_tensor_retain(vox_tensor *t);
void vox_tensor_release(vox_tensor *t); /* NULL is fine */
/* Releases *t and sets it to NULL. */
static inline void vox_tensor_drop(vox_tensor **t) {
  vox_tensor_release(*t);
  *t = NULL;
}

/* ---- queries ---- */
int64_t vox_tensor_numel(const vox_tensor *t);
size_t vox_tensor_nbytes(const vox_tensor *t); /* numel * element size */
bool vox_tensor_is_contiguous(const vox_tensor *t);
bool vox_tensor_same_shape(const vox_tensor *a, const vox_tensor *b);
/* Writes "f32[2,3,4]" into buf; returns buf (for error messages). */
const char *vox_tensor_describe(const vox_tensor *t, char *buf, size_t cap);
/* Normalises a possibly negative dim; returns -1 if out of range. */
int vox_tensor_dim(const vox_tensor *t, int dim);
/* Pointer to element 0 of the view (device memory for CUDA tensors). */
void *vox_tensor_data(const vox_tensor *t);
static inline float *vox_tensor_f32(const vox_tensor *t) { return (float *)vox_tensor_data(t); }
static inline int32_t *vox_tensor_i32(const vox_tensor *t) { return (int32_t *)vox_tensor_data(t); }

/* ---- raw views (share storage, no autograd, no grad fields) ---- */
vox_status vox_tensor_view(const vox_tensor *t, int ndim, const int64_t *shape, const int64_t *strides,
                           int64_t offset, vox_tensor **out);
/* Reshape as a view when the strides allow it (-1 infers one dim); VOX_ERR_STATE when a copy is needed. */
vox_status vox_tensor_view_reshape(const vox_tensor *t, int ndim, const int64_t *shape, vox_tensor **out);
vox_status vox_tensor_view_permute(const vox_tensor *t, const int *perm, vox_tensor **out);
vox_status vox_tensor_view_slice(const vox_tensor *t, int dim, int64_t start, int64_t end, int64_t step,
                                 vox_tensor **out);
/* Broadcast view to `shape` (numpy rules; size-1 or missing leading dims get stride 0). */
vox_status vox_tensor_view_expand(const vox_tensor *t, int ndim, const int64_t *shape, vox_tensor **out);
/* Same storage, no autograd history (requires_grad false). */
vox_status vox_tensor_detach(const vox_tensor *t, vox_tensor **out);

/* Broadcast shape of a and b (numpy rules) or VOX_ERR_SHAPE naming `op` and both shapes. */
vox_status vox_broadcast_shapes(const char *op, const vox_tensor *a, const vox_tensor *b, int *ndim,
                                int64_t *shape);

/* ---- data movement (no autograd) ---- */
/* dst = src, elementwise, any strides, dtypes converted, devices may differ. Shapes must match. */
vox_status vox_tensor_copy_(vox_tensor *dst, const vox_tensor *src);
vox_status vox_tensor_fill_(vox_tensor *t, double value);
/* `t` itself (retained) when contiguous, else a contiguous copy. */
vox_status vox_tensor_contiguous(vox_tensor *t, vox_tensor **out);
vox_status vox_tensor_to(const vox_tensor *t, vox_device device, vox_dtype dtype, vox_tensor **out);
/* Copies all elements as f32 / i32 into host memory `dst` (numel entries), from any device/dtype. */
vox_status vox_tensor_read_f32(const vox_tensor *t, float *dst);
vox_status vox_tensor_read_i32(const vox_tensor *t, int32_t *dst);
/* Reads one scalar (numel must be 1). */
vox_status vox_tensor_item(const vox_tensor *t, double *value);

#endif
