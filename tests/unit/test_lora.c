/* LoRA tests: wrapping by glob with PEFT names and init, merged weights reproducing base+adapter outputs,
 * gradients only on adapters, frozen base weights bit-identical after AdamW steps, dropout replayed identically,
 * PEFT export, and errors for bad targets. */
#include <cjson/cJSON.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "io/safetensors.h"
#include "models/qwen2.h"
#include "nn/lora.h"
#include "optim/optim.h"
#include "vox_test.h"

typedef struct lm {
  vox_params *reg;
  vox_qwen2 m;
} lm;

static lm *lm_new(uint64_t seed) {
  lm *l = calloc(1, sizeof *l);
  vox_rng rng = vox_rng_make(seed);
  VT_OK(vox_params_new(&l->reg));
  vox_qwen2_config c = {.vocab_size = 50, .hidden_size = 32, .num_hidden_layers = 2, .num_attention_heads = 4,
                        .num_key_value_heads = 2, .intermediate_size = 48, .initializer_range = 0.1f,
                        .attention_bias = true};
  VT_OK(vox_qwen2_init(&l->m, l->reg, "llm.", &c, &rng));
  return l;
}

static void lm_free(lm *l) {
  vox_qwen2_release(&l->m);
  vox_params_free(l->reg);
  free(l);
}

static vox_tensor *ids_2x6(void) {
  return vt_from_i32(VT_SHAPE(2, 6), (int32_t[]){1, 5, 9, 13, 2, 7, 44, 3, 8, 21, 30, 11});
}

static vox_tensor *logits_of(lm *l, vox_tensor *ids) {
  vox_tensor *lg = NULL;
  VT_OK(vox_qwen2_forward(&l->m, ids, NULL, false, NULL, &lg, NULL));
  return lg;
}

/* Makes every lora_B non-zero so the adapters change the output. */
static void randomise_B(lm *l, uint64_t seed) {
  vox_rng rng = vox_rng_make(seed);
  for (int i = 0; i < l->reg->count; i++)
    if (strstr(l->reg->items[i].name, ".lora_B.")) VT_OK(vox_init_normal(l->reg->items[i].tensor, &rng, 0.0, 0.2));
}

static const char *const QV[] = {"llm.model.layers.*.self_attn.q_proj", "*.v_proj", NULL};

Test(lora, wraps_by_glob_with_peft_names_and_zero_B) {
  lm *l = lm_new(1);
  vox_tensor *ids = ids_2x6(), *before = logits_of(l, ids);
  int before_count = l->reg->count, n = 0;
  vox_rng rng = vox_rng_make(9);
  VT_OK(vox_lora_apply(l->reg, QV, 4, 8.0f, 0.0f, &rng, &n));
  cr_assert_eq(n, 4, "2 layers x (q, v): %d", n);
  cr_assert_eq(l->reg->count, before_count + 8);
  vox_tensor *A = vox_params_get(l->reg, "llm.model.layers.1.self_attn.q_proj.lora_A.weight");
  vox_tensor *B = vox_params_get(l->reg, "llm.model.layers.1.self_attn.v_proj.lora_B.weight");
  cr_assert_not_null(A);
  cr_assert_not_null(B);
  cr_assert(A->shape[0] == 4 && A->shape[1] == 32);
  cr_assert(B->shape[0] == 16 && B->shape[1] == 4); /* v_proj out = 2 kv heads x 8 */
  /* A ~ U(+-1/sqrt(in)), B = 0; the model's output is unchanged. */
  float a[4 * 32], bmax = 0, amax = 0;
  VT_OK(vox_tensor_read_f32(A, a));
  for (int i = 0; i < 128; i++) amax = fmaxf(amax, fabsf(a[i]));
  cr_assert(amax > 0.1f && amax <= 1.0f / sqrtf(32.0f) + 1e-6f, "A range %g", amax);
  float bb[64];
  VT_OK(vox_tensor_read_f32(vox_params_get(l->reg, "llm.model.layers.0.self_attn.q_proj.lora_B.weight"), bb));
  for (int i = 0; i < 32 * 4 / 2; i++) bmax = fmaxf(bmax, fabsf(bb[i]));
  cr_assert_eq(bmax, 0.0f);
  vox_tensor *after = logits_of(l, ids);
  vt_assert_close(after, before, 1e-6, 1e-6, "zero-B adapter leaves outputs");
  /* Base weights frozen, adapters trainable, other parameters untouched. */
  cr_assert(!vox_params_get(l->reg, "llm.model.layers.0.self_attn.q_proj.weight")->requires_grad);
  cr_assert(!vox_params_get(l->reg, "llm.model.layers.0.self_attn.q_proj.bias")->requires_grad);
  cr_assert(vox_params_get(l->reg, "llm.model.layers.0.self_attn.k_proj.weight")->requires_grad);
  cr_assert(A->requires_grad && B->requires_grad);
  vox_tensor_release(ids);
  vox_tensor_release(before);
  vox_tensor_release(after);
  lm_free(l);
}

