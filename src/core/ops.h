/* The differentiable op set of vox: every function checks its operands, runs the device's kernel and, in grad
 * mode, records an autograd node. Results are new tensors owned by the caller (*out, refcount 1).
 *
 * Conventions: errors name the op and the offending shapes ("matmul: f32[2,3] @ f32[4,5]: inner dims 3 != 4");
 * `dim` may be negative; float ops take f32 (and bf16 where a backend supports it); index operands are i32.
 * Implementations live in src/core/ops/<group>.c, one group per file. */
#ifndef VOX_CORE_OPS_H
#define VOX_CORE_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rng.h"
#include "core/tensor.h"

/* ---- shape and views (ops/shape.c) -------------------------------------------------------------------- */
/* View when strides allow, else a copy; one entry of shape may be -1. */
vox_status vox_op_reshape(vox_tensor *x, int ndim, const int64_t *shape, vox_tensor **out);
vox_status vox_op_permute(vox_tensor *x, const int *perm, vox_tensor **out);
vox_status vox_op_transpose(vox_tensor *x, int dim0, int dim1, vox_tensor **out);
/* x[start:end:step] along dim (end clamped; negative start/end count from the end). */
vox_status vox_op_slice(vox_tensor *x, int dim, int64_t start, int64_t end, int64_t step, vox_tensor **out);
vox_status vox_op_expand(vox_tensor *x, int ndim, const int64_t *shape, vox_tensor **out);
vox_status vox_op_concat(int n, vox_tensor *const *xs, int dim, vox_tensor **out);
/* Splits into n parts of the given sizes along dim (views); outs[i] each owned by the caller. */
vox_status vox_op_split(vox_tensor *x, int dim, int n, const int64_t *sizes, vox_tensor **outs);
vox_status vox_op_contiguous(vox_tensor *x, vox_tensor **out);
vox_status vox_op_cast(vox_tensor *x, vox_dtype dtype, vox_tensor **out);
/* Sum of x reduced to `shape` (the inverse of broadcasting); used by backward of broadcasting ops. */
vox_status vox_op_sum_to(vox_tensor *x, int ndim, const int64_t *shape, vox_tensor **out);

/* ---- elementwise (ops/elementwise.c); binary ops broadcast with numpy rules ----------------------------- */
vox_status vox_op_add(vox_tensor *a, vox_tensor *b, vox_tensor **out);
vox_status vox_op_sub(vox_tensor *a, vox_tensor *b, vox_tensor **out);
vox_status vox_op_mul(vox_tensor *a, vox_tensor *b, vox_tensor **out);
vox_status vox_op_div(vox_tensor *a, vox_tensor *b, vox_tensor **out);
vox_status vox_op_maximum(vox_tensor *a, vox_tensor *b, vox_tensor **out);
vox_status vox_op_minimum(vox_tensor *a, vox_tensor *b, vox_tensor **out);
/* Comparisons give f32 1/0 and no gradient. */
vox_status vox_op_compare(vox_tensor *a, vox_tensor *b, int binary_op /* vox_binary_op */, vox_tensor **out);
/* alpha * x + beta */
vox_status vox_op_affine(vox_tensor *x, double alpha, double beta, vox_tensor **out);
vox_status vox_op_pow_scalar(vox_tensor *x, double p, vox_tensor **out);
vox_status vox_op_clamp(vox_tensor *x, double lo, double hi, vox_tensor **out);
vox_status vox_op_neg(vox_tensor *x, vox_tensor **out);
vox_status vox_op_exp(vox_tensor *x, vox_tensor **out);
vox_status vox_op_log(vox_tensor *x, vox_tensor **out);
vox_status vox_op_sqrt(vox_tensor *x, vox_tensor **out);
vox_status vox_op_rsqrt(vox_tensor *x, vox_tensor **out);
vox_status vox_op_abs(vox_tensor *x, vox_tensor **out);
vox_status vox_op_square(vox_tensor *x, vox_tensor **out);
vox_status vox_op_sin(vox_tensor *x, vox_tensor **out);
vox_status vox_op_cos(vox_tensor *x, vox_tensor **out);
vox_status vox_op_tanh(vox_tensor *x, vox_tensor **out);
vox_status vox_op_sigmoid(vox_tensor *x, vox_tensor **out);
vox_status vox_op_relu(vox_tensor *x, vox_tensor **out);
/* tanh_approx: the tanh formula (HF "gelu_new"/"gelu_pytorch_tanh"); else the exact erf form. */
vox_status vox_op_gelu(vox_tensor *x, bool tanh_approx, vox_tensor **out);
vox_status vox_op_silu(vox_tensor *x, vox_tensor **out);
/* silu(gate) * up, fused. */
vox_status vox_op_swiglu(vox_tensor *gate, vox_tensor *up, vox_tensor **out);
/* cond (i32 or f32, nonzero = true) ? a : b, broadcasting all three. */
vox_status vox_op_where(vox_tensor *cond, vox_tensor *a, vox_tensor *b, vox_tensor **out);
/* x with `value` where mask is nonzero (mask broadcasts to x). */
vox_status vox_op_masked_fill(vox_tensor *x, vox_tensor *mask, double value, vox_tensor **out);
/* Inverted dropout with probability p; identity when p == 0 or !training. Draws from rng. */
vox_status vox_op_dropout(vox_tensor *x, float p, bool training, vox_rng *rng, vox_tensor **out);
/* Straight-through estimator: forward gives q, backward passes the gradient to x unchanged (q gets none). */
vox_status vox_op_straight_through(vox_tensor *x, vox_tensor *q, vox_tensor **out);

