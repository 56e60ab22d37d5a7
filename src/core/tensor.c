/* Tensor creation, reference counting, raw strided views and data movement (no autograd here).
 * Views share storage; every function that can fail names itself and the shapes involved. */
#include "core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"

static vox_status check_shape(const char *op, int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > VOX_MAX_DIMS)
    return vox_errorf(VOX_ERR_SHAPE, "%s: %d dims (at most %d)", op, ndim, VOX_MAX_DIMS);
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0) return vox_errorf(VOX_ERR_SHAPE, "%s: negative size %lld in dim %d", op, (long long)shape[i], i);
  return VOX_OK;
}

static vox_tensor *tensor_alloc_header(vox_dtype dtype, vox_device device, int ndim, const int64_t *shape) {
  vox_tensor *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->dtype = dtype;
  t->device = device;
  t->ndim = ndim;
  int64_t stride = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    t->shape[i] = shape[i];
    t->strides[i] = stride;
    stride *= shape[i] > 0 ? shape[i] : 1;
  }
  atomic_init(&t->refcount, 1);
  return t;
}

vox_status vox_tensor_empty(vox_dtype dtype, vox_device device, int ndim, const int64_t *shape, vox_tensor **out) {
  *out = NULL;
  VOX_TRY(check_shape("tensor_empty", ndim, shape));
  vox_tensor *t = tensor_alloc_header(dtype, device, ndim, shape);
  if (!t) return vox_errorf(VOX_ERR_NOMEM, "tensor_empty: out of host memory");
  vox_status st = vox_storage_new(device, (size_t)vox_tensor_numel(t) * vox_dtype_size(dtype), &t->storage);
  if (st != VOX_OK) {
    free(t);
    return st;
  }
  *out = t;
  return VOX_OK;
}

vox_status vox_tensor_full(vox_dtype dtype, vox_device device, int ndim, const int64_t *shape, double value,
                           vox_tensor **out) {
  VOX_TRY(vox_tensor_empty(dtype, device, ndim, shape, out));
  vox_status st = vox_tensor_fill_(*out, value);
  if (st != VOX_OK) vox_tensor_drop(out);
  return st;
}

vox_status vox_tensor_zeros(vox_dtype dtype, vox_device device, int ndim, const int64_t *shape, vox_tensor **out) {
  return vox_tensor_full(dtype, device, ndim, shape, 0.0, out);
}

vox_status vox_tensor_from_host(vox_dtype dtype, vox_device device, int ndim, const int64_t *shape,
                                const void *data, vox_tensor **out) {
  VOX_TRY(vox_tensor_empty(dtype, device, ndim, shape, out));
  vox_backend *be = vox_backend_get(device);
  vox_status st = be->copy_from_host(vox_tensor_data(*out), data, vox_tensor_nbytes(*out));
  if (st != VOX_OK) vox_tensor_drop(out);
  return st;
}

vox_status vox_tensor_empty_like(const vox_tensor *t, vox_tensor **out) {
  return vox_tensor_empty(t->dtype, t->device, t->ndim, t->shape, out);
}
vox_status vox_tensor_zeros_like(const vox_tensor *t, vox_tensor **out) {
  return vox_tensor_zeros(t->dtype, t->device, t->ndim, t->shape, out);
}

vox_status vox_tensor_clone(const vox_tensor *t, vox_tensor **out) {
  VOX_TRY(vox_tensor_empty_like(t, out));
  vox_status st = vox_tensor_copy_(*out, t);
  if (st != VOX_OK) vox_tensor_drop(out);
  return st;
}

vox_tensor *vox_tensor_retain(vox_tensor *t) {
  if (t) atomic_fetch_add(&t->refcount, 1);
  return t;
}

void vox_tensor_release(vox_tensor *t) {
  if (!t || atomic_fetch_sub(&t->refcount, 1) != 1) return;
  vox_storage_release(t->storage);
  vox_tensor_release(t->grad);
  if (t->node) vox_node_release(t->node);
  free(t);
}

int64_t vox_tensor_numel(const vox_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

size_t vox_tensor_nbytes(const vox_tensor *t) { return (size_t)vox_tensor_numel(t) * vox_dtype_size(t->dtype); }

bool vox_tensor_is_contiguous(const vox_tensor *t) {
  int64_t expected = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->strides[i] != expected) return false;
    expected *= t->shape[i];
  }
  return true;
}

