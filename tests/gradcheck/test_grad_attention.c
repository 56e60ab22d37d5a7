/* Finite-difference gradient checks of attention for each mask kind: none, causal, causal with offset, kv_lens
 * padding, streaming chunk, additive bias, and GQA (Hq 4, Hkv 2) combined with masks. */
#include "vox_test.h"

typedef struct attn_ctx {
  vox_attention_mask mask;
  float scale;
} attn_ctx;

static vox_status attn_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  attn_ctx *c = ctx;
  return vox_op_attention(in[0], in[1], in[2], &c->mask, c->scale, out);
}

static void check(const char *name, int Hq, int Hkv, int T, int S, attn_ctx *c) {
  vox_tensor *in[3] = {vt_randn(VT_SHAPE(2, Hq, T, 4), 1, 1.0f, true), vt_randn(VT_SHAPE(2, Hkv, S, 4), 2, 1.0f, true),
                       vt_randn(VT_SHAPE(2, Hkv, S, 3), 3, 1.0f, true)};
  vt_gradcheck(name, attn_fn, c, 3, in, NULL);
  for (int i = 0; i < 3; i++) vox_tensor_release(in[i]);
}

Test(grad_attention, no_mask) { check("attention", 2, 2, 4, 5, &(attn_ctx){.scale = 0}); }

Test(grad_attention, causal) { check("attention causal", 2, 2, 5, 5, &(attn_ctx){.mask = {.causal = true}}); }

Test(grad_attention, causal_offset) {
  check("attention causal offset 3", 2, 2, 3, 6, &(attn_ctx){.mask = {.causal = true, .causal_offset = 3}});
}

Test(grad_attention, kv_lens) {
  vox_tensor *lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){5, 2});
  check("attention kv_lens", 2, 2, 4, 5, &(attn_ctx){.mask = {.kv_lens = lens}});
  vox_tensor_release(lens);
}

Test(grad_attention, kv_lens_with_empty_row) {
  vox_tensor *lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){3, 0});
  check("attention kv_lens with a fully masked batch row", 2, 2, 4, 5, &(attn_ctx){.mask = {.kv_lens = lens}});
  vox_tensor_release(lens);
}

Test(grad_attention, chunk) {
  check("attention chunk 2", 2, 2, 6, 6, &(attn_ctx){.mask = {.causal = true, .chunk_size = 2}});
}

Test(grad_attention, bias) {
  vox_tensor *bias = vt_randn(VT_SHAPE(2, 1, 4, 5), 9, 1.0f, false);
  check("attention bias", 2, 2, 4, 5, &(attn_ctx){.mask = {.bias = bias}, .scale = 0.7f});
  vox_tensor_release(bias);
}

Test(grad_attention, gqa) {
  vox_tensor *lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){6, 4});
  check("attention GQA Hq 4 Hkv 2", 4, 2, 4, 6, &(attn_ctx){.scale = 0});
  check("attention GQA causal offset + kv_lens", 4, 2, 4, 6,
        &(attn_ctx){.mask = {.causal = true, .causal_offset = 2, .kv_lens = lens}});
  vox_tensor_release(lens);
}
