/* safetensors files (module prefix vox_safetensors_): a memory-mapped reader that validates the whole header
 * before any tensor is touched, conversion of F32/BF16/F16 (and I32/I64) into vox tensors, and an atomic writer. */
#ifndef VOX_IO_SAFETENSORS_H
#define VOX_IO_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

/* Every dtype the safetensors format names. Opening a file that holds any of them succeeds (so a checkpoint
 * with, say, a BOOL buffer can still be loaded around it); reading converts only F32, BF16, F16, F64, I32, I64. */
typedef enum vox_st_dtype {
  VOX_ST_F32 = 0,
  VOX_ST_BF16,
  VOX_ST_F16,
  VOX_ST_F64,
  VOX_ST_I32,
  VOX_ST_I64,
  VOX_ST_I16,
  VOX_ST_I8,
  VOX_ST_U8,
  VOX_ST_U16,
  VOX_ST_U32,
  VOX_ST_U64,
  VOX_ST_BOOL,
  VOX_ST_F8_E4M3,
  VOX_ST_F8_E5M2,
  VOX_ST_DTYPE_COUNT
} vox_st_dtype;

/* "F32", "BF16", ... as written in the header. */
const char *vox_st_dtype_name(vox_st_dtype t);
size_t vox_st_dtype_size(vox_st_dtype t);
/* Whether vox_safetensors_read_into can convert this dtype. */
bool vox_st_dtype_readable(vox_st_dtype t);

typedef struct vox_safetensors vox_safetensors;

typedef struct vox_st_info {
  vox_st_dtype dtype;
  int ndim;                     /* 0 for a scalar */
  int64_t shape[VOX_MAX_DIMS];
  int64_t numel;
  size_t nbytes;                /* data_offsets[1] - data_offsets[0] */
} vox_st_info;

/* Maps `path` read-only and validates: header length within the file, JSON header an object, every tensor's dtype
 * known, shape non-negative with at most VOX_MAX_DIMS dims, numel x dtype size == end - begin, offsets inside the
 * data section, no two tensors overlapping, no duplicate names; "__metadata__" must map strings to strings.
 * Errors (VOX_ERR_IO / VOX_ERR_PARSE) name the file and, where one is at fault, the tensor. */
vox_status vox_safetensors_open(const char *path, vox_safetensors **out);
void vox_safetensors_close(vox_safetensors *st); /* NULL is fine */

const char *vox_safetensors_path(const vox_safetensors *st);
/* Tensors in header order; name_at returns NULL out of range. */
int vox_safetensors_count(const vox_safetensors *st);
const char *vox_safetensors_name_at(const vox_safetensors *st, int i);
/* Index of `name` or -1. */
int vox_safetensors_find(const vox_safetensors *st, const char *name);
bool vox_safetensors_has(const vox_safetensors *st, const char *name);
/* VOX_ERR_NOT_FOUND naming the file and the tensor when absent. */
vox_status vox_safetensors_info(const vox_safetensors *st, const char *name, vox_st_info *out);
/* Borrowed "__metadata__" value, or NULL. */
const char *vox_safetensors_metadata(const vox_safetensors *st, const char *key);
/* Borrowed pointer to the tensor's raw little-endian bytes inside the mapping (not necessarily aligned). */
vox_status vox_safetensors_raw(const vox_safetensors *st, const char *name, const void **data, size_t *nbytes);

/* Copies tensor `name` into `dst` (same shape; any device, any strides), converting F32/BF16/F16/F64 into an f32
 * or bf16 dst, and I32/I64 into an i32 dst (I64 values must fit) or a float dst. Never touches requires_grad.
 * Shape mismatch: VOX_ERR_SHAPE naming the file, the tensor and both shapes. */
vox_status vox_safetensors_read_into(const vox_safetensors *st, const char *name, vox_tensor *dst);
/* Reads `name` into a new tensor of its stored shape on `device` with `dtype`. */
vox_status vox_safetensors_read_tensor(const vox_safetensors *st, const char *name, vox_device device,
                                       vox_dtype dtype, vox_tensor **out);

/* Writes n tensors (any device/dtype/strides) to `path`: floats stored as `on_disk` (VOX_F32 -> "F32" or
 * VOX_BF16 -> "BF16", round to nearest even), i32 tensors as "I32". The header lists "__metadata__" first (when
 * n_meta > 0) and then the tensors sorted by name, as the reference writer does, and is padded with spaces to a
 * multiple of 8 bytes; data follows in the same order. Names must be unique and non-empty. Atomic: written to
 * "<path>.tmp-<pid>", fsynced, renamed over `path`. meta_keys/meta_values may be NULL when n_meta is 0. */
vox_status vox_safetensors_write(const char *path, int n, const char *const *names, const vox_tensor *const *tensors,
                                 vox_dtype on_disk, int n_meta, const char *const *meta_keys,
                                 const char *const *meta_values);

#endif
