/* Scaled dot-product attention with GQA and causal / offset / padding / chunk masks and an additive bias:
 * checks, the ATTENTION kernel (saving only the output and per-row log-sum-exp) and the backward kernel.
 * Kernel operand slots are fixed: in[3] = kv_lens or NULL, in[4] = bias (expanded to [B,Hq,T,S]) or NULL. */
#include <math.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/ops.h"

/* Kernels read q/k/v with any batch/head/row strides but need unit stride along the feature dim. */
static vox_status prepare(vox_tensor *t, vox_tensor **out) {
  bool unit = t->strides[3] == 1 || t->shape[3] == 1;
  if (unit && (t->shape[2] == 1 || t->strides[2] >= t->shape[3])) {
    *out = vox_tensor_retain(t);
    return VOX_OK;
  }
  return vox_tensor_contiguous(t, out);
}

/* saved: q, k, v, o (detached), lse, kv_lens or NULL, bias or NULL */
static vox_status attention_backward(vox_node *node, vox_tensor *grad_out, vox_tensor **grad_in) {
  vox_attention_params p;
  memcpy(&p, node->ctx, sizeof p);
  vox_tensor *q = node->saved[0], *k = node->saved[1], *v = node->saved[2];
  vox_tensor *dout = NULL, *dq = NULL, *dk = NULL, *dv = NULL;
  vox_status st = prepare(grad_out, &dout);
  if (st == VOX_OK && vox_node_needs_grad(node, 0)) st = vox_tensor_empty(q->dtype, q->device, 4, q->shape, &dq);
  if (st == VOX_OK && vox_node_needs_grad(node, 1)) st = vox_tensor_empty(k->dtype, k->device, 4, k->shape, &dk);
  if (st == VOX_OK && vox_node_needs_grad(node, 2)) st = vox_tensor_empty(v->dtype, v->device, 4, v->shape, &dv);
  if (st == VOX_OK) {
    vox_kernel_args a = {.n_in = 8,
                         .n_out = 3,
                         .in = {q, k, v, node->saved[3], node->saved[4], dout, node->saved[5], node->saved[6]},
                         .out = {dq, dk, dv},
                         .params = &p};
    st = vox_kernel_run("attention backward", VOX_K_ATTENTION_BACKWARD, &a);
  }
  vox_tensor_release(dout);
  if (st != VOX_OK) {
    vox_tensor_release(dq);
    vox_tensor_release(dk);
    vox_tensor_release(dv);
    return st;
  }
  grad_in[0] = dq;
  grad_in[1] = dk;
  grad_in[2] = dv;
  return VOX_OK;
}

static vox_status check_operands(vox_tensor *q, vox_tensor *k, vox_tensor *v, const vox_attention_mask *mask) {
  char b1[96], b2[96], b3[96];
  const char *qs = vox_tensor_describe(q, b1, sizeof b1), *ks = vox_tensor_describe(k, b2, sizeof b2),
             *vs = vox_tensor_describe(v, b3, sizeof b3);
  if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4)
    return vox_errorf(VOX_ERR_SHAPE, "attention: q %s, k %s, v %s must all be 4-D [B, H, T, D]", qs, ks, vs);
  if (!vox_dtype_is_float(q->dtype) || k->dtype != q->dtype || v->dtype != q->dtype)
    return vox_errorf(VOX_ERR_DTYPE, "attention: q %s, k %s, v %s must share one float dtype", qs, ks, vs);
  if (k->device != q->device || v->device != q->device)
    return vox_errorf(VOX_ERR_DEVICE, "attention: q, k, v must be on one device");
  if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0])
    return vox_errorf(VOX_ERR_SHAPE, "attention: batch sizes differ: q %s, k %s, v %s", qs, ks, vs);
  if (k->shape[1] != v->shape[1] || k->shape[2] != v->shape[2])
    return vox_errorf(VOX_ERR_SHAPE, "attention: k %s and v %s need the same heads and length", ks, vs);
  if (k->shape[1] < 1 || q->shape[1] % k->shape[1])
    return vox_errorf(VOX_ERR_SHAPE, "attention: query heads %lld are not a multiple of kv heads %lld (q %s, k %s)",
                      (long long)q->shape[1], (long long)k->shape[1], qs, ks);
  if (q->shape[3] != k->shape[3])
    return vox_errorf(VOX_ERR_SHAPE, "attention: q %s and k %s head dims differ", qs, ks);
  if (q->shape[3] < 1 || v->shape[3] < 1)
    return vox_errorf(VOX_ERR_SHAPE, "attention: empty head dim in q %s or v %s", qs, vs);
  if (!mask) return VOX_OK;
  if (mask->chunk_size < 0)
    return vox_errorf(VOX_ERR_INVALID, "attention: chunk_size %lld must be >= 0", (long long)mask->chunk_size);
  if (mask->kv_lens) {
    const vox_tensor *l = mask->kv_lens;
    if (l->dtype != VOX_I32 || l->ndim != 1 || l->shape[0] != q->shape[0])
      return vox_errorf(VOX_ERR_SHAPE, "attention: kv_lens %s must be i32 [%lld] for q %s",
                        vox_tensor_describe(l, b2, sizeof b2), (long long)q->shape[0], qs);
    if (l->device != q->device) return vox_errorf(VOX_ERR_DEVICE, "attention: kv_lens on another device than q");
  }
  if (mask->bias) {
    const vox_tensor *bi = mask->bias;
    if (bi->dtype != VOX_F32 || bi->ndim > 4)
      return vox_errorf(VOX_ERR_SHAPE, "attention: bias %s must be f32 broadcastable to [B, H, T, S]",
                        vox_tensor_describe(bi, b2, sizeof b2));
    if (bi->device != q->device) return vox_errorf(VOX_ERR_DEVICE, "attention: bias on another device than q");
  }
  return VOX_OK;
}

