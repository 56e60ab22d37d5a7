/* The interface between the CUDA host glue (C, src/backend/cuda) and the device code (the .cu files in kernels/): plain
 * descriptors of strided operands and the extern "C" launchers. Readable from C and C++ (no core headers). */
#ifndef VOX_BACKEND_CUDA_KERNELS_H
#define VOX_BACKEND_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VOX_CU_MAX_DIMS 8
#define VOX_CU_ITER_OPS 4
/* Element types, numbered as vox_dtype. */
enum { VOX_CU_F32 = 0, VOX_CU_BF16 = 1, VOX_CU_I32 = 2 };

/* Up to four operands iterated over one (coalesced) shape; operand 0 is the output. Element i (row-major over
 * `shape`) of operand k lives at data[k] + offset computed from strides[k] (in elements; 0 where broadcast). */
typedef struct vox_cu_iter {
  int ndim, n_ops;
  int64_t numel;
  int64_t shape[VOX_CU_MAX_DIMS];
  int64_t strides[VOX_CU_ITER_OPS][VOX_CU_MAX_DIMS];
  void *data[VOX_CU_ITER_OPS];
  int dtype[VOX_CU_ITER_OPS];
} vox_cu_iter;

/* One strided tensor (for row kernels and indexing). */
typedef struct vox_cu_view {
  void *data;
  int dtype, ndim;
  int64_t shape[VOX_CU_MAX_DIMS];
  int64_t strides[VOX_CU_MAX_DIMS];
} vox_cu_view;

/* ---- data movement (kernels/copy.cu) ---- */
cudaError_t vox_cu_copy(cudaStream_t s, const vox_cu_iter *it);               /* op0 = op1, with casts */
cudaError_t vox_cu_fill(cudaStream_t s, const vox_cu_iter *it, uint32_t bits); /* op0 = bit pattern */
/* dist 0 uniform [a,b), 1 normal (a, b), 2 bernoulli P(1)=a; contiguous f32/bf16 output of n elements. */
cudaError_t vox_cu_rng(cudaStream_t s, void *out, int dtype, int64_t n, uint64_t seed, uint64_t offset, int dist,
                       double a, double b);

/* ---- elementwise (kernels/elementwise.cu) ---- */
cudaError_t vox_cu_binary(cudaStream_t s, const vox_cu_iter *it, int op);  /* op0 = op1 (op) op2 */
cudaError_t vox_cu_unary(cudaStream_t s, const vox_cu_iter *it, int op, float alpha, float beta, bool alpha_is_2,
                         bool alpha_is_0);                                  /* op0 = f(op1) */
cudaError_t vox_cu_unary_backward(cudaStream_t s, const vox_cu_iter *it, int op, float alpha, float beta,
                                  bool alpha_is_2, bool alpha_is_0);        /* op0 = f'(op1) * op2 */
cudaError_t vox_cu_where(cudaStream_t s, const vox_cu_iter *it);            /* op0 = op1 ? op2 : op3 */
/* op0 (contiguous) = keep(i) ? op1 * scale : 0, keep(i) = uniform(seed, offset + i) >= p */
cudaError_t vox_cu_dropout(cudaStream_t s, const vox_cu_iter *it, uint64_t seed, uint64_t offset, float p,
                           float scale);
cudaError_t vox_cu_swiglu(cudaStream_t s, const vox_cu_iter *it); /* op0 = silu(op1) * op2 */
/* it: {dgate, gate, up, dy}; dup is contiguous with dgate's layout (same flat index as dgate). */
cudaError_t vox_cu_swiglu_backward(cudaStream_t s, const vox_cu_iter *it, void *dup, int dup_dtype);