Test(lora, merge_equals_base_plus_adapter) {
  lm *l = lm_new(2);
  vox_rng rng = vox_rng_make(3);
  const char *const all[] = {"*_proj", NULL};
  int n = 0;
  VT_OK(vox_lora_apply(l->reg, all, 3, 6.0f, 0.1f, &rng, &n));
  cr_assert_eq(n, 2 * 7);
  randomise_B(l, 4);
  vox_tensor *ids = ids_2x6();
  vox_lora_set_mode(l->reg, false, 0); /* eval: no dropout */
  vox_tensor *unmerged = logits_of(l, ids);
  vox_tensor *base_w = NULL;
  VT_OK(vox_tensor_clone(vox_params_get(l->reg, "llm.model.layers.0.mlp.up_proj.weight"), &base_w));
  int before = l->reg->count;
  VT_OK(vox_lora_merge(l->reg, &n));
  cr_assert_eq(n, 14);
  cr_assert_eq(l->reg->count, before - 28, "adapters leave the registry");
  cr_assert_null(vox_params_get(l->reg, "llm.model.layers.0.mlp.up_proj.lora_A.weight"));
  vox_tensor *merged = logits_of(l, ids);
  vt_assert_close(merged, unmerged, 1e-4, 1e-4, "merged vs base + adapter");
  /* The weight really changed (the equality is not a no-op). */
  cr_assert(vt_close_ratio(vox_params_get(l->reg, "llm.model.layers.0.mlp.up_proj.weight"), base_w, 1e-6, 0) > 1.0);
  vox_lora **list = NULL;
  VT_OK(vox_lora_list(l->reg, &list, &n));
  cr_assert_eq(n, 0);
  free(list);
  vox_tensor_release(base_w);
  vox_tensor_release(ids);
  vox_tensor_release(unmerged);
  vox_tensor_release(merged);
  lm_free(l);
}

static vox_tensor *loss_of(lm *l, vox_tensor *ids, vox_tensor *targets, bool training) {
  vox_tensor *loss = NULL;
  VT_OK(vox_qwen2_forward(&l->m, ids, targets, training, NULL, NULL, &loss));
  return loss;
}

Test(lora, only_adapters_get_gradients_and_frozen_weights_stay_bit_identical) {
  lm *l = lm_new(5);
  VT_OK(vox_params_set_trainable(l->reg, "llm.*", false, NULL));
  vox_rng rng = vox_rng_make(6);
  VT_OK(vox_lora_apply(l->reg, QV, 4, 16.0f, 0.05f, &rng, NULL));
  /* Snapshot every base parameter. */
  int nb = l->reg->count;
  float **snap = calloc((size_t)nb, sizeof *snap);
  for (int i = 0; i < nb; i++) {
    vox_tensor *t = l->reg->items[i].tensor;
    snap[i] = malloc((size_t)vox_tensor_numel(t) * sizeof(float));
    VT_OK(vox_tensor_read_f32(t, snap[i]));
  }
  vox_optim_config oc = vox_optim_adamw_config(1e-2f, 0.1f);
  vox_optim *opt = NULL;
  VT_OK(vox_optim_new(&oc, &opt));
  int g, added = 0;
  VT_OK(vox_optim_add_group(opt, "lora", -1, -1, &g));
  VT_OK(vox_optim_add_params(opt, g, l->reg, NULL, &added));
  cr_assert_eq(added, 8, "only the adapters are trainable: %d", added);
  vox_tensor *ids = ids_2x6();
  vox_tensor *tg = vt_from_i32(VT_SHAPE(2, 6), (int32_t[]){5, 9, 13, 2, 7, -100, 3, 8, 21, 30, 11, 4});
  double first = 0, last = 0;
  for (int s = 0; s < 4; s++) {
    vox_lora_set_mode(l->reg, true, 100 + s);
    vox_tensor *loss = loss_of(l, ids, tg, true);
    VT_OK(vox_tensor_item(loss, s == 0 ? &first : &last));
    VT_OK(vox_backward(loss, NULL));
    vox_tensor_release(loss);
    for (int i = 0; i < l->reg->count; i++) {
      bool adapter = strstr(l->reg->items[i].name, ".lora_") != NULL;
      cr_assert_eq(l->reg->items[i].tensor->grad != NULL, adapter, "%s grad %p", l->reg->items[i].name,
                   (void *)l->reg->items[i].tensor->grad);
    }
    VT_OK(vox_optim_step(opt));
    vox_optim_zero_grad(opt);
  }
  cr_log_info("lora loss %.4f -> %.4f", first, last);
  cr_assert(last < first, "the adapters learn: %g -> %g", first, last);
  int checked = 0;
  for (int i = 0; i < nb; i++) {
    vox_tensor *t = l->reg->items[i].tensor;
    int64_t n = vox_tensor_numel(t);
    bool adapter = strstr(l->reg->items[i].name, ".lora_") != NULL;
    checked += !adapter;
    float *now = malloc((size_t)n * sizeof *now);
    VT_OK(vox_tensor_read_f32(t, now));
    bool same = !memcmp(now, snap[i], (size_t)n * sizeof *now);
    cr_assert(adapter ? !same || strstr(l->reg->items[i].name, "lora_A") : same, "%s: %s", l->reg->items[i].name,
              adapter ? "adapter did not train" : "frozen weight changed");
    free(now);
    free(snap[i]);
  }
  free(snap);
  cr_assert_eq(checked, nb - 8);
  vox_optim_free(opt);
  vox_tensor_release(ids);
  vox_tensor_release(tg);
  lm_free(l);
}

