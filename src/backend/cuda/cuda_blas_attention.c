/* Host side of the CUDA ATTENTION and ATTENTION_BACKWARD kernels: checks the operands, fills the plain
 * argument struct of kernels/flash_attn.h and picks the tensor-core kernel or the simple reference one. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../../kernels/flash_attn.h"
#include "backend/cuda/cuda_stream.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/tensor.h"

/* Attention runs on vox's compute stream, in order with every other kernel and with the stream-ordered allocator. */
static void *attn_stream(void) { return (void *)vox_cuda_compute_stream(); }

/* VOX_CUDA_ATTENTION=reference forces the simple kernels (tests compare both paths; a debugging aid). */
static bool force_reference(void) {
  const char *e = getenv("VOX_CUDA_ATTENTION");
  return e && strcmp(e, "reference") == 0;
}

static vox_status launch_status(int err, const char *k) {
  if (err == 0) return VOX_OK;
  return vox_errorf(VOX_ERR_DEVICE, "%s (cuda): %s", k, cudaGetErrorString((cudaError_t)err));
}

static bool unit_last(const vox_tensor *t) { return t->strides[3] == 1 || t->shape[3] == 1; }

static void strides3(const vox_tensor *t, int64_t *s) {
  s[0] = t->strides[0];
  s[1] = t->strides[1];
  s[2] = t->strides[2];
}

/* Checks q, k, v and the mask operands, and fills the shared part of the argument struct. */
static vox_status fill_common(const char *k, const vox_kernel_args *in, const vox_tensor *lens, const vox_tensor *bias,
                              vox_fa_args *a) {
  const vox_attention_params *p = in->params;
  const vox_tensor *q = in->in[0], *kk = in->in[1], *v = in->in[2];
  char b1[96];
  for (int i = 0; i < 3; i++) {
    const vox_tensor *t = in->in[i];
    if (t->dtype != q->dtype || !vox_dtype_is_float(t->dtype))
      return vox_errorf(VOX_ERR_DTYPE, "%s (cuda): q, k, v must share f32 or bf16, operand %d is %s", k, i,
                        vox_tensor_describe(t, b1, sizeof b1));
    if (!unit_last(t)) return vox_errorf(VOX_ERR_INVALID, "%s (cuda): operand %d needs unit stride along its last dim", k, i);
  }
  memset(a, 0, sizeof *a);
  a->bf16 = q->dtype == VOX_BF16;
  a->B = q->shape[0];
  a->Hq = q->shape[1];
  a->Hkv = kk->shape[1];
  a->T = q->shape[2];
  a->S = kk->shape[2];
  a->D = q->shape[3];
  a->Dv = v->shape[3];
  if (a->D > VOX_FA_REF_MAX_D || a->Dv > VOX_FA_REF_MAX_D)
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s (cuda): head dims %lld/%lld exceed %d", k, (long long)a->D,
                      (long long)a->Dv, VOX_FA_REF_MAX_D);
  if (a->Hkv < 1 || a->Hq % a->Hkv)
    return vox_errorf(VOX_ERR_SHAPE, "%s (cuda): %lld query heads for %lld kv heads", k, (long long)a->Hq, (long long)a->Hkv);
  a->scale = p->scale;
  a->causal = p->causal;
  a->causal_offset = p->causal_offset;
  a->chunk_size = p->chunk_size;
  if (lens) {
    if (lens->dtype != VOX_I32 || (lens->shape[0] > 1 && lens->strides[0] != 1))
      return vox_errorf(VOX_ERR_INVALID, "%s (cuda): kv_lens must be contiguous i32", k);
    a->kv_lens = vox_tensor_i32(lens);
  }
  if (bias) {
    if (bias->dtype != VOX_F32 || bias->ndim != 4)
      return vox_errorf(VOX_ERR_INVALID, "%s (cuda): bias must be f32 [B, H, T, S]", k);
    a->bias = vox_tensor_f32(bias);
    for (int d = 0; d < 4; d++) a->bias_str[d] = bias->strides[d];
  }
  a->q = vox_tensor_data(q);
  a->k = vox_tensor_data(kk);
  a->v = vox_tensor_data(v);
  strides3(q, a->q_str);
  strides3(kk, a->k_str);
  strides3(v, a->v_str);
  return VOX_OK;
}

static bool tc_path(const vox_fa_args *a, int backward) { return !force_reference() && vox_fa_tc_supported(a, backward); }