/* ---- reductions (kernels/reduce.cu) ---- */
/* Kept dims (sizes ks, strides in x kxs, in out kos) and reduced dims (rs, rxs), coalesced. */
typedef struct vox_cu_reduce_plan {
  int nk, nr;
  int64_t ks[VOX_CU_MAX_DIMS], kxs[VOX_CU_MAX_DIMS], kos[VOX_CU_MAX_DIMS];
  int64_t rs[VOX_CU_MAX_DIMS], rxs[VOX_CU_MAX_DIMS];
  int64_t n_out, n_red;
  const void *x;
  void *out;
  int x_dtype, out_dtype;
} vox_cu_reduce_plan;
/* op numbered as vox_reduce_op; `partials` holds n_out * chunks doubles (device scratch). */
cudaError_t vox_cu_reduce(cudaStream_t s, const vox_cu_reduce_plan *p, int op, double *partials, int64_t chunks);
/* Chunks the reduce launcher will use for a plan (so the host can size the scratch). */
int64_t vox_cu_reduce_chunks(const vox_cu_reduce_plan *p);
/* it: {out (i32, dim squeezed to 1), x}; reduces n elements at stride `s_dim` of x from each op1 offset. */
cudaError_t vox_cu_arg_reduce(cudaStream_t s, const vox_cu_iter *it, int64_t n, int64_t s_dim, bool is_max);

/* ---- softmax and losses (kernels/softmax.cu) ---- */
/* x, y (and dy) share a shape; rows are all but the last dim. */
cudaError_t vox_cu_softmax(cudaStream_t s, const vox_cu_view *x, const vox_cu_view *y, bool log_mode);
cudaError_t vox_cu_softmax_backward(cudaStream_t s, const vox_cu_view *y, const vox_cu_view *dy,
                                    const vox_cu_view *dx, bool log_mode);
/* logits [N, V] (any strides), target i32 [N] -> loss f32 [N], lse f32 [N]. */
cudaError_t vox_cu_cross_entropy(cudaStream_t s, const vox_cu_view *x, const vox_cu_view *target,
                                 const vox_cu_view *loss, const vox_cu_view *lse, int32_t ignore_index, float eps);
cudaError_t vox_cu_cross_entropy_backward(cudaStream_t s, const vox_cu_view *x, const vox_cu_view *target,
                                          const vox_cu_view *lse, const vox_cu_view *dloss, const vox_cu_view *dx,
                                          int32_t ignore_index, float eps);

/* ---- CTC loss (kernels/ctc.cu): contiguous operands; x [B,T,C] f32/bf16, logp f32 [B,T,C], alpha f32 [B,T,2S+1],
 * targets i32 [B,S], lens i32 [B] (validated by the op). Both need device `scratch` of vox_cu_ctc_scratch_bytes. */
cudaError_t vox_cu_ctc_loss(cudaStream_t s, const void *x, int x_dtype, const int32_t *targets, const int32_t *in_lens,
                            const int32_t *tg_lens, float *loss, float *logp, float *alpha, void *scratch, int64_t B,
                            int64_t T, int64_t C, int64_t S, int32_t blank);
size_t vox_cu_ctc_scratch_bytes(int64_t B, int64_t S);
cudaError_t vox_cu_ctc_loss_backward(cudaStream_t s, const float *logp, const int32_t *targets, const int32_t *in_lens,
                                     const int32_t *tg_lens, const float *alpha, const void *dloss, int dloss_dtype,
                                     void *dx, int dx_dtype, void *scratch, int64_t B, int64_t T, int64_t C,
                                     int64_t S, int32_t blank);

/* ---- indexing (kernels/index.cu) ---- */
/* Writes into *bad (device, pre-set to INT64_MAX by the caller) the smallest flat position of ids whose value is
 * outside [0, limit) and not equal to `allowed` (pass INT32_MIN... to allow none). */
cudaError_t vox_cu_check_ids(cudaStream_t s, const vox_cu_view *ids, int64_t limit, int64_t allowed,
                             unsigned long long *bad);
cudaError_t vox_cu_embedding(cudaStream_t s, const vox_cu_view *w, const vox_cu_view *ids, const vox_cu_view *out);
cudaError_t vox_cu_embedding_backward(cudaStream_t s, const vox_cu_view *dy, const vox_cu_view *ids,
                                      const vox_cu_view *dw);
cudaError_t vox_cu_gather(cudaStream_t s, const vox_cu_view *x, const vox_cu_view *index, const vox_cu_view *out,
                          int dim);
cudaError_t vox_cu_scatter_add(cudaStream_t s, const vox_cu_view *index, const vox_cu_view *src,
                               const vox_cu_view *out, int dim);
