/* CTC loss (Graves 2006) per sample, as torch's ctc_loss(log_softmax(logits), ..., reduction='none',
 * zero_infinity=True): validates every operand on the host, runs CTC_LOSS and records CTC_LOSS_BACKWARD. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/ops.h"

typedef struct ctc_ctx {
  int32_t blank;
} ctc_ctx;

/* saved: {logp f32 [B,T,C], targets i32 [B,S], input_lens i32 [B], target_lens i32 [B], alpha f32 [B,T,2S+1]} */
static vox_status ctc_backward(vox_node *node, vox_tensor *g, vox_tensor **grad_in) {
  if (!vox_node_needs_grad(node, 0)) return VOX_OK;
  const ctc_ctx *c = (const ctc_ctx *)node->ctx;
  const vox_edge *e = &node->inputs[0];
  vox_tensor *dloss = NULL;
  /* The kernels read dense operands: the upstream gradient may be an expanded (stride-0) view. */
  vox_status st = vox_tensor_contiguous(g, &dloss);
  if (st == VOX_OK) st = vox_tensor_empty(e->dtype, node->saved[0]->device, e->ndim, e->shape, &grad_in[0]);
  if (st == VOX_OK) {
    vox_ctc_params p = {.blank = c->blank};
    vox_kernel_args a = {.n_in = 6,
                         .n_out = 1,
                         .in = {node->saved[0], node->saved[1], node->saved[2], node->saved[3], node->saved[4], dloss},
                         .out = {grad_in[0]},
                         .params = &p};
    st = vox_kernel_run("ctc_loss backward", VOX_K_CTC_LOSS_BACKWARD, &a);
  }
  vox_tensor_release(dloss);
  return st;
}

/* Checks an i32 tensor of the expected shape and copies it to host memory (numel entries, caller frees). */
static vox_status read_ids(const char *what, vox_tensor *t, int ndim, const int64_t *shape, const char *expect,
                           int32_t **host) {
  char b[96];
  *host = NULL;
  if (!t) return vox_errorf(VOX_ERR_INVALID, "ctc_loss: %s is NULL", what);
  if (t->dtype != VOX_I32)
    return vox_errorf(VOX_ERR_DTYPE, "ctc_loss: %s %s must be i32", what, vox_tensor_describe(t, b, sizeof b));
  bool ok = t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
  if (!ok)
    return vox_errorf(VOX_ERR_SHAPE, "ctc_loss: %s %s: expected %s", what, vox_tensor_describe(t, b, sizeof b),
                      expect);
  int64_t n = vox_tensor_numel(t);
  *host = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
  if (!*host) return vox_errorf(VOX_ERR_NOMEM, "ctc_loss: out of memory reading %s", what);
  vox_status st = vox_tensor_read_i32(t, *host);
  if (st != VOX_OK) {
    free(*host);
    *host = NULL;
  }
  return st;
}

/* Every label of every row, and both lengths, against the limits the kernels rely on. */
static vox_status check_values(const int32_t *tg, const int32_t *il, const int32_t *tl, int64_t B, int64_t T,
                               int64_t S, int64_t C, int32_t blank) {
  for (int64_t b = 0; b < B; b++) {
    if (il[b] < 0 || il[b] > T)
      return vox_errorf(VOX_ERR_INDEX, "ctc_loss: input_lens[%lld] = %d outside [0, T=%lld]", (long long)b, il[b],
                        (long long)T);
    if (tl[b] < 0 || tl[b] > S)
      return vox_errorf(VOX_ERR_INDEX, "ctc_loss: target_lens[%lld] = %d outside [0, S=%lld]", (long long)b, tl[b],
                        (long long)S);
    for (int64_t j = 0; j < tl[b]; j++) {
      int32_t v = tg[b * S + j];
      if (v < 0 || v >= C)
        return vox_errorf(VOX_ERR_INDEX, "ctc_loss: targets[%lld, %lld] = %d outside [0, C=%lld)", (long long)b,
                          (long long)j, v, (long long)C);
      if (v == blank)
        return vox_errorf(VOX_ERR_INDEX, "ctc_loss: targets[%lld, %lld] = %d is the blank label", (long long)b,
                          (long long)j, v);
    }
  }
  return VOX_OK;
}

