/* Parameter structs passed with each kernel id (see kernels.def). Shared by the op layer and every backend,
 * so CPU and CUDA kernels read exactly the same description of the work. */
#ifndef VOX_CORE_KERNEL_PARAMS_H
#define VOX_CORE_KERNEL_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct vox_fill_params { double value; } vox_fill_params;

typedef enum vox_rng_dist { VOX_RNG_UNIFORM, VOX_RNG_NORMAL, VOX_RNG_BERNOULLI } vox_rng_dist;
/* Element i of the (contiguous) output draws from counter (offset + i) of `seed`: results do not depend
 * on thread count or device. uniform: [a, b); normal: mean a, std b; bernoulli: P(1) = a. */
typedef struct vox_rng_params {
  uint64_t seed, offset;
  vox_rng_dist dist;
  double a, b;
} vox_rng_params;

typedef enum vox_binary_op {
  VOX_BIN_ADD, VOX_BIN_SUB, VOX_BIN_MUL, VOX_BIN_DIV, VOX_BIN_MAX, VOX_BIN_MIN, VOX_BIN_POW,
  VOX_BIN_EQ, VOX_BIN_NE, VOX_BIN_LT, VOX_BIN_LE, VOX_BIN_GT, VOX_BIN_GE /* comparisons give 1/0 */
} vox_binary_op;
typedef struct vox_binary_params { vox_binary_op op; } vox_binary_params;

typedef enum vox_unary_op {
  VOX_UN_NEG, VOX_UN_EXP, VOX_UN_LOG, VOX_UN_SQRT, VOX_UN_RSQRT, VOX_UN_ABS, VOX_UN_SIGN, VOX_UN_TANH,
  VOX_UN_SIGMOID, VOX_UN_RELU, VOX_UN_GELU_ERF, VOX_UN_GELU_TANH, VOX_UN_SILU, VOX_UN_SQUARE,
  VOX_UN_RECIP, VOX_UN_SIN, VOX_UN_COS,
  VOX_UN_AFFINE,     /* alpha * x + beta */
  VOX_UN_POW_SCALAR, /* x ^ alpha */
  VOX_UN_CLAMP       /* min(max(x, alpha), beta) */
} vox_unary_op;
typedef struct vox_unary_params { vox_unary_op op; double alpha, beta; } vox_unary_params;

/* Element i of the (contiguous) output, in row-major order, is kept when uniform(seed, offset + i) >= p
 * (vox_rng_uniform_at) and scaled by 1/(1-p); backward runs the same kernel on dy with the same params. */
typedef struct vox_dropout_params { uint64_t seed, offset; float p; } vox_dropout_params;

typedef enum vox_reduce_op { VOX_RED_SUM, VOX_RED_MEAN, VOX_RED_MAX, VOX_RED_MIN, VOX_RED_SUMSQ } vox_reduce_op;
/* Reduces the dims flagged in `dims` (bit d = dim d); out has the input's ndim with those dims of size 1. */
typedef struct vox_reduce_params { vox_reduce_op op; uint32_t dims; } vox_reduce_params;
/* out (i32) has the input's ndim with `dim` of size 1; ties go to the first index, NaN counts as extreme. */
typedef struct vox_arg_reduce_params { bool is_max; int dim; } vox_arg_reduce_params;

typedef struct vox_softmax_params { bool log; } vox_softmax_params;

/* Rows whose target equals ignore_index give loss 0 and no gradient. label_smoothing eps mixes the
 * one-hot target with the uniform distribution: loss = (1-eps)*nll + eps*mean_v(-logp_v). */
typedef struct vox_cross_entropy_params { int32_t ignore_index; float label_smoothing; } vox_cross_entropy_params;

/* CTC (kernels.def CTC_LOSS*): operands are contiguous, lengths and labels already validated by the op. */
typedef struct vox_ctc_params { int32_t blank; } vox_ctc_params;

/* Batched GEMM over the leading dims (already broadcast to out's batch shape by strides, 0 where broadcast):
 * out[..., m, n] = alpha * sum_k op(a)[..., m, k] * op(b)[..., k, n] + beta * out[..., m, n]. */
typedef struct vox_matmul_params { bool trans_a, trans_b; float alpha, beta; } vox_matmul_params;

typedef struct vox_index_params { int dim; } vox_index_params;

typedef struct vox_norm_params { float eps; } vox_norm_params;

/* HF rotate_half convention on the last `rotary_dim` features of x [B, H, T, D]; positions i32 [B, T].
 * inv_freq_j = theta^(-2j/rotary_dim). inverse rotates by -angle (the backward). */
typedef struct vox_rope_params { float theta; int rotary_dim; bool inverse; } vox_rope_params;

/* q [B, Hq, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv], Hq % Hkv == 0 (GQA).
 * Key s is visible to query t when: s < kv_len[b] (if kv_lens given), and if causal
 * s <= t + causal_offset, and if chunk_size > 0 (block streaming) s / chunk < (t + causal_offset) / chunk + 1
 * combined with causal as a chunk-causal mask. `bias` (optional) is added to the scores, broadcast over
 * [B, H, T, S]. Fully masked rows give zero output. */
typedef struct vox_attention_params {
  float scale;
  bool causal;
  int64_t causal_offset;
  int64_t chunk_size;
  bool has_kv_lens, has_bias;
} vox_attention_params;

typedef struct vox_conv1d_params { int stride, padding, dilation, groups; } vox_conv1d_params;

typedef struct vox_adamw_params {
  float lr, beta1, beta2, eps, weight_decay;
  float bias_correction1, bias_correction2; /* 1 - beta^t */
  float grad_scale;                         /* applied to grad first (accumulation / loss scaling) */
} vox_adamw_params;
/* ADAMW_MULTI_STEP (multi-tensor apply): tensor i is updated exactly as ADAMW_STEP would update it with lr[i] and
 * weight_decay[i]; the other fields as in vox_adamw_params. All tensors contiguous f32 on one device. */
struct vox_tensor;
typedef struct vox_adamw_multi_params {
  int n;
  struct vox_tensor *const *grads, *const *params, *const *exp_avg, *const *exp_avg_sq;
  const float *lr, *weight_decay;
  float beta1, beta2, eps, bias_correction1, bias_correction2, grad_scale;
} vox_adamw_multi_params;
typedef struct vox_sgd_params { float lr, momentum, weight_decay, grad_scale; bool nesterov; } vox_sgd_params;

#endif