/* ---- reductions (ops/reduce.c) ------------------------------------------------------------------------- */
/* n_dims == 0 reduces over all dims. */
vox_status vox_op_sum(vox_tensor *x, int n_dims, const int *dims, bool keepdim, vox_tensor **out);
vox_status vox_op_mean(vox_tensor *x, int n_dims, const int *dims, bool keepdim, vox_tensor **out);
/* Max values (gradient flows to the first maximal element). */
vox_status vox_op_max(vox_tensor *x, int dim, bool keepdim, vox_tensor **out);
vox_status vox_op_argmax(vox_tensor *x, int dim, vox_tensor **out); /* i32, no grad, dim removed */
vox_status vox_op_argmin(vox_tensor *x, int dim, vox_tensor **out);

/* ---- softmax and losses (ops/softmax.c, ops/loss.c) ---------------------------------------------------- */
vox_status vox_op_softmax(vox_tensor *x, int dim, vox_tensor **out);
vox_status vox_op_log_softmax(vox_tensor *x, int dim, vox_tensor **out);
/* logits [..., V], targets i32 [...]; mean over rows whose target != ignore_index (0 if none). Fused: the
 * backward recomputes softmax from logits and the saved log-sum-exp, never storing probabilities. */
vox_status vox_op_cross_entropy(vox_tensor *logits, vox_tensor *targets, int32_t ignore_index,
                                float label_smoothing, vox_tensor **out);
/* CTC loss per sample: logits f32/bf16 [B, T, C] (log-softmax is applied inside, over C), targets i32 [B, S] (row b's
 * first target_lens[b] entries are its labels, each in [0, C) and != blank; the rest is padding and ignored),
 * input_lens and target_lens i32 [B] (host-readable tensors on any device; 0 <= input_lens[b] <= T,
 * 0 <= target_lens[b] <= S). out: f32 [B], the negative log-likelihood of each row (not normalised). A row whose
 * labels cannot fit in its frames (infeasible) gets loss 0 and zero gradient (torch's zero_infinity).
 * Differentiable in logits; frames t >= input_lens[b] get zero gradient. (ops/ctc.c) */
vox_status vox_op_ctc_loss(vox_tensor *logits, vox_tensor *targets, vox_tensor *input_lens, vox_tensor *target_lens,
                           int32_t blank, vox_tensor **out);
vox_status vox_op_mse_loss(vox_tensor *pred, vox_tensor *target, vox_tensor **out); /* mean */
vox_status vox_op_l1_loss(vox_tensor *pred, vox_tensor *target, vox_tensor **out);  /* mean */

/* ---- linear algebra and indexing (ops/matmul.c, ops/index.c) ------------------------------------------- */
/* a [..., M, K] (or [..., K, M] if trans_a) @ b [..., K, N] (or [..., N, K] if trans_b); batch dims
 * broadcast; 1-D operands are not promoted. */
