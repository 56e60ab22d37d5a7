/* The interface between the CUDA attention kernels (kernels/flash_attn*.cu) and their host side
 * (src/backend/cuda/cuda_blas_attention.c): plain pointers, sizes and strides, usable from C and CUDA. */
#ifndef VOX_KERNELS_FLASH_ATTN_H
#define VOX_KERNELS_FLASH_ATTN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One attention call. Strides are in elements, for dims (batch, head, row); the feature dim is unit-stride.
 * Masks follow core/kernel_params.h (vox_attention_params): key s is visible to query t when s < kv_lens[b]
 * (if given) and s < chunk end of t + causal_offset (if chunk_size > 0) else s <= t + causal_offset (if
 * causal). lse is f32 [B, Hq, T], -inf on fully masked rows, whose output (and gradients) are zero. */
typedef struct vox_fa_args {
  int bf16; /* q, k, v, o, dout, dq, dk, dv are bf16 (else f32) */
  int64_t B, Hq, Hkv, T, S, D, Dv;
  float scale;
  int causal;
  int64_t causal_offset, chunk_size;
  const int32_t *kv_lens;  /* [B] on the device, or NULL */
  const float *bias;       /* element [0,0,0,0] of the [B, Hq, T, S] view, or NULL */
  int64_t bias_str[4];
  const void *q, *k, *v;
  int64_t q_str[3], k_str[3], v_str[3];
  /* forward outputs (o contiguous [B, Hq, T, Dv]) */
  void *o;
  float *lse;
  /* backward inputs */
  const void *o_in, *dout;
  int64_t o_str[3], do_str[3];
  const float *lse_in;
  float *delta; /* scratch [B, Hq, T]: rowsum(dout * o) */
  float *dq_acc; /* scratch [B, Hq, T, D] f32 for the tensor-core backward's atomic dQ (else unused) */
  /* backward outputs, contiguous, each may be NULL */
  void *dq, *dk, *dv;
} vox_fa_args;

/* All return a cudaError_t value (0 on success) after queueing the work on `stream`. */

/* Any head dim up to VOX_FA_REF_MAX_D, f32 or bf16, bias allowed: a simple kernel (scalar FMAs, one warp per
 * query row), the reference the tensor-core kernels are tested against and the fallback for other shapes. */
#define VOX_FA_REF_MAX_D 256
int vox_fa_ref_forward(const vox_fa_args *a, void *stream);
int vox_fa_ref_backward(const vox_fa_args *a, void *stream);

/* bf16, D == Dv in {64, 128}, no bias: FlashAttention-2 style with mma.sync m16n8k16 (sm_80+).
 * vox_fa_tc_supported says whether a call can take this path. */
int vox_fa_tc_supported(const vox_fa_args *a, int backward);
int vox_fa_tc_forward(const vox_fa_args *a, void *stream);
int vox_fa_tc_backward(const vox_fa_args *a, void *stream);

#ifdef __cplusplus
}
#endif

#endif