bool vox_tensor_same_shape(const vox_tensor *a, const vox_tensor *b) {
  if (a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return false;
  return true;
}

const char *vox_tensor_describe(const vox_tensor *t, char *buf, size_t cap) {
  if (!t) {
    snprintf(buf, cap, "(null)");
    return buf;
  }
  size_t n = (size_t)snprintf(buf, cap, "%s[", vox_dtype_name(t->dtype));
  for (int i = 0; i < t->ndim && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, i ? ",%lld" : "%lld", (long long)t->shape[i]);
  if (n < cap) snprintf(buf + n, cap - n, "]");
  return buf;
}

int vox_tensor_dim(const vox_tensor *t, int dim) {
  if (dim < 0) dim += t->ndim;
  return dim >= 0 && dim < t->ndim ? dim : -1;
}

void *vox_tensor_data(const vox_tensor *t) {
  return (char *)t->storage->data + (size_t)t->offset * vox_dtype_size(t->dtype);
}

/* ---- views ----------------------------------------------------------------------------------------------- */

vox_status vox_tensor_view(const vox_tensor *t, int ndim, const int64_t *shape, const int64_t *strides,
                           int64_t offset, vox_tensor **out) {
  *out = NULL;
  VOX_TRY(check_shape("view", ndim, shape));
  vox_tensor *v = tensor_alloc_header(t->dtype, t->device, ndim, shape);
  if (!v) return vox_errorf(VOX_ERR_NOMEM, "view: out of host memory");
  for (int i = 0; i < ndim; i++) v->strides[i] = strides[i];
  v->offset = offset;
  v->storage = vox_storage_retain(t->storage);
  *out = v;
  return VOX_OK;
}

vox_status vox_tensor_view_reshape(const vox_tensor *t, int ndim, const int64_t *shape_in, vox_tensor **out) {
  char b1[96];
  *out = NULL;
  if (ndim > VOX_MAX_DIMS) return vox_errorf(VOX_ERR_SHAPE, "reshape: %d dims (at most %d)", ndim, VOX_MAX_DIMS);
  int64_t shape[VOX_MAX_DIMS], known = 1, numel = vox_tensor_numel(t);
  int infer = -1;
  for (int i = 0; i < ndim; i++) {
    shape[i] = shape_in[i];
    if (shape[i] == -1) {
      if (infer >= 0) return vox_errorf(VOX_ERR_SHAPE, "reshape: more than one -1 in the target shape");
      infer = i;
    } else if (shape[i] < 0) {
      return vox_errorf(VOX_ERR_SHAPE, "reshape: negative size %lld", (long long)shape[i]);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known)
      return vox_errorf(VOX_ERR_SHAPE, "reshape: cannot infer -1 for %s", vox_tensor_describe(t, b1, sizeof b1));
    shape[infer] = numel / known;
    known *= shape[infer];
  }
  if (known != numel)
    return vox_errorf(VOX_ERR_SHAPE, "reshape: %s has %lld elements, target has %lld",
                      vox_tensor_describe(t, b1, sizeof b1), (long long)numel, (long long)known);
  /* PyTorch's view rule: walk old dims from the innermost, cutting them into chunks that are contiguous in
   * themselves; each chunk must be covered exactly by a run of new dims. */
  int64_t strides[VOX_MAX_DIMS];
  if (numel == 0 || t->ndim == 0) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
      strides[i] = s;
      s *= shape[i] ? shape[i] : 1;
    }
  } else {
    int view_d = ndim - 1;
    int64_t chunk_base = t->strides[t->ndim - 1], tensor_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
      tensor_numel *= t->shape[d];
      if (d == 0 || (t->shape[d - 1] != 1 && t->strides[d - 1] != tensor_numel * chunk_base)) {
        while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
          strides[view_d] = view_numel * chunk_base;
          view_numel *= shape[view_d];
          view_d--;
        }
        if (view_numel != tensor_numel) return vox_errorf(VOX_ERR_STATE, "reshape: strides of %s need a copy", vox_tensor_describe(t, b1, sizeof b1));
        if (d > 0) {
          chunk_base = t->strides[d - 1];
          tensor_numel = 1;
          view_numel = 1;
        }
      }
    }
    if (view_d != -1) return vox_errorf(VOX_ERR_STATE, "reshape: strides of %s need a copy", vox_tensor_describe(t, b1, sizeof b1));
  }
  return vox_tensor_view(t, ndim, shape, strides, t->offset, out);
}

