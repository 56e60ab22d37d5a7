/* Qwen2 decoder tests: names under a prefix in a shared registry, a right-padded batch row equal to that row run
 * alone, KV-cache incremental decoding equal to the full forward, the target-rows loss, and shape errors. */
#include <criterion/logging.h>
#include <string.h>

#include "core/autograd.h"
#include "models/qwen2.h"
#include "vox_test.h"

static vox_qwen2_config small_cfg(bool tied) {
  return (vox_qwen2_config){.vocab_size = 50, .hidden_size = 32, .num_hidden_layers = 2, .num_attention_heads = 4,
                            .num_key_value_heads = 2, .intermediate_size = 48, .initializer_range = 0.1f,
                            .tie_word_embeddings = tied, .attention_bias = true};
}

Test(qwen2, names_under_prefix_in_shared_registry) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  VT_OK(vox_params_create(reg, "other.weight", VOX_CPU, VT_SHAPE(3), NULL)); /* someone else's parameter */
  vox_qwen2 a, b;
  vox_rng rng = vox_rng_make(1);
  vox_qwen2_config cfg = small_cfg(false);
  VT_OK(vox_qwen2_init(&a, reg, "llm.", &cfg, &rng));
  cfg = small_cfg(true);
  VT_OK(vox_qwen2_init(&b, reg, "voice_lm.", &cfg, &rng));
  /* embed + 2 x 12 + norm (+ lm_head when untied) */
  cr_assert_eq(reg->count, 1 + (1 + 2 * 12 + 1 + 1) + (1 + 2 * 12 + 1));
  cr_assert_not_null(vox_params_get(reg, "llm.model.embed_tokens.weight"));
  cr_assert_not_null(vox_params_get(reg, "llm.model.layers.1.self_attn.k_proj.bias"));
  cr_assert_not_null(vox_params_get(reg, "llm.model.layers.1.mlp.down_proj.weight"));
  cr_assert_not_null(vox_params_get(reg, "llm.lm_head.weight"));
  cr_assert_null(vox_params_get(reg, "voice_lm.lm_head.weight"));
  cr_assert_eq(b.lm_head, b.embed.weight);
  cr_assert_eq(vox_params_get(reg, "llm.model.layers.0.self_attn.k_proj.weight")->shape[0], 16);
  /* HF init: zero biases, unit norms. */
  double v;
  vox_tensor *bias = vox_params_get(reg, "llm.model.layers.0.self_attn.q_proj.bias"), *e = NULL;
  VT_OK(vox_op_sum(bias, 0, NULL, false, &e));
  VT_OK(vox_tensor_item(e, &v));
  cr_assert_eq(v, 0.0);
  vox_tensor_release(e);
  VT_OK(vox_op_sum(vox_params_get(reg, "voice_lm.model.norm.weight"), 0, NULL, false, &e));
  VT_OK(vox_tensor_item(e, &v));
  cr_assert_eq(v, 32.0);
  vox_tensor_release(e);
  /* The same name twice is refused. */
  vox_qwen2 c;
  cr_assert_neq(vox_qwen2_init(&c, reg, "llm.", &cfg, &rng), VOX_OK);
  cr_assert(strstr(vox_last_error(), "llm.model.embed_tokens.weight"), "%s", vox_last_error());
  vox_qwen2_release(&a);
  vox_qwen2_release(&b);
  vox_params_free(reg);
}

