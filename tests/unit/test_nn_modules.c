/* nn module tests: HF parameter names and glob selection, KV-cache decoding against the full forward,
 * checkpointed vs plain block gradients, conv/MLP module shapes, and a 100-step training run that must neither
 * grow live memory nor leave autograd nodes behind. */
#include <criterion/logging.h>
#include <math.h>
#include <string.h>

#include "core/autograd.h"
#include "models/qwen2.h"
#include "nn/conv.h"
#include "nn/transformer.h"
#include "optim/optim.h"
#include "vox_test.h"

static vox_qwen2_config small_cfg(void) {
  return (vox_qwen2_config){.vocab_size = 40, .hidden_size = 32, .num_hidden_layers = 2, .num_attention_heads = 4,
                            .num_key_value_heads = 2, .intermediate_size = 64, .initializer_range = 0.1f,
                            .attention_bias = true};
}

Test(nn_modules, names_and_globs) {
  vt_lm *m = NULL;
  VT_OK(vt_lm_new(&(vox_qwen2_config){.vocab_size = 40, .hidden_size = 32, .num_hidden_layers = 4,
                                        .num_attention_heads = 4, .num_key_value_heads = 2, .intermediate_size = 64,
                                        .attention_bias = true},
                    7, &m));
  vox_params *reg = m->params;
  /* embed + 4 x (2 norms + q/k/v w+b + o + 3 mlp) + norm + lm_head */
  cr_assert_eq(vox_params_count(reg, false), 1 + 4 * 12 + 2);
  cr_assert_str_eq(reg->items[0].name, "model.embed_tokens.weight");
  cr_assert_str_eq(reg->items[reg->count - 1].name, "lm_head.weight");
  vox_tensor *q = NULL;
  VT_OK(vox_params_find(reg, "model.layers.3.self_attn.q_proj.weight", &q));
  cr_assert_eq(q->shape[0], 32);
  cr_assert_eq(q->shape[1], 32);
  vox_tensor *k = vox_params_get(reg, "model.layers.1.self_attn.k_proj.bias");
  cr_assert_not_null(k);
  cr_assert_eq(k->shape[0], 16); /* 2 kv heads x 8 */
  cr_assert_null(vox_params_get(reg, "model.layers.4.self_attn.q_proj.weight"));
  cr_assert_eq(vox_params_find(reg, "nope", &q), VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "nope"));
  /* 4 layers x 4 projections x (weight [+ bias for q/k/v]) */
  cr_assert_eq(vox_params_select(reg, "model.layers.*.self_attn.*_proj.*", NULL, 0), 4 * 7);
  cr_assert_eq(vox_params_select(reg, "*.mlp.gate_proj.weight", NULL, 0), 4);
  cr_assert_eq(vox_params_select(reg, "model.layers.[02].*", NULL, 0), 2 * 12);
  int idx[8];
  cr_assert_eq(vox_params_select(reg, "*norm.weight", idx, 8), 9);
  cr_assert_str_eq(reg->items[idx[0]].name, "model.layers.0.input_layernorm.weight");
  /* Freeze everything but the attention projections of layer 2. */
  int n;
  VT_OK(vox_params_set_trainable(reg, "*", false, &n));
  cr_assert_eq(n, reg->count);
  VT_OK(vox_params_set_trainable(reg, "model.layers.2.self_attn.*", true, &n));
  cr_assert_eq(n, 7);
  cr_assert_eq(vox_params_count(reg, true), 7);
  cr_assert_eq(vox_params_numel(reg, true), 32 * 32 * 2 + 16 * 32 * 2 + 32 + 16 + 16);
  cr_assert_eq(vox_params_set_trainable(reg, "model.layer.*", true, NULL), VOX_ERR_NOT_FOUND);
  vox_tensor **tr = NULL;
  VT_OK(vox_params_trainable(reg, &tr, &n));
  cr_assert_eq(n, 7);
  free(tr);
  /* Duplicate names are refused. */
  cr_assert_eq(vox_params_create(reg, "model.norm.weight", VOX_CPU, VT_SHAPE(4), NULL), VOX_ERR_INVALID);
  vt_lm_free(m);
}

