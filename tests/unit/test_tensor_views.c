/* Raw tensor views (reshape as view vs copy, permute, slice with step, expand) and copies with dtype
 * conversion, including bf16 round-to-nearest-even. These are the first users of core/tensor.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vox_test.h"

static vox_tensor *iota(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  float v[256];
  for (int64_t i = 0; i < n; i++) v[i] = (float)i;
  return vt_from_f32(ndim, shape, v);
}

Test(tensor_views, reshape_view_or_copy) {
  vox_tensor *x = iota(VT_SHAPE(2, 3, 4)), *v = NULL, *t = NULL, *r = NULL;
  VT_OK(vox_tensor_view_reshape(x, 2, (int64_t[]){6, -1}, &v));
  cr_assert(v->storage == x->storage && v->shape[1] == 4 && v->strides[0] == 4, "contiguous reshape is a view");
  vox_tensor_drop(&v);
  /* transposed [4,3,2]: merging dims needs a copy */
  VT_OK(vox_tensor_view_permute(x, (int[]){2, 1, 0}, &t));
  cr_assert(vox_tensor_view_reshape(t, 1, (int64_t[]){24}, &v) == VOX_ERR_STATE);
  cr_assert(strstr(vox_last_error(), "reshape") != NULL, "message: %s", vox_last_error());
  /* splitting a dim of the transposed view is still a view */
  VT_OK(vox_tensor_view_reshape(t, 4, (int64_t[]){2, 2, 3, 2}, &v));
  cr_assert(v->storage == x->storage);
  vox_tensor_drop(&v);
  /* the op copies when it must, with values in row-major order of the transposed view */
  VT_OK(vox_op_reshape(t, 1, (int64_t[]){24}, &r));
  cr_assert(r->storage != x->storage);
  float want[24];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++)
      for (int k = 0; k < 2; k++) want[i * 6 + j * 2 + k] = (float)(k * 12 + j * 4 + i);
  vt_assert_close_f32(r, want, 0, 0, "reshape copy of transpose");
  cr_assert(vox_tensor_view_reshape(x, 2, (int64_t[]){5, -1}, &v) == VOX_ERR_SHAPE);
  cr_assert(vox_tensor_view_reshape(x, 2, (int64_t[]){-1, -1}, &v) == VOX_ERR_SHAPE);
  vox_tensor_release(r);
  vox_tensor_release(t);
  vox_tensor_release(x);
}

Test(tensor_views, reshape_of_slices) {
  vox_tensor *x = iota(VT_SHAPE(4, 6)), *rows = NULL, *cols = NULL, *v = NULL;
  VT_OK(vox_tensor_view_slice(x, 0, 1, 3, 1, &rows)); /* [2,6], contiguous rows */
  VT_OK(vox_tensor_view_reshape(rows, 1, (int64_t[]){12}, &v));
  cr_assert(v->offset == 6 && v->strides[0] == 1);
  vox_tensor_drop(&v);
  VT_OK(vox_tensor_view_slice(x, 1, 0, 3, 1, &cols)); /* [4,3] with row stride 6 */
  cr_assert(vox_tensor_view_reshape(cols, 1, (int64_t[]){12}, &v) == VOX_ERR_STATE);
  VT_OK(vox_tensor_view_reshape(cols, 3, (int64_t[]){2, 2, 3}, &v));
  cr_assert(v->strides[0] == 12 && v->strides[1] == 6 && v->strides[2] == 1);
  vox_tensor_drop(&v);
  vox_tensor_release(rows);
  vox_tensor_release(cols);
  vox_tensor_release(x);
}