/* Row 1 is padded on the right; with kv_lens its valid positions equal the same ids run alone. */
Test(qwen2, padded_row_matches_row_alone) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_qwen2 m;
  vox_rng rng = vox_rng_make(3);
  vox_qwen2_config cfg = small_cfg(false);
  VT_OK(vox_qwen2_init(&m, reg, "", &cfg, &rng));
  enum { B = 2, T = 7, L1 = 4 };
  int32_t ids[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (i * 11 + 5) % cfg.vocab_size;
  int32_t lens[B] = {T, L1};
  vox_tensor *tid = vt_from_i32(VT_SHAPE(B, T), ids), *tl = vt_from_i32(VT_SHAPE(B), lens);
  vox_tensor *e = NULL, *h = NULL, *lg = NULL;
  VT_OK(vox_qwen2_embed(&m, tid, &e));
  VT_OK(vox_qwen2_forward_embeds(&m, e, NULL, tl, NULL, false, NULL, &h));
  VT_OK(vox_qwen2_logits(&m, h, &lg));
  cr_assert_eq(lg->ndim, 3);
  cr_assert_eq(lg->shape[2], cfg.vocab_size);
  vox_tensor *alone = vt_from_i32(VT_SHAPE(1, L1), ids + T), *ref = NULL;
  VT_OK(vox_qwen2_forward(&m, alone, NULL, false, NULL, &ref, NULL));
  vox_tensor *row = NULL, *valid = NULL;
  VT_OK(vox_op_slice(lg, 0, 1, 2, 1, &row));
  VT_OK(vox_op_slice(row, 1, 0, L1, 1, &valid));
  vt_assert_close(valid, ref, 1e-5, 1e-4, "padded row vs alone");
  /* The unpadded row 0 equals itself alone too (kv_lens = T changes nothing). */
  vox_tensor *alone0 = vt_from_i32(VT_SHAPE(1, T), ids), *ref0 = NULL, *row0 = NULL;
  VT_OK(vox_qwen2_forward(&m, alone0, NULL, false, NULL, &ref0, NULL));
  VT_OK(vox_op_slice(lg, 0, 0, 1, 1, &row0));
  vt_assert_close(row0, ref0, 1e-5, 1e-4, "full row vs alone");
  /* Causal attention already hides right padding from valid positions; kv_lens must still reach the attention:
   * padded queries then see only the row's valid keys, unlike without kv_lens. */
  vox_tensor *h_nomask = NULL, *pad_a = NULL, *pad_b = NULL;
  VT_OK(vox_qwen2_forward_embeds(&m, e, NULL, NULL, NULL, false, NULL, &h_nomask));
  VT_OK(vox_op_slice(h, 1, L1, T, 1, &pad_a));
  VT_OK(vox_op_slice(h_nomask, 1, L1, T, 1, &pad_b));
  vox_tensor *pa1 = NULL, *pb1 = NULL;
  VT_OK(vox_op_slice(pad_a, 0, 1, 2, 1, &pa1));
  VT_OK(vox_op_slice(pad_b, 0, 1, 2, 1, &pb1));
  cr_assert_gt(vt_close_ratio(pa1, pb1, 1e-4, 1e-3), 1.0, "kv_lens had no effect on padded positions");
  vox_tensor *extra[] = {h_nomask, pad_a, pad_b, pa1, pb1};
  for (size_t i = 0; i < 5; i++) vox_tensor_release(extra[i]);
  /* Training on the padded batch (padding ignored by the loss) runs backward into the weights. */
  vox_tensor *loss = NULL;
  int32_t tg[B * T];
  for (int i = 0; i < B * T; i++) tg[i] = (i % T) < lens[i / T] ? (i * 3) % cfg.vocab_size : -100;
  vox_tensor *ttg = vt_from_i32(VT_SHAPE(B, T), tg);
  vox_tensor *e2 = NULL, *h2 = NULL, *lg2 = NULL;
  VT_OK(vox_qwen2_embed(&m, tid, &e2));
  VT_OK(vox_qwen2_forward_embeds(&m, e2, NULL, tl, NULL, true, NULL, &h2));
  VT_OK(vox_qwen2_logits(&m, h2, &lg2));
  VT_OK(vox_op_cross_entropy(lg2, ttg, -100, 0.0f, &loss));
  VT_OK(vox_backward(loss, NULL));
  cr_assert_not_null(m.lm_head->grad);
  vox_tensor *objs[] = {tid, tl, e, h, lg, alone, ref, row, valid, alone0, ref0, row0, loss, ttg, e2, h2, lg2};
  for (size_t i = 0; i < sizeof objs / sizeof *objs; i++) vox_tensor_release(objs[i]);
  vox_qwen2_release(&m);
  vox_params_free(reg);
}

/* Prefill 4 tokens, then decode 1, 3 and 1: logits equal the full causal forward's (tied and untied). */
static void kv_cache_case(bool tied) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_qwen2 m;
  vox_rng rng = vox_rng_make(7);
  vox_qwen2_config cfg = small_cfg(tied);
  VT_OK(vox_qwen2_init(&m, reg, "lm.", &cfg, &rng));
  enum { B = 2, T = 9 };
  int32_t ids[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + 3) % cfg.vocab_size;
  vox_tensor *all = vt_from_i32(VT_SHAPE(B, T), ids), *full = NULL;
  vox_no_grad_begin();
  VT_OK(vox_qwen2_forward(&m, all, NULL, false, NULL, &full, NULL));
  vox_no_grad_end();
  vox_kv_cache *caches = NULL;
  VT_OK(vox_qwen2_caches_new(&m, B, T, &caches));
  const int chunks[] = {4, 1, 3, 1};
  int start = 0;
  double worst = 0;
  for (int c = 0; c < 4; c++) {
    vox_tensor *ids_c = NULL, *lg = NULL, *ref = NULL;
    VT_OK(vox_op_slice(all, 1, start, start + chunks[c], 1, &ids_c));
    vox_tensor *ids_cc = NULL;
    VT_OK(vox_op_contiguous(ids_c, &ids_cc));
    VT_OK(vox_qwen2_decode(&m, ids_cc, caches, &lg));
    VT_OK(vox_op_slice(full, 1, start, start + chunks[c], 1, &ref));
    double r = vt_close_ratio(lg, ref, 1e-5, 1e-4);
    if (r > worst) worst = r;
    vt_assert_close(lg, ref, 1e-5, 1e-4, "cached decode logits");
    start += chunks[c];
    vox_tensor_release(ids_c);
    vox_tensor_release(ids_cc);
    vox_tensor_release(lg);
    vox_tensor_release(ref);
  }
  cr_log_info("kv cache (tied %d): worst closeness ratio %.3f", tied, worst);
  cr_assert_eq(caches[1].len, T);
  /* A full cache refuses more, naming the capacity. */
  vox_tensor *lg = NULL, *one = vt_from_i32(VT_SHAPE(B, 1), ids);
  cr_assert_eq(vox_qwen2_decode(&m, one, caches, &lg), VOX_ERR_INDEX);
  cr_assert(strstr(vox_last_error(), "capacity"), "%s", vox_last_error());
  vox_tensor_release(one);
  vox_qwen2_caches_free(&m, caches);
  vox_tensor_release(all);
  vox_tensor_release(full);
  vox_qwen2_release(&m);
  vox_params_free(reg);
}