/* in = {q, k, v, kv_lens|NULL, bias|NULL} -> out = {o [B,Hq,T,Dv] contiguous, lse [B,Hq,T] f32} */
static vox_status cuda_attention(const vox_kernel_args *in) {
  vox_fa_args a;
  VOX_TRY(fill_common("ATTENTION", in, in->in[3], in->in[4], &a));
  vox_tensor *o = in->out[0], *lse = in->out[1];
  if (o->dtype != in->in[0]->dtype || !vox_tensor_is_contiguous(o) || lse->dtype != VOX_F32 ||
      !vox_tensor_is_contiguous(lse))
    return vox_errorf(VOX_ERR_INVALID, "ATTENTION (cuda): o must be contiguous in q's dtype and lse contiguous f32");
  a.o = vox_tensor_data(o);
  a.lse = vox_tensor_f32(lse);
  int err = tc_path(&a, 0) ? vox_fa_tc_forward(&a, attn_stream()) : vox_fa_ref_forward(&a, attn_stream());
  return launch_status(err, "ATTENTION");
}
VOX_REGISTER_KERNEL(VOX_CUDA, ATTENTION, cuda_attention)

/* `t` in `dtype` with unit last stride: t itself (retained) or a converted copy. */
static vox_status in_dtype(const vox_tensor *t, vox_dtype dtype, vox_tensor **out) {
  if (t->dtype == dtype && unit_last(t)) {
    *out = vox_tensor_retain((vox_tensor *)t);
    return VOX_OK;
  }
  VOX_TRY(vox_tensor_empty(dtype, t->device, t->ndim, t->shape, out));
  vox_status st = vox_tensor_copy_(*out, t);
  if (st != VOX_OK) vox_tensor_drop(out);
  return st;
}

/* in = {q, k, v, o, lse, do, kv_lens|NULL, bias|NULL} -> out = {dq, dk, dv} (contiguous, any may be NULL) */
static vox_status cuda_attention_backward(const vox_kernel_args *in) {
  vox_fa_args a;
  VOX_TRY(fill_common("ATTENTION_BACKWARD", in, in->in[6], in->in[7], &a));
  const vox_tensor *q = in->in[0], *lse = in->in[4];
  vox_tensor *dq = in->out[0], *dk = in->out[1], *dv = in->out[2];
  for (int i = 0; i < 3; i++) {
    const vox_tensor *g = in->out[i];
    if (g && (g->dtype != q->dtype || !vox_tensor_is_contiguous(g)))
      return vox_errorf(VOX_ERR_INVALID, "ATTENTION_BACKWARD (cuda): gradient %d must be contiguous %s", i,
                        vox_dtype_name(q->dtype));
  }
  if (lse->dtype != VOX_F32 || !vox_tensor_is_contiguous(lse))
    return vox_errorf(VOX_ERR_INVALID, "ATTENTION_BACKWARD (cuda): lse must be contiguous f32");
  if (!dq && !dk && !dv) return VOX_OK;
  /* The output gradient may arrive in another dtype (an f32 loss path above a bf16 attention). */
  vox_tensor *o = NULL, *dout = NULL, *delta = NULL, *dq_acc = NULL;
  vox_status st = in_dtype(in->in[3], q->dtype, &o);
  if (st == VOX_OK) st = in_dtype(in->in[5], q->dtype, &dout);
  if (st == VOX_OK) st = vox_tensor_empty(VOX_F32, VOX_CUDA, 3, (int64_t[]){a.B, a.Hq, a.T}, &delta);
  if (st != VOX_OK) goto done;
  a.o_in = vox_tensor_data(o);
  a.dout = vox_tensor_data(dout);
  strides3(o, a.o_str);
  strides3(dout, a.do_str);
  a.lse_in = vox_tensor_f32(lse);
  a.delta = vox_tensor_f32(delta);
  a.dq = dq ? vox_tensor_data(dq) : NULL;
  a.dk = dk ? vox_tensor_data(dk) : NULL;
  a.dv = dv ? vox_tensor_data(dv) : NULL;
  if (tc_path(&a, 1)) {
    /* The tensor-core backward accumulates dQ in f32 with atomics across key blocks, then converts. */
    st = vox_tensor_zeros(VOX_F32, VOX_CUDA, 4, (int64_t[]){a.B, a.Hq, a.T, a.D}, &dq_acc);
    if (st != VOX_OK) goto done;
    a.dq_acc = vox_tensor_f32(dq_acc);
    st = launch_status(vox_fa_tc_backward(&a, attn_stream()), "ATTENTION_BACKWARD");
  } else {
    st = launch_status(vox_fa_ref_backward(&a, attn_stream()), "ATTENTION_BACKWARD");
  }
done:
  vox_tensor_release(o);
  vox_tensor_release(dout);
  vox_tensor_release(delta);
  vox_tensor_release(dq_acc);
  return st;
}
VOX_REGISTER_KERNEL(VOX_CUDA, ATTENTION_BACKWARD, cuda_attention_backward)