Test(tensor_views, permute_slice_expand_values) {
  vox_tensor *x = iota(VT_SHAPE(2, 3, 4)), *p = NULL, *c = NULL, *s = NULL, *e = NULL;
  VT_OK(vox_tensor_view_permute(x, (int[]){2, 0, 1}, &p)); /* [4,2,3], p[i,j,k] = x[j,k,i] */
  VT_OK(vox_tensor_clone(p, &c));
  float want[24];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 2; j++)
      for (int k = 0; k < 3; k++) want[i * 6 + j * 3 + k] = (float)(j * 12 + k * 4 + i);
  vt_assert_close_f32(c, want, 0, 0, "permute");
  cr_assert(vox_tensor_view_permute(x, (int[]){0, 0, 1}, &s) == VOX_ERR_INVALID);
  vox_tensor_drop(&c);
  /* slice dim -1 from -3 with step 2: columns 1 and 3 */
  VT_OK(vox_tensor_view_slice(x, -1, -3, 100, 2, &s));
  cr_assert(s->shape[2] == 2 && s->strides[2] == 2 && s->offset == 1);
  VT_OK(vox_tensor_clone(s, &c));
  float ws[12];
  for (int i = 0; i < 6; i++) {
    ws[2 * i] = (float)(4 * i + 1);
    ws[2 * i + 1] = (float)(4 * i + 3);
  }
  vt_assert_close_f32(c, ws, 0, 0, "slice step 2");
  vox_tensor_drop(&c);
  vox_tensor_drop(&s);
  VT_OK(vox_tensor_view_slice(x, 1, 2, 1, 1, &s)); /* empty */
  cr_assert(s->shape[1] == 0);
  cr_assert(vox_tensor_view_slice(x, 1, 0, 2, 0, &c) == VOX_ERR_INVALID);
  cr_assert(vox_tensor_view_slice(x, 3, 0, 2, 1, &c) == VOX_ERR_INDEX);
  vox_tensor_drop(&s);
  /* expand [3,1] -> [2,3,4] */
  vox_tensor *col = iota(VT_SHAPE(3, 1));
  VT_OK(vox_tensor_view_expand(col, 3, (int64_t[]){2, 3, 4}, &e));
  cr_assert(e->strides[0] == 0 && e->strides[2] == 0 && e->strides[1] == 1);
  VT_OK(vox_tensor_clone(e, &c));
  float we[24];
  for (int i = 0; i < 24; i++) we[i] = (float)((i / 4) % 3);
  vt_assert_close_f32(c, we, 0, 0, "expand");
  cr_assert(vox_tensor_view_expand(x, 3, (int64_t[]){2, 5, 4}, &s) == VOX_ERR_SHAPE);
  cr_assert(strstr(vox_last_error(), "f32[2,3,4]") != NULL, "message: %s", vox_last_error());
  vox_tensor_release(c);
  vox_tensor_release(e);
  vox_tensor_release(col);
  vox_tensor_release(p);
  vox_tensor_release(x);
}

Test(tensor_views, bf16_round_to_nearest_even) {
  /* bf16 keeps 7 mantissa bits: near 1.0 its spacing is 2^-7 */
  float in[8] = {1.0f + 0x1p-8f,          /* halfway, lower neighbour even: down to 1 */
                 1.0f + 3 * 0x1p-8f,      /* halfway, upper neighbour even: up to 1 + 2^-6 */
                 1.0f + 0x1p-8f + 0x1p-20f, /* just above halfway: up */
                 -1.0f - 0x1p-8f,         /* symmetric for negatives */
                 INFINITY, -INFINITY, NAN, 3.4e38f /* beyond bf16 max + half a step: inf */};
  float want[8] = {1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f, -1.0f, INFINITY, -INFINITY, NAN, INFINITY};
  vox_tensor *x = vt_from_f32(VT_SHAPE(8), in), *h = NULL, *back = NULL;
  VT_OK(vox_tensor_to(x, VOX_CPU, VOX_BF16, &h));
  VT_OK(vox_tensor_to(h, VOX_CPU, VOX_F32, &back));
  const float *b = vox_tensor_f32(back);
  for (int i = 0; i < 8; i++) {
    if (isnan(want[i])) cr_assert(isnan(b[i]), "element %d: NaN must stay NaN", i);
    else cr_assert(b[i] == want[i], "element %d: %.9g -> %.9g, expected %.9g", i, in[i], b[i], want[i]);
  }
  vox_tensor_release(x);
  vox_tensor_release(h);
  vox_tensor_release(back);
}