vox_status vox_tensor_view_permute(const vox_tensor *t, const int *perm, vox_tensor **out) {
  int64_t shape[VOX_MAX_DIMS], strides[VOX_MAX_DIMS];
  bool seen[VOX_MAX_DIMS] = {0};
  for (int i = 0; i < t->ndim; i++) {
    int p = perm[i] < 0 ? perm[i] + t->ndim : perm[i];
    if (p < 0 || p >= t->ndim || seen[p])
      return vox_errorf(VOX_ERR_INVALID, "permute: entry %d (%d) is not a permutation of %d dims", i, perm[i],
                        t->ndim);
    seen[p] = true;
    shape[i] = t->shape[p];
    strides[i] = t->strides[p];
  }
  return vox_tensor_view(t, t->ndim, shape, strides, t->offset, out);
}

vox_status vox_tensor_view_slice(const vox_tensor *t, int dim, int64_t start, int64_t end, int64_t step,
                                 vox_tensor **out) {
  char b1[96];
  int d = vox_tensor_dim(t, dim);
  if (d < 0) return vox_errorf(VOX_ERR_INDEX, "slice: dim %d out of range for %s", dim, vox_tensor_describe(t, b1, sizeof b1));
  if (step <= 0) return vox_errorf(VOX_ERR_INVALID, "slice: step %lld must be positive", (long long)step);
  int64_t n = t->shape[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  if (start < 0) start = 0;
  if (end > n) end = n;
  if (start > n) start = n;
  if (end < start) end = start;
  int64_t shape[VOX_MAX_DIMS], strides[VOX_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  memcpy(strides, t->strides, sizeof strides);
  shape[d] = (end - start + step - 1) / step;
  strides[d] = t->strides[d] * step;
  return vox_tensor_view(t, t->ndim, shape, strides, t->offset + start * t->strides[d], out);
}

vox_status vox_tensor_view_expand(const vox_tensor *t, int ndim, const int64_t *shape, vox_tensor **out) {
  char b1[96];
  if (ndim < t->ndim)
    return vox_errorf(VOX_ERR_SHAPE, "expand: %s to %d dims", vox_tensor_describe(t, b1, sizeof b1), ndim);
  int64_t strides[VOX_MAX_DIMS];
  int lead = ndim - t->ndim;
  for (int i = 0; i < ndim; i++) {
    if (i < lead) {
      strides[i] = 0;
      continue;
    }
    int64_t s = t->shape[i - lead];
    if (s == shape[i]) strides[i] = t->strides[i - lead];
    else if (s == 1) strides[i] = 0;
    else
      return vox_errorf(VOX_ERR_SHAPE, "expand: %s cannot broadcast dim %d (%lld) to %lld",
                        vox_tensor_describe(t, b1, sizeof b1), i - lead, (long long)s, (long long)shape[i]);
  }
  return vox_tensor_view(t, ndim, shape, strides, t->offset, out);
}

vox_status vox_tensor_detach(const vox_tensor *t, vox_tensor **out) {
  return vox_tensor_view(t, t->ndim, t->shape, t->strides, t->offset, out);
}

vox_status vox_broadcast_shapes(const char *op, const vox_tensor *a, const vox_tensor *b, int *ndim,
                                int64_t *shape) {
  char b1[96], b2[96];
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int i = 0; i < n; i++) {
    int ia = a->ndim - n + i, ib = b->ndim - n + i;
    int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1)
      return vox_errorf(VOX_ERR_SHAPE, "%s: shapes %s and %s do not broadcast (dim %d: %lld vs %lld)", op,
                        vox_tensor_describe(a, b1, sizeof b1), vox_tensor_describe(b, b2, sizeof b2), i,
                        (long long)sa, (long long)sb);
    shape[i] = sa == 1 ? sb : sa;
  }
  *ndim = n;
  return VOX_OK;
}

/* ---- data movement --------------------------------------------------------------------------------------- */