/* Same seed, same parameters: initialisation is deterministic. */
Test(nn_modules, deterministic_init) {
  vox_qwen2_config cfg = small_cfg();
  vt_lm *a = NULL, *b = NULL, *c = NULL;
  VT_OK(vt_lm_new(&cfg, 5, &a));
  VT_OK(vt_lm_new(&cfg, 5, &b));
  VT_OK(vt_lm_new(&cfg, 6, &c));
  for (int i = 0; i < a->params->count; i++)
    vt_assert_close(a->params->items[i].tensor, b->params->items[i].tensor, 0, 0, a->params->items[i].name);
  cr_assert_gt(vt_close_ratio(a->params->items[0].tensor, c->params->items[0].tensor, 1e-6, 0), 1.0);
  vt_lm_free(a);
  vt_lm_free(b);
  vt_lm_free(c);
}

/* Prefill 5 tokens, then decode 1, 2 and 1 tokens: logits equal the full causal forward's. */
Test(nn_modules, kv_cache_matches_full_forward) {
  vox_qwen2_config cfg = small_cfg();
  vt_lm *m = NULL;
  VT_OK(vt_lm_new(&cfg, 11, &m));
  enum { B = 2, T = 9 };
  int32_t ids[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + 3) % cfg.vocab_size;
  vox_tensor *all = vt_from_i32(VT_SHAPE(B, T), ids), *full = NULL;
  vox_no_grad_begin();
  VT_OK(vox_qwen2_forward(&m->m, all, NULL, false, NULL, &full, NULL));
  vox_no_grad_end();
  vox_kv_cache *caches = NULL;
  VT_OK(vox_qwen2_caches_new(&m->m, B, 16, &caches));
  const int chunks[] = {5, 1, 2, 1};
  int start = 0;
  for (int c = 0; c < 4; c++) {
    vox_tensor *ids_c = NULL, *lg = NULL, *ref = NULL;
    VT_OK(vox_tensor_view_slice(all, 1, start, start + chunks[c], 1, &ids_c));
    vox_tensor *ids_cc = NULL;
    VT_OK(vox_tensor_contiguous(ids_c, &ids_cc));
    VT_OK(vox_qwen2_decode(&m->m, ids_cc, caches, &lg));
    cr_assert_eq(lg->shape[1], chunks[c]);
    VT_OK(vox_tensor_view_slice(full, 1, start, start + chunks[c], 1, &ref));
    vt_assert_close(lg, ref, 1e-5, 1e-4, "cached decode logits");
    cr_assert_eq(caches[0].len, start + chunks[c]);
    start += chunks[c];
    vox_tensor_release(ids_c);
    vox_tensor_release(ids_cc);
    vox_tensor_release(lg);
    vox_tensor_release(ref);
  }
  /* Overflowing the cache is an error naming the capacity, not a crash. */
  vox_tensor *big = NULL, *lg = NULL;
  VT_OK(vox_tensor_zeros(VOX_I32, VOX_CPU, VT_SHAPE(B, 8), &big));
  cr_assert_eq(vox_qwen2_decode(&m->m, big, caches, &lg), VOX_ERR_INDEX);
  cr_assert(strstr(vox_last_error(), "capacity"));
  vox_tensor_release(big);
  vox_qwen2_caches_free(&m->m, caches);
  vox_tensor_release(all);
  vox_tensor_release(full);
  vt_lm_free(m);
}