vox_status vox_op_matmul(vox_tensor *a, vox_tensor *b, bool trans_a, bool trans_b, vox_tensor **out);
/* x [..., in] @ w[out, in]^T + b[out] (b may be NULL). */
vox_status vox_op_linear(vox_tensor *x, vox_tensor *w, vox_tensor *b, vox_tensor **out);
/* weight [V, D], ids i32 [...] -> [..., D]; an id outside [0, V) is VOX_ERR_INDEX naming it. */
vox_status vox_op_embedding(vox_tensor *weight, vox_tensor *ids, vox_tensor **out);
vox_status vox_op_gather(vox_tensor *x, int dim, vox_tensor *index, vox_tensor **out);
/* x with src added at index along dim (torch.Tensor.scatter_add semantics). */
vox_status vox_op_scatter_add(vox_tensor *x, int dim, vox_tensor *index, vox_tensor *src, vox_tensor **out);
/* x [N, D], c [K, D] -> squared Euclidean distances [N, K] (VQ nearest-code search). */
vox_status vox_op_pairwise_sqdist(vox_tensor *x, vox_tensor *c, vox_tensor **out);

/* ---- normalisation and positions (ops/norm.c, ops/rope.c) ---------------------------------------------- */
/* Over the last dim, statistics in f32. weight may be NULL (no affine). */
vox_status vox_op_rms_norm(vox_tensor *x, vox_tensor *weight, float eps, vox_tensor **out);
vox_status vox_op_layer_norm(vox_tensor *x, vox_tensor *weight, vox_tensor *bias, float eps, vox_tensor **out);
/* x [B, H, T, D]; positions i32 [B, T] or [T]; rotary_dim 0 means D. */
vox_status vox_op_rope(vox_tensor *x, vox_tensor *positions, float theta, int rotary_dim, vox_tensor **out);

/* ---- attention and convolution (ops/attention.c, ops/conv.c) ------------------------------------------- */
typedef struct vox_attention_mask {
  bool causal;
  int64_t causal_offset; /* absolute position of query 0 relative to key 0 (KV-cache decoding) */
  int64_t chunk_size;    /* > 0: streaming chunk mask (see core/kernel_params.h) */
  vox_tensor *kv_lens;   /* i32 [B] valid keys per batch row (padding), or NULL */
  vox_tensor *bias;      /* additive f32, broadcastable to [B, H, T, S], or NULL (no gradient) */
} vox_attention_mask;
/* q [B, Hq, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv] -> [B, Hq, T, Dv]; scale 0 means 1/sqrt(D). */
vox_status vox_op_attention(vox_tensor *q, vox_tensor *k, vox_tensor *v, const vox_attention_mask *mask,
                            float scale, vox_tensor **out);
/* x [B, Cin, L], w [Cout, Cin/groups, K], b [Cout] or NULL. */
vox_status vox_op_conv1d(vox_tensor *x, vox_tensor *w, vox_tensor *b, int stride, int padding, int dilation,
                         int groups, vox_tensor **out);
/* x [B, Cin, L], w [Cin, Cout/groups, K] (PyTorch layout), b [Cout] or NULL;
 * L_out = (L-1)*stride - 2*padding + dilation*(K-1) + output_padding + 1. */
vox_status vox_op_conv_transpose1d(vox_tensor *x, vox_tensor *w, vox_tensor *b, int stride, int padding,
                                   int output_padding, int dilation, int groups, vox_tensor **out);

/* ---- audio (ops/mel.c) --------------------------------------------------------------------------------- */
/* Mel filter matrix [n_mels, n_fft/2+1] (librosa/Whisper "slaney" scale and area norm when slaney is true;
 * HTK scale without norm otherwise), on the CPU. */
vox_status vox_mel_filters_new(int sample_rate, int n_fft, int n_mels, float fmin, float fmax, bool slaney,
                               vox_tensor **out);
/* power spectrum [..., n_freq] @ filters^T -> [..., n_mels]; differentiable in spec. */
vox_status vox_op_mel_filterbank(vox_tensor *spec, vox_tensor *filters, vox_tensor **out);

#endif
