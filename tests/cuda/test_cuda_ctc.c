/* CUDA CTC loss against the CPU kernels: per-row loss and logits gradient on random cases (short rows, infeasible
 * rows, empty targets, more extended positions than a block has threads, wide class counts), f32 and bf16 logits,
 * lengths and targets on the device. Every test skips (visibly) without a GPU. */
#include "test_cuda_ops_common.h"

typedef struct ctc_ctx {
  int32_t blank;
} ctc_ctx;

/* in = {logits [B,T,C], targets [B,S], input_lens [B], target_lens [B]} */
static vox_status ctc_fn(void *vctx, vox_tensor *const *in, vox_tensor **out) {
  const ctc_ctx *c = vctx;
  return vox_op_ctc_loss(in[0], in[1], in[2], in[3], c->blank, out);
}

/* Random labels in [0, C) \ {blank}; row lengths drawn so most rows are feasible, the last row of each case is made
 * infeasible (when it has labels) and row 0 keeps the full T. */
static void check_case(const char *name, int64_t B, int64_t T, int64_t C, int64_t S, int32_t blank, uint64_t seed,
                       double slack) {
  int32_t *tg = malloc(sizeof(int32_t) * (size_t)(B * S)), il[16], tl[16];
  cr_assert(B <= 16);
  vox_rng r = vox_rng_make(seed);
  for (int64_t i = 0; i < B * S; i++) {
    int32_t v = (int32_t)(vox_rng_next_u64(&r) % (uint64_t)(C - 1));
    tg[i] = v >= blank ? v + 1 : v;
  }
  for (int64_t b = 0; b < B; b++) {
    tl[b] = (int32_t)(vox_rng_next_u64(&r) % (uint64_t)(S + 1));
    int32_t need = tl[b];
    for (int32_t j = 1; j < tl[b]; j++) need += tg[b * S + j] == tg[b * S + j - 1];
    il[b] = b == 0 ? (int32_t)T : need + (int32_t)(vox_rng_next_u64(&r) % (uint64_t)(T - need + 1));
    if (b == B - 1 && tl[b] > 0) il[b] = need - 1; /* one frame short: infeasible, loss 0, no gradient */
  }
  vox_tensor *in[4] = {vt_randn(VT_SHAPE(B, T, C), seed + 1, 2.0f, true), vt_from_i32(VT_SHAPE(B, S), tg),
                       vt_from_i32(VT_SHAPE(B), il), vt_from_i32(VT_SHAPE(B), tl)};
  ctc_ctx c = {.blank = blank};
  cu_check_graph(name, ctc_fn, &c, 4, in, VOX_F32, CU_F32_ATOL * slack, CU_F32_RTOL * slack);
  cu_check_graph(name, ctc_fn, &c, 4, in, VOX_BF16, CU_BF16_ATOL, CU_BF16_RTOL);
  for (int i = 0; i < 4; i++) vox_tensor_release(in[i]);
  free(tg);
}

Test(cuda_ctc, random_rows_match_cpu) {
  CU_REQUIRE_GPU();
  check_case("ctc_loss small", 6, 30, 9, 10, 0, 301, 5.0);
  check_case("ctc_loss blank in the middle", 5, 24, 7, 6, 3, 302, 5.0);
}

Test(cuda_ctc, long_labels_and_wide_classes_match_cpu) {
  CU_REQUIRE_GPU();
  check_case("ctc_loss 2S+1 > 1024 threads", 3, 700, 40, 600, 0, 303, 10.0);
  check_case("ctc_loss C > block threads", 3, 20, 3000, 5, 2999, 304, 5.0);
}