Test(qwen2, kv_cache_decode_matches_full_forward_untied) { kv_cache_case(false); }
Test(qwen2, kv_cache_decode_matches_full_forward_tied) { kv_cache_case(true); }

Test(qwen2, shape_errors_name_the_operand) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_qwen2 m;
  vox_rng rng = vox_rng_make(3);
  vox_qwen2_config cfg = small_cfg(false);
  VT_OK(vox_qwen2_init(&m, reg, "", &cfg, &rng));
  vox_tensor *bad = vt_randn(VT_SHAPE(1, 3, 31), 1, 1.0f, false), *h = NULL;
  cr_assert_eq(vox_qwen2_forward_embeds(&m, bad, NULL, NULL, NULL, false, NULL, &h), VOX_ERR_SHAPE);
  cr_assert(strstr(vox_last_error(), "[B, T, 32]"), "%s", vox_last_error());
  cr_assert_null(h);
  vox_tensor *good = vt_randn(VT_SHAPE(2, 3, 32), 1, 1.0f, false), *lens = vt_from_i32(VT_SHAPE(3), (int32_t[]){1, 2, 3});
  cr_assert_eq(vox_qwen2_forward_embeds(&m, good, NULL, lens, NULL, false, NULL, &h), VOX_ERR_SHAPE);
  cr_assert(strstr(vox_last_error(), "kv_lens"), "%s", vox_last_error());
  vox_qwen2_config zero = cfg;
  zero.num_key_value_heads = 3;
  vox_qwen2 z;
  cr_assert_eq(vox_qwen2_init(&z, reg, "z.", &zero, &rng), VOX_ERR_INVALID);
  cr_assert(strstr(vox_last_error(), "num_key_value_heads 3"), "%s", vox_last_error());
  vox_tensor_release(bad);
  vox_tensor_release(good);
  vox_tensor_release(lens);
  vox_qwen2_release(&m);
  vox_params_free(reg);
}

/* The loss-only forward runs the head on target rows alone; loss and gradients equal the full-logits path's. */
Test(qwen2, loss_on_target_rows_equals_full_logits_loss) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_qwen2 m;
  vox_rng rng = vox_rng_make(9);
  vox_qwen2_config cfg = small_cfg(true);
  VT_OK(vox_qwen2_init(&m, reg, "", &cfg, &rng));
  enum { B = 2, T = 6 };
  int32_t ids[B * T], tg[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + 3) % cfg.vocab_size, tg[i] = i % 3 == 0 ? -100 : (i * 5) % 50;
  vox_tensor *tid = vt_from_i32(VT_SHAPE(B, T), ids), *ttg = vt_from_i32(VT_SHAPE(B, T), tg);
  vox_tensor *loss[2] = {NULL, NULL}, *grad[2] = {NULL, NULL}, *lg = NULL;
  vox_tensor *w = vox_params_get(reg, "model.embed_tokens.weight");
  for (int k = 0; k < 2; k++) {
    VT_OK(vox_qwen2_forward(&m, tid, ttg, false, NULL, k == 0 ? &lg : NULL, &loss[k]));
    VT_OK(vox_backward(loss[k], NULL));
    VT_OK(vox_tensor_clone(w->grad, &grad[k]));
    for (int i = 0; i < reg->count; i++) {
      vox_tensor_release(reg->items[i].tensor->grad);
      reg->items[i].tensor->grad = NULL;
    }
  }
  vt_assert_close(loss[1], loss[0], 1e-6, 1e-5, "loss");
  vt_assert_close(grad[1], grad[0], 1e-6, 1e-4, "tied embedding gradient");
  for (int k = 0; k < 2; k++) vox_tensor_release(loss[k]), vox_tensor_release(grad[k]);
  vox_tensor_release(lg);
  vox_tensor_release(tid);
  vox_tensor_release(ttg);
  vox_qwen2_release(&m);
  vox_params_free(reg);
}