static void block_grads(bool checkpoint, float dropout, vox_tensor **grads, int *n_out, vox_tensor **xgrad,
                        long *graph_nodes) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_rng rng = vox_rng_make(3);
  vox_block_config bc = {.attn = {.d_model = 32, .n_heads = 4, .n_kv_heads = 2, .q_bias = true, .k_bias = true,
                                  .v_bias = true, .rope = true},
                         .mlp_kind = VOX_MLP_SWIGLU, .d_ff = 48, .norm_kind = VOX_NORM_RMS, .dropout = dropout,
                         .checkpoint = checkpoint};
  vox_block blk;
  VT_OK(vox_block_init(&blk, reg, "layers.0", &bc, &rng));
  vox_tensor *x = vt_randn(VT_SHAPE(2, 6, 32), 17, 1.0f, true);
  int32_t pos[6] = {0, 1, 2, 3, 4, 5}, lens[2] = {6, 4};
  vox_tensor *positions = vt_from_i32(VT_SHAPE(6), pos), *kv = vt_from_i32(VT_SHAPE(2), lens);
  vox_attention_mask mask = {.causal = true, .kv_lens = kv};
  vox_tensor *y = NULL, *w = vt_randn(VT_SHAPE(2, 6, 32), 23, 1.0f, false), *prod = NULL, *loss = NULL;
  vox_rng drop_rng = vox_rng_make(77);
  long nodes0 = vox_autograd_live_nodes();
  VT_OK(vox_block_forward(&blk, x, positions, &mask, NULL, dropout > 0, &drop_rng, &y));
  *graph_nodes = vox_autograd_live_nodes() - nodes0; /* what the forward keeps for backward */
  VT_OK(vox_op_mul(y, w, &prod));
  VT_OK(vox_op_sum(prod, 0, NULL, false, &loss));
  VT_OK(vox_backward(loss, NULL));
  for (int i = 0; i < reg->count; i++) grads[i] = vox_tensor_retain(reg->items[i].tensor->grad);
  *n_out = reg->count;
  *xgrad = vox_tensor_retain(x->grad);
  cr_assert_eq(drop_rng.offset > 0, dropout > 0); /* the caller's stream moved past the block's draws */
  vox_tensor_release(y);
  vox_tensor_release(prod);
  vox_tensor_release(loss);
  vox_tensor_release(w);
  vox_tensor_release(x);
  vox_tensor_release(positions);
  vox_tensor_release(kv);
  vox_params_free(reg);
}

Test(nn_modules, checkpointed_block_same_gradients) {
  for (int d = 0; d < 2; d++) {
    float p = d ? 0.2f : 0.0f;
    vox_tensor *ga[32] = {0}, *gb[32] = {0}, *xa = NULL, *xb = NULL;
    int na, nb;
    long graph_plain, graph_ckpt;
    block_grads(false, p, ga, &na, &xa, &graph_plain);
    long nodes_before = vox_autograd_live_nodes();
    block_grads(true, p, gb, &nb, &xb, &graph_ckpt);
    cr_assert_eq(vox_autograd_live_nodes(), nodes_before);
    cr_assert_eq(graph_ckpt, 1, "a checkpointed block keeps one node, not %ld", graph_ckpt);
    cr_assert_gt(graph_plain, 10);
    cr_assert_eq(na, nb);
    for (int i = 0; i < na; i++) {
      cr_assert_not_null(gb[i]);
      vt_assert_close(gb[i], ga[i], 1e-6, 1e-5, "checkpointed parameter gradient");
      vox_tensor_release(ga[i]);
      vox_tensor_release(gb[i]);
    }
    vt_assert_close(xb, xa, 1e-6, 1e-5, "checkpointed input gradient");
    vox_tensor_release(xa);
    vox_tensor_release(xb);
  }
}