vox_status vox_tensor_copy_(vox_tensor *dst, const vox_tensor *src) {
  char b1[96], b2[96];
  if (vox_tensor_numel(dst) != vox_tensor_numel(src) || !vox_tensor_same_shape(dst, src))
    return vox_errorf(VOX_ERR_SHAPE, "copy: destination %s vs source %s", vox_tensor_describe(dst, b1, sizeof b1),
                      vox_tensor_describe(src, b2, sizeof b2));
  if (dst->device == src->device) {
    vox_kernel_args a = {.n_in = 1, .n_out = 1, .in = {src}, .out = {dst}};
    return vox_kernel_run("copy", VOX_K_COPY, &a);
  }
  /* Across devices: make the source contiguous on its device, move bytes, convert on the destination. */
  vox_tensor *staged = NULL, *moved = NULL;
  vox_status st = vox_tensor_empty(src->dtype, src->device, src->ndim, src->shape, &staged);
  if (st == VOX_OK) {
    vox_kernel_args a = {.n_in = 1, .n_out = 1, .in = {src}, .out = {staged}};
    st = vox_kernel_run("copy", VOX_K_COPY, &a);
  }
  if (st == VOX_OK) st = vox_tensor_empty(src->dtype, dst->device, src->ndim, src->shape, &moved);
  if (st == VOX_OK) {
    size_t nbytes = vox_tensor_nbytes(staged);
    if (src->device == VOX_CPU) {
      st = vox_backend_get(dst->device)->copy_from_host(vox_tensor_data(moved), vox_tensor_data(staged), nbytes);
    } else if (dst->device == VOX_CPU) {
      st = vox_backend_get(src->device)->copy_to_host(vox_tensor_data(moved), vox_tensor_data(staged), nbytes);
    } else {
      st = vox_errorf(VOX_ERR_UNSUPPORTED, "copy: %s to %s", vox_device_name(src->device),
                      vox_device_name(dst->device));
    }
  }
  if (st == VOX_OK) {
    vox_kernel_args a = {.n_in = 1, .n_out = 1, .in = {moved}, .out = {dst}};
    st = vox_kernel_run("copy", VOX_K_COPY, &a);
  }
  vox_tensor_release(staged);
  vox_tensor_release(moved);
  return st;
}

vox_status vox_tensor_fill_(vox_tensor *t, double value) {
  vox_fill_params p = {.value = value};
  vox_kernel_args a = {.n_in = 0, .n_out = 1, .out = {t}, .params = &p};
  return vox_kernel_run("fill", VOX_K_FILL, &a);
}

vox_status vox_tensor_contiguous(vox_tensor *t, vox_tensor **out) {
  if (vox_tensor_is_contiguous(t)) {
    *out = vox_tensor_retain(t);
    return VOX_OK;
  }
  return vox_tensor_clone(t, out);
}

vox_status vox_tensor_to(const vox_tensor *t, vox_device device, vox_dtype dtype, vox_tensor **out) {
  VOX_TRY(vox_tensor_empty(dtype, device, t->ndim, t->shape, out));
  vox_status st = vox_tensor_copy_(*out, t);
  if (st != VOX_OK) vox_tensor_drop(out);
  return st;
}

static vox_status read_as(const vox_tensor *t, vox_dtype dtype, void *dst) {
  vox_tensor *host = NULL;
  VOX_TRY(vox_tensor_to(t, VOX_CPU, dtype, &host));
  memcpy(dst, vox_tensor_data(host), vox_tensor_nbytes(host));
  vox_tensor_release(host);
  return VOX_OK;
}

vox_status vox_tensor_read_f32(const vox_tensor *t, float *dst) { return read_as(t, VOX_F32, dst); }
vox_status vox_tensor_read_i32(const vox_tensor *t, int32_t *dst) { return read_as(t, VOX_I32, dst); }

vox_status vox_tensor_item(const vox_tensor *t, double *value) {
  char b1[96];
  if (vox_tensor_numel(t) != 1)
    return vox_errorf(VOX_ERR_SHAPE, "item: %s is not a single element", vox_tensor_describe(t, b1, sizeof b1));
  float f;
  VOX_TRY(vox_tensor_read_f32(t, &f));
  *value = f;
  return VOX_OK;
}
