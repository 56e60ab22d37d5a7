/* CUDA glue for CTC_LOSS and CTC_LOSS_BACKWARD: operand checks mirroring the CPU kernels (shapes, dtypes, density);
 * labels and lengths come from the op, which validated them on the host. Device code in kernels/ctc.cu. */
#include "backend/cuda/cuda_internal.h"

static vox_status check_ctc(const char *k, const vox_tensor *x, const vox_tensor *tg, const vox_tensor *il,
                            const vox_tensor *tl, const vox_tensor *alpha, int32_t blank) {
  if (x->ndim != 3 || tg->ndim != 2 || il->ndim != 1 || tl->ndim != 1 || alpha->ndim != 3)
    return vox_errorf(VOX_ERR_SHAPE,
                      "%s cuda kernel: logits [B,T,C], targets [B,S], lens [B], alpha [B,T,2S+1] expected", k);
  int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2], S = tg->shape[1];
  if (tg->shape[0] != B || il->shape[0] != B || tl->shape[0] != B || alpha->shape[0] != B || alpha->shape[1] != T ||
      alpha->shape[2] != 2 * S + 1)
    return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: operands disagree on B, T or S", k);
  VOX_TRY(vox_cuda_require_dense(k, x, -1, "logits"));
  VOX_TRY(vox_cuda_require_dense(k, tg, VOX_I32, "targets"));
  VOX_TRY(vox_cuda_require_dense(k, il, VOX_I32, "input_lens"));
  VOX_TRY(vox_cuda_require_dense(k, tl, VOX_I32, "target_lens"));
  VOX_TRY(vox_cuda_require_dense(k, alpha, VOX_F32, "alpha"));
  if (blank < 0 || blank >= C)
    return vox_errorf(VOX_ERR_INVALID, "%s cuda kernel: blank %d outside [0, %lld)", k, blank, (long long)C);
  return VOX_OK;
}

static vox_status cuda_ctc_loss(const vox_kernel_args *a) {
  const vox_ctc_params *p = a->params;
  const vox_tensor *x = a->in[0], *tg = a->in[1], *il = a->in[2], *tl = a->in[3];
  vox_tensor *loss = a->out[0], *logp = a->out[1], *alpha = a->out[2];
  VOX_TRY(check_ctc("ctc_loss", x, tg, il, tl, alpha, p->blank));
  VOX_TRY(vox_cuda_require_dense("ctc_loss", loss, VOX_F32, "loss"));
  VOX_TRY(vox_cuda_require_dense("ctc_loss", logp, VOX_F32, "logp"));
  VOX_TRY(vox_cuda_require_same_shape("ctc_loss", logp, x, "logp"));
  if (loss->ndim != 1 || loss->shape[0] != x->shape[0])
    return vox_errorf(VOX_ERR_SHAPE, "ctc_loss cuda kernel: loss f32 [B] expected");
  size_t nbytes = vox_cu_ctc_scratch_bytes(x->shape[0], tg->shape[1]);
  void *scratch = NULL;
  VOX_TRY(vox_cuda_scratch_alloc(nbytes ? nbytes : 8, &scratch));
  cudaError_t e = vox_cu_ctc_loss(vox_cuda_compute_stream(), vox_tensor_data(x), (int)x->dtype, vox_tensor_i32(tg),
                                  vox_tensor_i32(il), vox_tensor_i32(tl), vox_tensor_f32(loss), vox_tensor_f32(logp),
                                  vox_tensor_f32(alpha), scratch, x->shape[0], x->shape[1], x->shape[2], tg->shape[1],
                                  p->blank);
  vox_cuda_scratch_free(scratch, nbytes ? nbytes : 8);
  return vox_cuda_status(e, "ctc_loss");
}
VOX_REGISTER_KERNEL(VOX_CUDA, CTC_LOSS, cuda_ctc_loss)

static vox_status cuda_ctc_loss_backward(const vox_kernel_args *a) {
  const vox_ctc_params *p = a->params;
  const vox_tensor *logp = a->in[0], *tg = a->in[1], *il = a->in[2], *tl = a->in[3], *alpha = a->in[4],
                   *dloss = a->in[5];
  vox_tensor *dx = a->out[0];
  VOX_TRY(check_ctc("ctc_loss backward", logp, tg, il, tl, alpha, p->blank));
  VOX_TRY(vox_cuda_require_dense("ctc_loss backward", logp, VOX_F32, "logp"));
  VOX_TRY(vox_cuda_require_dense("ctc_loss backward", dloss, -1, "dloss"));
  VOX_TRY(vox_cuda_require_dense("ctc_loss backward", dx, -1, "dlogits"));
  VOX_TRY(vox_cuda_require_same_shape("ctc_loss backward", dx, logp, "dlogits"));
  if (dloss->ndim != 1 || dloss->shape[0] != logp->shape[0])
    return vox_errorf(VOX_ERR_SHAPE, "ctc_loss backward cuda kernel: dloss [B] expected");
  int64_t B = logp->shape[0], S = tg->shape[1];
  size_t nbytes = vox_cu_ctc_scratch_bytes(B, S);
  void *scratch = NULL;
  VOX_TRY(vox_cuda_scratch_alloc(nbytes ? nbytes : 8, &scratch));
  cudaError_t e = vox_cu_ctc_loss_backward(vox_cuda_compute_stream(), vox_tensor_f32(logp), vox_tensor_i32(tg),
                                           vox_tensor_i32(il), vox_tensor_i32(tl), vox_tensor_f32(alpha),
                                           vox_tensor_data(dloss), (int)dloss->dtype, vox_tensor_data(dx),
                                           (int)dx->dtype, scratch, B, logp->shape[1], logp->shape[2], S, p->blank);
  vox_cuda_scratch_free(scratch, nbytes ? nbytes : 8);
  return vox_cuda_status(e, "ctc_loss backward");
}
VOX_REGISTER_KERNEL(VOX_CUDA, CTC_LOSS_BACKWARD, cuda_ctc_loss_backward)