Test(tensor_views, copy_with_conversion_and_strides) {
  float v[6] = {2.7f, -2.7f, 0.5f, 100.0f, -0.0f, 7.0f};
  vox_tensor *x = vt_from_f32(VT_SHAPE(2, 3), v), *i = NULL, *f = NULL, *dst = NULL, *dt = NULL;
  VT_OK(vox_tensor_to(x, VOX_CPU, VOX_I32, &i));
  int32_t got[6];
  VT_OK(vox_tensor_read_i32(i, got));
  int32_t want_i[6] = {2, -2, 0, 100, 0, 7}; /* truncation toward zero, as a C cast */
  cr_assert(memcmp(got, want_i, sizeof got) == 0, "f32 -> i32: %d %d %d %d %d %d", got[0], got[1], got[2], got[3],
            got[4], got[5]);
  VT_OK(vox_tensor_to(i, VOX_CPU, VOX_F32, &f));
  vt_assert_close_f32(f, (float[]){2, -2, 0, 100, 0, 7}, 0, 0, "i32 -> f32");
  /* copy into a transposed destination: dst^T = x, so dst[j][i] = x[i][j] */
  VT_OK(vox_tensor_zeros(VOX_BF16, VOX_CPU, 2, (int64_t[]){3, 2}, &dst));
  VT_OK(vox_tensor_view_permute(dst, (int[]){1, 0}, &dt));
  VT_OK(vox_tensor_copy_(dt, x));
  vt_assert_close_f32(dst, (float[]){2.703125f, 100.0f, -2.703125f, 0.0f, 0.5f, 7.0f}, 0, 0, "strided bf16 copy");
  cr_assert(vox_tensor_copy_(dst, x) == VOX_ERR_SHAPE);
  cr_assert(strstr(vox_last_error(), "bf16[3,2]") && strstr(vox_last_error(), "f32[2,3]"), "%s", vox_last_error());
  vox_tensor_release(x);
  vox_tensor_release(i);
  vox_tensor_release(f);
  vox_tensor_release(dst);
  vox_tensor_release(dt);
}

/* The CPU backend parks large freed blocks and hands them back to an allocation of the same size class (what
 * spares a training step from page-faulting its big buffers in again); other classes get fresh memory, small
 * blocks are not parked, and the live-byte counter sees none of this. */
Test(tensor_views, cpu_reuses_large_blocks_by_size_class) {
  if (getenv("VOX_CPU_CACHE_MB") && atoi(getenv("VOX_CPU_CACHE_MB")) == 0) cr_skip_test("VOX_CPU_CACHE_MB=0");
  size_t live = vox_memory_live_bytes(VOX_CPU);
  vox_tensor *a = NULL, *b = NULL, *c = NULL;
  VT_OK(vox_tensor_full(VOX_F32, VOX_CPU, 1, (int64_t[]){1 << 20}, 3.0, &a)); /* 4 MiB */
  void *pa = vox_tensor_data(a);
  vox_tensor_release(a);
  cr_assert_eq(vox_memory_live_bytes(VOX_CPU), live);
  VT_OK(vox_tensor_zeros(VOX_F32, VOX_CPU, 1, (int64_t[]){3 << 19}, &b)); /* 6 MiB: another class */
  cr_assert_neq(vox_tensor_data(b), pa);
  VT_OK(vox_tensor_zeros(VOX_F32, VOX_CPU, 1, (int64_t[]){(1 << 20) - 1000}, &c)); /* the 4 MiB class */
  cr_assert_eq(vox_tensor_data(c), pa);
  for (int64_t i = 0; i < (1 << 20) - 1000; i++) cr_assert_eq(vox_tensor_f32(c)[i], 0.0f); /* zeros() still zeroes */
  vox_tensor_release(b);
  vox_tensor_release(c);
  cr_assert_eq(vox_memory_live_bytes(VOX_CPU), live);
}