Test(lora, dropout_depends_on_seed_not_call_order) {
  lm *l = lm_new(7);
  vox_rng rng = vox_rng_make(8);
  VT_OK(vox_lora_apply(l->reg, QV, 2, 4.0f, 0.5f, &rng, NULL));
  randomise_B(l, 9);
  vox_tensor *ids = ids_2x6(), *tg = vt_from_i32(VT_SHAPE(2, 6), (int32_t[]){5, 9, 13, 2, 7, 1, 3, 8, 21, 30, 11, 4});
  double a, b, c, e;
  vox_lora_set_mode(l->reg, true, 11);
  vox_tensor *l1 = loss_of(l, ids, tg, true), *l2 = loss_of(l, ids, tg, true);
  vox_lora_set_mode(l->reg, true, 12);
  vox_tensor *l3 = loss_of(l, ids, tg, true);
  vox_lora_set_mode(l->reg, false, 12);
  vox_tensor *l4 = loss_of(l, ids, tg, false);
  VT_OK(vox_tensor_item(l1, &a));
  VT_OK(vox_tensor_item(l2, &b));
  VT_OK(vox_tensor_item(l3, &c));
  VT_OK(vox_tensor_item(l4, &e));
  cr_assert_eq(a, b, "same seed, same masks");
  cr_assert_neq(a, c, "another seed, other masks");
  cr_assert_neq(a, e, "eval mode has no dropout");
  vox_tensor *all[] = {l1, l2, l3, l4, ids, tg};
  for (int i = 0; i < 6; i++) vox_tensor_release(all[i]);
  lm_free(l);
}

Test(lora, peft_export) {
  lm *l = lm_new(10);
  vox_rng rng = vox_rng_make(11);
  VT_OK(vox_lora_apply(l->reg, QV, 4, 8.0f, 0.05f, &rng, NULL));
  randomise_B(l, 12);
  char dir[] = "/tmp/vox_lora_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  VT_OK(vox_lora_save_peft(l->reg, "llm.", dir, "Qwen/Qwen2.5-0.5B-Instruct", VOX_F32));
  char path[256];
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(path, &st));
  cr_assert_eq(vox_safetensors_count(st), 8);
  const char *nm = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight";
  cr_assert(vox_safetensors_has(st, nm));
  vox_tensor *back = NULL;
  VT_OK(vox_safetensors_read_tensor(st, nm, VOX_CPU, VOX_F32, &back));
  vt_assert_close(back, vox_params_get(l->reg, "llm.model.layers.1.self_attn.v_proj.lora_B.weight"), 0, 0, "lora_B");
  vox_tensor_release(back);
  vox_safetensors_close(st);
  snprintf(path, sizeof path, "%s/adapter_config.json", dir);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  cJSON *j = cJSON_Parse(buf);
  cr_assert_not_null(j);
  cr_assert_eq(cJSON_GetObjectItem(j, "r")->valueint, 4);
  cr_assert_float_eq(cJSON_GetObjectItem(j, "lora_alpha")->valuedouble, 8.0, 1e-9);
  cr_assert_str_eq(cJSON_GetObjectItem(j, "peft_type")->valuestring, "LORA");
  cJSON *tm = cJSON_GetObjectItem(j, "target_modules");
  cr_assert_eq(cJSON_GetArraySize(tm), 2);
  cr_assert_str_eq(cJSON_GetArrayItem(tm, 0)->valuestring, "q_proj");
  cr_assert_str_eq(cJSON_GetArrayItem(tm, 1)->valuestring, "v_proj");
  cJSON_Delete(j);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
  lm_free(l);
}