vox_status vox_op_attention(vox_tensor *q, vox_tensor *k, vox_tensor *v, const vox_attention_mask *mask,
                            float scale, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  VOX_TRY(check_operands(q, k, v, mask));
  if (q->device != VOX_CPU && vox_matmul_precision(q->device) == VOX_PRECISION_BF16 && q->dtype == VOX_F32) {
    /* Mixed precision (core/backend.h): bf16 q/k/v through the differentiable cast, f32 output. The CPU
     * attention kernel is f32-only, so there the setting covers GEMMs alone. */
    vox_tensor *c[3] = {NULL, NULL, NULL}, *o16 = NULL;
    vox_tensor *in[3] = {q, k, v};
    vox_status st = VOX_OK;
    for (int i = 0; i < 3 && st == VOX_OK; i++) st = vox_op_cast(in[i], VOX_BF16, &c[i]);
    if (st == VOX_OK) st = vox_op_attention(c[0], c[1], c[2], mask, scale, &o16);
    if (st == VOX_OK) st = vox_op_cast(o16, VOX_F32, out);
    for (int i = 0; i < 3; i++) vox_tensor_release(c[i]);
    vox_tensor_release(o16);
    return st;
  }
  int64_t B = q->shape[0], Hq = q->shape[1], T = q->shape[2], D = q->shape[3], S = k->shape[2], Dv = v->shape[3];
  vox_attention_params p = {.scale = scale != 0 ? scale : (float)(1.0 / sqrt((double)D))};
  if (mask) {
    p.causal = mask->causal;
    p.causal_offset = mask->causal_offset;
    p.chunk_size = mask->chunk_size;
    p.has_kv_lens = mask->kv_lens != NULL;
    p.has_bias = mask->bias != NULL;
  }
  vox_tensor *qc = NULL, *kc = NULL, *vc = NULL, *lens = NULL, *bias = NULL, *o = NULL, *lse = NULL, *osave = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, prepare(q, &qc), fail);
  VOX_CHECK_GOTO(st, prepare(k, &kc), fail);
  VOX_CHECK_GOTO(st, prepare(v, &vc), fail);
  if (p.has_kv_lens) VOX_CHECK_GOTO(st, vox_tensor_contiguous(mask->kv_lens, &lens), fail);
  if (p.has_bias) {
    const int64_t full[4] = {B, Hq, T, S};
    st = vox_tensor_view_expand(mask->bias, 4, full, &bias);
    if (st != VOX_OK) {
      st = vox_errorf(VOX_ERR_SHAPE, "attention: bias %s does not broadcast to [%lld, %lld, %lld, %lld] (q %s)",
                      vox_tensor_describe(mask->bias, b1, sizeof b1), (long long)B, (long long)Hq, (long long)T,
                      (long long)S, vox_tensor_describe(q, b2, sizeof b2));
      goto fail;
    }
  }
  VOX_CHECK_GOTO(st, vox_tensor_empty(q->dtype, q->device, 4, (int64_t[]){B, Hq, T, Dv}, &o), fail);
  VOX_CHECK_GOTO(st, vox_tensor_empty(VOX_F32, q->device, 3, (int64_t[]){B, Hq, T}, &lse), fail);
  vox_kernel_args a = {.n_in = 5, .n_out = 2, .in = {qc, kc, vc, lens, bias}, .out = {o, lse}, .params = &p};
  VOX_CHECK_GOTO(st, vox_kernel_run("attention", VOX_K_ATTENTION, &a), fail);
  vox_node *node = NULL;
  VOX_CHECK_GOTO(st, vox_autograd_record("attention", o, 3, (vox_tensor *[]){q, k, v}, attention_backward, &node),
                 fail);
  if (node) {
    /* A detached view of the output: saving `o` itself would make a reference cycle through o->node. */
    st = vox_tensor_detach(o, &osave);
    if (st != VOX_OK) goto fail;
    memcpy(node->ctx, &p, sizeof p);
    vox_node_save(node, qc);
    vox_node_save(node, kc);
    vox_node_save(node, vc);
    vox_node_save(node, osave);
    vox_node_save(node, lse);
    node->saved[node->n_saved++] = lens ? vox_tensor_retain(lens) : NULL;
    node->saved[node->n_saved++] = bias ? vox_tensor_retain(bias) : NULL;
  }
  *out = o;
  o = NULL;
fail:
  vox_tensor_release(qc);
  vox_tensor_release(kc);
  vox_tensor_release(vc);
  vox_tensor_release(lens);
  vox_tensor_release(bias);
  vox_tensor_release(o);
  vox_tensor_release(lse);
  vox_tensor_release(osave);
  return st;
}