Test(nn_modules, conv_and_gelu_mlp_modules) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_rng rng = vox_rng_make(1);
  vox_conv1d down, up;
  VT_OK(vox_conv1d_init(&down, reg, "encoder.conv1",
                        &(vox_conv1d_config){.in_channels = 4, .out_channels = 6, .kernel_size = 3, .stride = 2,
                                             .padding = 1, .bias = true},
                        &rng));
  VT_OK(vox_conv_transpose1d_init(&up, reg, "decoder.up",
                                  &(vox_conv1d_config){.in_channels = 6, .out_channels = 4, .kernel_size = 4,
                                                       .stride = 2, .padding = 1},
                                  &rng));
  cr_assert_eq(vox_params_get(reg, "decoder.up.weight")->shape[0], 6); /* PyTorch layout [Cin, Cout, K] */
  cr_assert_null(vox_params_get(reg, "decoder.up.bias"));
  vox_mlp mlp;
  VT_OK(vox_mlp_init(&mlp, reg, "mlp", VOX_MLP_GELU, 4, 10, true, &rng));
  cr_assert_not_null(vox_params_get(reg, "mlp.fc1.bias"));
  cr_assert_eq(vox_params_get(reg, "mlp.fc2.weight")->shape[1], 10);
  vox_conv1d bad;
  cr_assert_eq(vox_conv1d_init(&bad, reg, "bad", &(vox_conv1d_config){.in_channels = 3, .out_channels = 4,
                                                                       .kernel_size = 3, .groups = 2}, &rng),
               VOX_ERR_INVALID);
  vox_tensor *x = vt_randn(VT_SHAPE(2, 4, 10), 5, 1.0f, false), *h = NULL, *y = NULL, *xt = NULL, *z = NULL;
  VT_OK(vox_conv1d_forward(&down, x, &h));
  cr_assert_eq(h->shape[1], 6);
  cr_assert_eq(h->shape[2], 5);
  VT_OK(vox_conv1d_forward(&up, h, &y));
  cr_assert_eq(y->shape[1], 4);
  cr_assert_eq(y->shape[2], 10);
  VT_OK(vox_op_transpose(y, 1, 2, &xt));
  VT_OK(vox_mlp_forward(&mlp, xt, &z));
  cr_assert_eq(z->shape[2], 4);
  vox_tensor *ts[] = {x, h, y, xt, z};
  for (int i = 0; i < 5; i++) vox_tensor_release(ts[i]);
  vox_params_free(reg);
}

/* A Whisper-style block: LayerNorm with bias, GELU fc1/fc2 directly under the layer, out_proj, q/v but no k bias. */
Test(nn_modules, whisper_style_block) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_rng rng = vox_rng_make(2);
  vox_block_config bc = {.attn = {.d_model = 16, .n_heads = 2, .q_bias = true, .v_bias = true, .o_bias = true,
                                  .o_name = "out_proj"},
                         .mlp_kind = VOX_MLP_GELU, .d_ff = 32, .mlp_bias = true, .norm_kind = VOX_NORM_LAYER,
                         .norm_eps = 1e-5f, .dropout = 0.1f, .attn_norm_name = "self_attn_layer_norm",
                         .mlp_norm_name = "final_layer_norm", .mlp_name = ""};
  vox_block blk;
  VT_OK(vox_block_init(&blk, reg, "encoder.layers.0", &bc, &rng));
  const char *names[] = {"encoder.layers.0.self_attn_layer_norm.weight", "encoder.layers.0.self_attn_layer_norm.bias",
                         "encoder.layers.0.self_attn.q_proj.weight",     "encoder.layers.0.self_attn.q_proj.bias",
                         "encoder.layers.0.self_attn.k_proj.weight",     "encoder.layers.0.self_attn.v_proj.weight",
                         "encoder.layers.0.self_attn.v_proj.bias",       "encoder.layers.0.self_attn.out_proj.weight",
                         "encoder.layers.0.self_attn.out_proj.bias",     "encoder.layers.0.final_layer_norm.weight",
                         "encoder.layers.0.final_layer_norm.bias",       "encoder.layers.0.fc1.weight",
                         "encoder.layers.0.fc1.bias",                    "encoder.layers.0.fc2.weight",
                         "encoder.layers.0.fc2.bias"};
  cr_assert_eq(reg->count, 15);
  for (int i = 0; i < 15; i++) cr_assert_not_null(vox_params_get(reg, names[i]), "missing %s", names[i]);
  cr_assert_null(vox_params_get(reg, "encoder.layers.0.self_attn.k_proj.bias"));
  /* Bidirectional, padded: training with dropout differs from eval, eval is deterministic, grads reach all. */
  vox_tensor *x = vt_randn(VT_SHAPE(2, 5, 16), 4, 1.0f, false), *y1 = NULL, *y2 = NULL, *y3 = NULL, *s = NULL;
  int32_t lens[2] = {5, 3};
  vox_tensor *kv = vt_from_i32(VT_SHAPE(2), lens);
  vox_attention_mask mask = {.kv_lens = kv};
  vox_rng drng = vox_rng_make(8);
  VT_OK(vox_block_forward(&blk, x, NULL, &mask, NULL, false, NULL, &y1));
  VT_OK(vox_block_forward(&blk, x, NULL, &mask, NULL, false, NULL, &y2));
  vt_assert_close(y1, y2, 0, 0, "eval forward is deterministic");
  VT_OK(vox_block_forward(&blk, x, NULL, &mask, NULL, true, &drng, &y3));
  cr_assert_gt(vt_close_ratio(y3, y1, 1e-6, 0), 1.0, "dropout changed nothing while training");
  VT_OK(vox_op_sum(y3, 0, NULL, false, &s));
  VT_OK(vox_backward(s, NULL));
  for (int i = 0; i < reg->count; i++) cr_assert_not_null(reg->items[i].tensor->grad, "no grad for %s", reg->items[i].name);
  vox_tensor *ts[] = {x, y1, y2, y3, s, kv};
  for (int i = 0; i < 6; i++) vox_tensor_release(ts[i]);
  vox_params_free(reg);
}