cudaError_t vox_cu_pairwise_sqdist(cudaStream_t s, const vox_cu_view *x, const vox_cu_view *c,
                                   const vox_cu_view *out);

/* ---- normalisation and position (kernels/norm.cu) ---- */
/* Contiguous rows of d elements; w, b, y2 (the residual sum), mean, rstd may be NULL. x2 (may be NULL) is added
 * to x before normalising (the fused residual add), its sum written to `sum` when non-NULL. */
cudaError_t vox_cu_rmsnorm(cudaStream_t s, const void *x, const void *x2, int x_dtype, const void *w, void *y,
                           void *sum, float *rstd, int64_t rows, int64_t d, float eps);
cudaError_t vox_cu_layernorm(cudaStream_t s, const void *x, const void *x2, int x_dtype, const void *w,
                             const void *b, void *y, void *sum, float *mean, float *rstd, int64_t rows, int64_t d,
                             float eps);
/* dx (may be NULL) from rows; dw, db (may be NULL) through `partials` (chunks * d * 2 doubles of device scratch).
 * mean is NULL for RMSNorm. dsum (may be NULL) is a gradient added to dx (the residual branch of the fused op). */
cudaError_t vox_cu_norm_backward(cudaStream_t s, int dtype, const void *x, const void *w, const float *mean,
                                 const float *rstd, const void *dy, const void *dsum, void *dx, void *dw, void *db,
                                 int64_t rows, int64_t d, double *partials, int64_t chunks);
int64_t vox_cu_norm_backward_chunks(int64_t rows, int64_t d);
#define VOX_CU_ROPE_MAX_HALF 256
typedef struct vox_cu_rope {
  int64_t B, H, T, D, half, pos_batched;
  float sign;
  float inv_freq[VOX_CU_ROPE_MAX_HALF];
} vox_cu_rope_args;
cudaError_t vox_cu_rope(cudaStream_t s, const vox_cu_rope_args *r, const void *x, const int32_t *pos, void *y,
                        int dtype);

/* ---- convolution (kernels/conv.cu): contiguous x [B, Cin, L], w [Cout, Cin/g, K], y [B, Cout, Lout] ---- */
typedef struct vox_cu_conv {
  int64_t B, Cin, L, Cout, Lout, K, cig, cog, groups, stride, padding, dilation;
  int dtype; /* shared by all three operands */
} vox_cu_conv;
cudaError_t vox_cu_conv1d(cudaStream_t s, const vox_cu_conv *c, const void *x, const void *w, void *y);
cudaError_t vox_cu_conv1d_backward_data(cudaStream_t s, const vox_cu_conv *c, const void *dy, const void *w,
                                        void *dx);
cudaError_t vox_cu_conv1d_backward_weight(cudaStream_t s, const vox_cu_conv *c, const void *x, const void *dy,
                                          void *dw);

/* ---- optimizers (kernels/optim.cu): contiguous f32 tensors of n elements ---- */
typedef struct vox_cu_adamw {
  float b1, b2, eps, grad_scale, decay, step, inv_sqrt_bc2;
} vox_cu_adamw_args;
cudaError_t vox_cu_adamw(cudaStream_t s, const float *g, float *w, float *m, float *v, int64_t n,
                         const vox_cu_adamw_args *p);
/* Many tensors in one launch: a device array of per-tensor records; tensor t owns blocks [first_block, next first)
 * of `chunk` elements each, so a block finds its tensor by binary search. */
typedef struct vox_cu_adamw_tensor {
  const float *g;
  float *w, *m, *v;
  int64_t n, first_block;
  float decay, step;
} vox_cu_adamw_tensor;
typedef struct vox_cu_adamw_multi_args {
  const vox_cu_adamw_tensor *tensors;
  int n_tensors;
  int64_t n_blocks, chunk;
  float b1, b2, eps, grad_scale, inv_sqrt_bc2;
} vox_cu_adamw_multi_args;
cudaError_t vox_cu_adamw_multi(cudaStream_t s, const vox_cu_adamw_multi_args *p);
cudaError_t vox_cu_sgd(cudaStream_t s, const float *g, float *w, float *buf, int64_t n, float lr, float mu,
                       float wd, float gs, bool nesterov);

#ifdef __cplusplus
}
#endif

#endif
