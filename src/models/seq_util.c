/* Speech-LLM sequence helpers: lengths to the host (range-checked, so a bad batch fails with a message instead of
 * reading out of bounds), padding masks and host-built index tensors. */
#include "models/seq_util.h"

#include <stdlib.h>

#include "core/ops.h"

vox_status vox_seq_i32(const int32_t *values, int ndim, const int64_t *shape, vox_device device, vox_tensor **out) {
  *out = NULL;
  if (device == VOX_CPU) return vox_tensor_from_host(VOX_I32, VOX_CPU, ndim, shape, values, out);
  vox_tensor *h = NULL;
  VOX_TRY(vox_tensor_from_host(VOX_I32, VOX_CPU, ndim, shape, values, &h));
  vox_status st = vox_tensor_to(h, device, VOX_I32, out);
  vox_tensor_release(h);
  return st;
}

vox_status vox_seq_lengths_host(const vox_tensor *lengths, int64_t B, int64_t T, const char *what, int32_t **out) {
  char b1[96];
  *out = NULL;
  int32_t *h = malloc((size_t)(B > 0 ? B : 1) * sizeof *h);
  if (!h) return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", what);
  if (!lengths) {
    for (int64_t b = 0; b < B; b++) h[b] = (int32_t)T;
    *out = h;
    return VOX_OK;
  }
  if (lengths->dtype != VOX_I32 || lengths->ndim != 1 || lengths->shape[0] != B) {
    free(h);
    return vox_errorf(VOX_ERR_SHAPE, "%s: lengths %s, expected i32 [%lld]", what,
                      vox_tensor_describe(lengths, b1, sizeof b1), (long long)B);
  }
  vox_status st = vox_tensor_read_i32(lengths, h);
  for (int64_t b = 0; st == VOX_OK && b < B; b++)
    if (h[b] < 0 || h[b] > T)
      st = vox_errorf(VOX_ERR_INDEX, "%s: length %d of row %lld is outside [0, %lld]", what, h[b], (long long)b,
                      (long long)T);
  if (st != VOX_OK) {
    free(h);
    return st;
  }
  *out = h;
  return VOX_OK;
}

vox_status vox_seq_pad_mask(const int32_t *lens, int64_t B, int64_t T, vox_device device, vox_tensor **out) {
  int32_t *m = malloc((size_t)(B * T > 0 ? B * T : 1) * sizeof *m);
  if (!m) return vox_errorf(VOX_ERR_NOMEM, "pad mask: out of memory");
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) m[b * T + t] = t >= lens[b];
  vox_status st = vox_seq_i32(m, 3, (int64_t[]){B, T, 1}, device, out);
  free(m);
  return st;
}

vox_status vox_seq_gather_rows(vox_tensor *x, const int32_t *rows, int ndim, const int64_t *dims, vox_tensor **out) {
  *out = NULL;
  int64_t d = x->shape[x->ndim - 1];
  vox_tensor *flat = NULL, *idx = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, vox_op_reshape(x, 2, (int64_t[]){vox_tensor_numel(x) / (d ? d : 1), d}, &flat), done);
  VOX_CHECK_GOTO(st, vox_seq_i32(rows, ndim, dims, x->device, &idx), done);
  st = vox_op_embedding(flat, idx, out);
done:
  vox_tensor_release(flat);
  vox_tensor_release(idx);
  return st;
}