vox_status vox_op_ctc_loss(vox_tensor *logits, vox_tensor *targets, vox_tensor *input_lens, vox_tensor *target_lens,
                           int32_t blank, vox_tensor **out) {
  char b1[96];
  *out = NULL;
  if (!logits) return vox_errorf(VOX_ERR_INVALID, "ctc_loss: logits is NULL");
  if (!vox_dtype_is_float(logits->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "ctc_loss: logits %s must be f32 or bf16",
                      vox_tensor_describe(logits, b1, sizeof b1));
  if (logits->ndim != 3)
    return vox_errorf(VOX_ERR_SHAPE, "ctc_loss: logits %s: expected [B, T, C]",
                      vox_tensor_describe(logits, b1, sizeof b1));
  int64_t B = logits->shape[0], T = logits->shape[1], C = logits->shape[2];
  if (blank < 0 || blank >= C)
    return vox_errorf(VOX_ERR_INVALID, "ctc_loss: blank %d outside [0, C=%lld) of logits %s", blank, (long long)C,
                      vox_tensor_describe(logits, b1, sizeof b1));
  if (!targets) return vox_errorf(VOX_ERR_INVALID, "ctc_loss: targets is NULL");
  if (targets->ndim != 2 || targets->shape[0] != B)
    return vox_errorf(VOX_ERR_SHAPE, "ctc_loss: targets %s: expected i32 [B=%lld, S]",
                      vox_tensor_describe(targets, b1, sizeof b1), (long long)B);
  int64_t S = targets->shape[1], ext = 2 * S + 1;
  char expect_t[64], expect_b[64];
  snprintf(expect_t, sizeof expect_t, "i32 [B=%lld, S]", (long long)B);
  snprintf(expect_b, sizeof expect_b, "i32 [B=%lld]", (long long)B);
  int32_t *tg = NULL, *il = NULL, *tl = NULL;
  vox_status st = read_ids("targets", targets, 2, targets->shape, expect_t, &tg);
  if (st == VOX_OK) st = read_ids("input_lens", input_lens, 1, &B, expect_b, &il);
  if (st == VOX_OK) st = read_ids("target_lens", target_lens, 1, &B, expect_b, &tl);
  if (st == VOX_OK) st = check_values(tg, il, tl, B, T, S, C, blank);

  /* The kernels take dense operands on the logits' device; the id tensors are rebuilt from the validated host
   * copies, so lengths and labels may live anywhere and the device never sees a value that was not checked. */
  vox_device dev = logits->device;
  vox_tensor *x = NULL, *tg_d = NULL, *il_d = NULL, *tl_d = NULL, *loss = NULL, *logp = NULL, *alpha = NULL;
  int64_t shape_lp[3] = {B, T, C}, shape_a[3] = {B, T, ext};
  if (st == VOX_OK) st = vox_tensor_contiguous(logits, &x);
  if (st == VOX_OK) st = vox_tensor_from_host(VOX_I32, dev, 2, targets->shape, tg, &tg_d);
  if (st == VOX_OK) st = vox_tensor_from_host(VOX_I32, dev, 1, &B, il, &il_d);
  if (st == VOX_OK) st = vox_tensor_from_host(VOX_I32, dev, 1, &B, tl, &tl_d);
  if (st == VOX_OK) st = vox_tensor_empty(VOX_F32, dev, 1, &B, &loss);
  if (st == VOX_OK) st = vox_tensor_empty(VOX_F32, dev, 3, shape_lp, &logp);
  if (st == VOX_OK) st = vox_tensor_empty(VOX_F32, dev, 3, shape_a, &alpha);
  if (st == VOX_OK) {
    vox_ctc_params p = {.blank = blank};
    vox_kernel_args a = {.n_in = 4, .n_out = 3, .in = {x, tg_d, il_d, tl_d}, .out = {loss, logp, alpha}, .params = &p};
    char op[160];
    snprintf(op, sizeof op, "ctc_loss (logits %s)", vox_tensor_describe(logits, b1, sizeof b1));
    st = vox_kernel_run(op, VOX_K_CTC_LOSS, &a);
  }
  vox_node *node = NULL;
  if (st == VOX_OK) {
    vox_tensor *inputs[1] = {logits};
    st = vox_autograd_record("ctc_loss", loss, 1, inputs, ctc_backward, &node);
  }
  if (st == VOX_OK && node) {
    ctc_ctx c = {.blank = blank};
    memcpy(node->ctx, &c, sizeof c);
    vox_node_save(node, logp);
    vox_node_save(node, tg_d);
    vox_node_save(node, il_d);
    vox_node_save(node, tl_d);
    vox_node_save(node, alpha);
  }
  if (st == VOX_OK) *out = vox_tensor_retain(loss);
  free(tg);
  free(il);
  free(tl);
  vox_tensor_release(x);
  vox_tensor_release(tg_d);
  vox_tensor_release(il_d);
  vox_tensor_release(tl_d);
  vox_tensor_release(loss);
  vox_tensor_release(logp);
  vox_tensor_release(alpha);
  return st;
}