/* 100 AdamW steps of a tiny Qwen2 LM: live CPU bytes at the end of every step equal those after step 1, no autograd
 * node survives a step, and the loss falls. */
static void train_without_leaks(bool checkpoint) {
  vt_mem_mark start = vt_mem_now();
  vox_qwen2_config cfg = small_cfg();
  cfg.checkpoint = checkpoint;
  vt_lm *m = NULL;
  VT_OK(vt_lm_new(&cfg, 21, &m));
  vox_optim_config oc = vox_optim_adamw_config(3e-3f, 0.01f);
  vox_optim *opt = NULL;
  VT_OK(vox_optim_new(&oc, &opt));
  VT_OK(vox_optim_add_group(opt, NULL, -1, -1, NULL));
  VT_OK(vox_optim_add_params(opt, 0, m->params, NULL, NULL));
  enum { B = 2, T = 16 };
  int32_t ids[B * T], tg[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (i * 5) % 13, tg[i] = ((i + 1) * 5) % 13;
  vox_tensor *tid = vt_from_i32(VT_SHAPE(B, T), ids), *ttg = vt_from_i32(VT_SHAPE(B, T), tg);
  size_t after_first = 0;
  double first = 0, last = 0;
  for (int step = 0; step < 100; step++) {
    vox_tensor *loss = NULL;
    VT_OK(vox_qwen2_forward(&m->m, tid, ttg, true, NULL, NULL, &loss));
    VT_OK(vox_backward(loss, NULL));
    double norm;
    VT_OK(vox_optim_clip_grad_norm(opt, 1.0, &norm));
    VT_OK(vox_optim_step(opt));
    vox_optim_zero_grad(opt);
    VT_OK(vox_tensor_item(loss, &last));
    if (step == 0) first = last;
    vox_tensor_release(loss);
    cr_assert_eq(vox_autograd_live_nodes(), start.nodes, "step %d left %ld autograd nodes", step,
                 vox_autograd_live_nodes() - start.nodes);
    size_t live = vox_memory_live_bytes(VOX_CPU);
    if (step == 0) after_first = live;
    else cr_assert_eq(live, after_first, "step %d: live CPU bytes %zu, after step 1 %zu", step, live, after_first);
  }
  cr_log_info("training (checkpoint %d): loss %.4f -> %.4f, live %zu bytes", checkpoint, first, last, after_first);
  cr_assert_lt(last, first * 0.5, "loss did not fall: %.4f -> %.4f", first, last);
  vox_tensor_release(tid);
  vox_tensor_release(ttg);
  vox_optim_free(opt);
  vt_lm_free(m);
  vt_assert_mem_back_to(start, "tiny Qwen2 LM training");
}

Test(nn_modules, training_does_not_leak) { train_without_leaks(false); }
Test(nn_modules, checkpointed_training_does_not_leak) { train_without_leaks(true); }
