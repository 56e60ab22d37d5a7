/* NumPy .npy files (module prefix vox_npy_): write v1.0 headers, read v1.0/v2.0/v3.0, little-endian float32 and
 * int32, C order only. Owns src/io/npy.c. Errors name the file and what was found instead. */
#ifndef VOX_IO_NPY_H
#define VOX_IO_NPY_H

#include <stdint.h>

#include "core/status.h"

#define VOX_NPY_MAX_DIMS 8

typedef enum vox_npy_dtype { VOX_NPY_F32 = 0, VOX_NPY_I32 } vox_npy_dtype;

/* A loaded array: data is malloc()ed (numel elements of dtype), released by vox_npy_free. */
typedef struct vox_npy {
  vox_npy_dtype dtype;
  int ndim;                          /* 0 for a scalar */
  int64_t shape[VOX_NPY_MAX_DIMS];
  int64_t numel;
  void *data;
} vox_npy;

vox_status vox_npy_save_f32(const char *path, const float *data, int ndim, const int64_t *shape);
vox_status vox_npy_save_i32(const char *path, const int32_t *data, int ndim, const int64_t *shape);

/* Reads '<f4' or '<i4' (also '|'/'=' byte orders for little-endian hosts), fortran_order False. */
vox_status vox_npy_load(const char *path, vox_npy *out);
/* As vox_npy_load but requires float32; *data malloc()ed (caller free()s), shape filled up to *ndim dims. */
vox_status vox_npy_load_f32(const char *path, float **data, int *ndim, int64_t shape[VOX_NPY_MAX_DIMS]);
void vox_npy_free(vox_npy *a);

#endif