Test(lora, errors_leave_the_model_unchanged) {
  lm *l = lm_new(13);
  vox_rng rng = vox_rng_make(14);
  int count = l->reg->count;
  const char *const bad[] = {"*.q_proj", "*.qq_proj", NULL};
  cr_assert_eq(vox_lora_apply(l->reg, bad, 4, 8.0f, 0.0f, &rng, NULL), VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "*.qq_proj"), "%s", vox_last_error());
  cr_assert_eq(l->reg->count, count, "nothing was wrapped");
  cr_assert(vox_params_get(l->reg, "llm.model.layers.0.self_attn.q_proj.weight")->requires_grad);
  cr_assert_eq(vox_lora_apply(l->reg, QV, 0, 8.0f, 0.0f, &rng, NULL), VOX_ERR_INVALID);
  cr_assert_eq(vox_lora_apply(l->reg, QV, 2, 8.0f, 1.0f, &rng, NULL), VOX_ERR_INVALID);
  VT_OK(vox_lora_apply(l->reg, QV, 2, 8.0f, 0.0f, &rng, NULL));
  cr_assert_eq(vox_lora_apply(l->reg, QV, 2, 8.0f, 0.0f, &rng, NULL), VOX_ERR_STATE);
  cr_assert(strstr(vox_last_error(), "already has an adapter"), "%s", vox_last_error());
  lm_free(l);
}

/* The dropout mask is a function of (seed, adapter), so activation checkpointing's recompute replays it: the
 * gradients with and without checkpointing agree. */
Test(lora, dropout_gradients_agree_with_activation_checkpointing) {
  float *g[2];
  int64_t total = 0;
  for (int ck = 0; ck < 2; ck++) {
    lm *l = lm_new(20);
    for (int i = 0; i < l->m.cfg.num_hidden_layers; i++) l->m.layers[i].cfg.checkpoint = ck;
    VT_OK(vox_params_set_trainable(l->reg, "llm.*", false, NULL));
    vox_rng rng = vox_rng_make(21);
    const char *const all[] = {"*_proj", NULL};
    VT_OK(vox_lora_apply(l->reg, all, 2, 4.0f, 0.3f, &rng, NULL));
    randomise_B(l, 22);
    vox_lora_set_mode(l->reg, true, 1234);
    vox_tensor *ids = ids_2x6(), *tg = vt_from_i32(VT_SHAPE(2, 6), (int32_t[]){5, 9, 13, 2, 7, 1, 3, 8, 21, 30, 11, 4});
    vox_tensor *loss = loss_of(l, ids, tg, true);
    VT_OK(vox_backward(loss, NULL));
    total = 0;
    for (int i = 0; i < l->reg->count; i++)
      if (l->reg->items[i].tensor->grad) total += vox_tensor_numel(l->reg->items[i].tensor);
    g[ck] = malloc((size_t)total * sizeof(float));
    int64_t off = 0;
    for (int i = 0; i < l->reg->count; i++)
      if (l->reg->items[i].tensor->grad) {
        VT_OK(vox_tensor_read_f32(l->reg->items[i].tensor->grad, g[ck] + off));
        off += vox_tensor_numel(l->reg->items[i].tensor);
      }
    vox_tensor_release(loss);
    vox_tensor_release(ids);
    vox_tensor_release(tg);
    lm_free(l);
  }
  cr_assert(total > 0);
  vox_tensor *a = vt_from_f32(VT_SHAPE(total), g[0]), *b = vt_from_f32(VT_SHAPE(total), g[1]);
  vt_assert_close(b, a, 1e-6, 1e-5, "checkpointed vs plain LoRA gradients");
  vox_tensor_release(a);
  vox_tensor_release(b);
  free(g[0]);
  free(g[1]);
}
