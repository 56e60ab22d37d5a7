/* Optimizer tests: AdamW and SGD against hand-computed values and PyTorch constants, schedules, clipping,
 * no-decay selection, gradient accumulation, parameter groups and named state. */
#include <math.h>

#include "core/autograd.h"
#include "optim/optim.h"
#include "optim/schedule.h"
#include "vox_test.h"

static const float W0[6] = {0.5f, -1.0f, 2.0f, 0.1f, 0.0f, -0.3f};
static const float B0[3] = {0.2f, -0.4f, 0.6f};
static const float GW[3][6] = {{0.1f, -0.2f, 0.3f, -0.4f, 0.5f, 0.0f},
                               {0.05f, 0.1f, -0.3f, 0.2f, -0.1f, 0.7f},
                               {-0.3f, 0.2f, 0.1f, 0.0f, 0.4f, -0.2f}};
static const float GB[3][3] = {{1.0f, -2.0f, 0.5f}, {0.3f, 0.3f, -0.1f}, {-1.0f, 0.0f, 2.0f}};

static vox_tensor *leaf(int ndim, const int64_t *shape, const float *data) {
  vox_tensor *t = vt_from_f32(ndim, shape, data);
  t->requires_grad = true;
  return t;
}

static void set_grad(vox_tensor *p, const float *g, float mul) {
  float tmp[64];
  int64_t n = vox_tensor_numel(p);
  for (int64_t i = 0; i < n; i++) tmp[i] = g[i] * mul;
  vox_tensor_drop(&p->grad);
  p->grad = vt_from_f32(p->ndim, p->shape, tmp);
}

/* torch snippet (torch 1.13):
 *   w = torch.tensor([[0.5,-1.0,2.0],[0.1,0.0,-0.3]], requires_grad=True); b = torch.tensor([0.2,-0.4,0.6], ...)
 *   opt = torch.optim.AdamW([{'params':[w],'weight_decay':0.1},{'params':[b],'weight_decay':0.0}],
 *                           lr=0.01, betas=(0.9,0.99), eps=1e-8)
 *   for t in range(3): w.grad = GW[t]; b.grad = GB[t]; opt.step()
 * Here the bias gets no decay through the default rule, not through a separate group. */
Test(optim, adamw_matches_torch) {
  vox_tensor *w = leaf(VT_SHAPE(2, 3), W0), *b = leaf(VT_SHAPE(3), B0);
  vox_optim_config cfg = vox_optim_adamw_config(0.01f, 0.1f);
  cfg.beta2 = 0.99f;
  vox_optim *opt = NULL;
  int g;
  VT_OK(vox_optim_new(&cfg, &opt));
  VT_OK(vox_optim_add_group(opt, "all", -1, -1, &g));
  VT_OK(vox_optim_add_param(opt, g, "layer.weight", w));
  VT_OK(vox_optim_add_param(opt, g, "layer.bias", b));
  for (int t = 0; t < 3; t++) {
    set_grad(w, GW[t], 1.0f);
    set_grad(b, GB[t], 1.0f);
    VT_OK(vox_optim_step(opt));
  }
  const float ew[6] = {0.4826563894748688f, -0.9870857000350952f, 1.9834792613983154f,
                       0.11441092193126678f, -0.02215476706624031f, -0.31029176712036133f};
  const float eb[3] = {0.1810731291770935f, -0.3801785409450531f, 0.5777419209480286f};
  vt_assert_close_f32(w, ew, 1e-6, 1e-5, "adamw weight");
  vt_assert_close_f32(b, eb, 1e-6, 1e-5, "adamw bias");
  cr_assert_eq(opt->step, 3);
  vox_optim_free(opt);
  vox_tensor_release(w);
  vox_tensor_release(b);
}

/* First AdamW step by hand: m = (1-b1) g, v = (1-b2) g^2, so m/bc1 / (sqrt(v/bc2) + eps) = g / (|g| + eps):
 * w1 = w0 (1 - lr wd) - lr sign(g). */
Test(optim, adamw_first_step_by_hand) {
  vox_tensor *w = leaf(VT_SHAPE(2, 3), W0);
  vox_optim_config cfg = vox_optim_adamw_config(0.5f, 0.2f);
  vox_optim *opt = NULL;
  VT_OK(vox_optim_new(&cfg, &opt));
  VT_OK(vox_optim_add_group(opt, NULL, -1, -1, NULL));
  VT_OK(vox_optim_add_param(opt, 0, "w", w));
  set_grad(w, GW[0], 1.0f);
  VT_OK(vox_optim_step(opt));
  float e[6];
  for (int i = 0; i < 6; i++) {
    float gi = GW[0][i];
    e[i] = W0[i] * (1.0f - 0.5f * 0.2f) - 0.5f * (gi / (fabsf(gi) + 1e-8f));
  }
  vt_assert_close_f32(w, e, 1e-6, 1e-5, "adamw step 1");
  vox_tensor *m = NULL, *v = NULL;
  VT_OK(vox_optim_state_find(opt, "w", "m", &m));
  VT_OK(vox_optim_state_find(opt, "w", "v", &v));
  float em[6], ev[6];
  for (int i = 0; i < 6; i++) em[i] = 0.1f * GW[0][i], ev[i] = 0.001f * GW[0][i] * GW[0][i];
  vt_assert_close_f32(m, em, 1e-7, 1e-5, "m");
  vt_assert_close_f32(v, ev, 1e-9, 1e-5, "v");
  cr_assert_neq(vox_optim_state_find(opt, "w", "momentum", &m), VOX_OK);
  cr_assert_neq(vox_optim_state_find(opt, "nope", "m", &m), VOX_OK);
  vox_optim_free(opt);
  vox_tensor_release(w);
}

/* torch snippet: opt = torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01);
 *   for t in range(3): w.grad = GW[t]; opt.step() */
Test(optim, sgd_nesterov_matches_torch) {
  vox_tensor *w = leaf(VT_SHAPE(2, 3), W0);
  vox_optim_config cfg = vox_optim_sgd_config(0.1f, 0.9f, true, 0.01f);
  vox_optim *opt = NULL;
  VT_OK(vox_optim_new(&cfg, &opt));
  VT_OK(vox_optim_add_group(opt, NULL, -1, -1, NULL));
  VT_OK(vox_optim_add_param(opt, 0, "w", w));
  for (int t = 0; t < 3; t++) {
    set_grad(w, GW[t], 1.0f);
    VT_OK(vox_optim_step(opt));
  }
  const float e[6] = {0.5051634311676025f, -0.9884546399116516f, 1.9432601928710938f,
                      0.1822170615196228f, -0.2203715443611145f, -0.44903677701950073f};
  vt_assert_close_f32(w, e, 1e-6, 1e-5, "sgd nesterov");
  cr_assert_eq(vox_optim_state_count(opt), 1);
  vox_optim_free(opt);
  vox_tensor_release(w);
}

/* Plain momentum by hand: buf1 = g1, w1 = w0 - lr g1; buf2 = mu g1 + g2, w2 = w1 - lr buf2. */
Test(optim, sgd_momentum_by_hand) {
  vox_tensor *w = leaf(VT_SHAPE(2, 3), W0);
  vox_optim_config cfg = vox_optim_sgd_config(0.1f, 0.5f, false, 0.0f);
  vox_optim *opt = NULL;
  VT_OK(vox_optim_new(&cfg, &opt));
  VT_OK(vox_optim_add_group(opt, NULL, -1, -1, NULL));
  VT_OK(vox_optim_add_param(opt, 0, "w", w));
  for (int t = 0; t < 2; t++) {
    set_grad(w, GW[t], 1.0f);
    VT_OK(vox_optim_step(opt));
  }
  float e[6];
  for (int i = 0; i < 6; i++) e[i] = W0[i] - 0.1f * GW[0][i] - 0.1f * (0.5f * GW[0][i] + GW[1][i]);
  vt_assert_close_f32(w, e, 1e-6, 1e-5, "sgd momentum");
  vox_optim_free(opt);
  vox_tensor_release(w);
}

Test(optim, no_decay_selection) {
  vox_tensor *w2 = leaf(VT_SHAPE(2, 3), W0), *b1 = leaf(VT_SHAPE(3), B0);
  cr_assert(vox_optim_default_decay("model.layers.0.self_attn.q_proj.weight", w2));
  cr_assert(vox_optim_default_decay("model.embed_tokens.weight", w2));
  cr_assert(!vox_optim_default_decay("model.layers.0.self_attn.q_proj.bias", b1));
  cr_assert(!vox_optim_default_decay("model.layers.0.input_layernorm.weight", b1));
  cr_assert(!vox_optim_default_decay("model.norm.weight", b1));
  cr_assert(!vox_optim_default_decay("encoder.layer_norm.weight", w2)); /* by name, whatever the shape */
  cr_assert(!vox_optim_default_decay("some.scale", b1));               /* by ndim */
  /* A decayed and an undecayed parameter with zero gradients: only the first shrinks. */
  vox_optim_config cfg = vox_optim_adamw_config(0.1f, 0.5f);
  vox_optim *opt = NULL;
  VT_OK(vox_optim_new(&cfg, &opt));
  VT_OK(vox_optim_add_group(opt, NULL, -1, -1, NULL));
  VT_OK(vox_optim_add_param(opt, 0, "a.weight", w2));
  VT_OK(vox_optim_add_param(opt, 0, "a.bias", b1));
  cr_assert(opt->entries[0].decay && !opt->entries[1].decay);
  const float z[6] = {0};
  set_grad(w2, z, 1.0f);
  set_grad(b1, z, 1.0f);
  VT_OK(vox_optim_step(opt));
  float ew[6];
  for (int i = 0; i < 6; i++) ew[i] = W0[i] * 0.95f;
  vt_assert_close_f32(w2, ew, 1e-7, 1e-6, "decayed");
  vt_assert_close_f32(b1, B0, 0, 0, "not decayed");
  vox_optim_free(opt);
  vox_tensor_release(w2);
  vox_tensor_release(b1);
}

/* Two backwards accumulate 2g into .grad; grad_scale 1/2 must give exactly the step of g. */
Test(optim, accumulation_scale) {
  vox_tensor *a = leaf(VT_SHAPE(2, 3), W0), *b = leaf(VT_SHAPE(2, 3), W0);
  vox_optim *oa = NULL, *ob = NULL;
  vox_optim_config cfg = vox_optim_adamw_config(0.01f, 0.1f);
  VT_OK(vox_optim_new(&cfg, &oa));
  VT_OK(vox_optim_new(&cfg, &ob));
  VT_OK(vox_optim_add_group(oa, NULL, -1, -1, NULL));
  VT_OK(vox_optim_add_group(ob, NULL, -1, -1, NULL));
  VT_OK(vox_optim_add_param(oa, 0, "w", a));
  VT_OK(vox_optim_add_param(ob, 0, "w", b));
  vox_optim_set_grad_scale(ob, 0.5f);
  for (int t = 0; t < 3; t++) {
    set_grad(a, GW[t], 1.0f);
    set_grad(b, GW[t], 2.0f);
    VT_OK(vox_optim_step(oa));
    VT_OK(vox_optim_step(ob));
  }
  vt_assert_close(b, a, 1e-7, 1e-6, "accumulated");
  vox_optim_free(oa);
  vox_optim_free(ob);
  vox_tensor_release(a);
  vox_tensor_release(b);
}

Test(optim, groups_and_registry) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_tensor *enc = NULL, *proj = NULL, *frozen = NULL;
  VT_OK(vox_params_create(reg, "encoder.weight", VOX_CPU, VT_SHAPE(2, 3), &enc));
  VT_OK(vox_params_create(reg, "projector.weight", VOX_CPU, VT_SHAPE(2, 3), &proj));
  VT_OK(vox_params_create(reg, "llm.weight", VOX_CPU, VT_SHAPE(2, 3), &frozen));
  VT_OK(vox_tensor_fill_(enc, 1.0));
  VT_OK(vox_tensor_fill_(proj, 1.0));
  VT_OK(vox_tensor_fill_(frozen, 1.0));
  VT_OK(vox_params_set_trainable(reg, "llm.*", false, NULL));
  vox_optim_config cfg = vox_optim_sgd_config(1.0f, 0.0f, false, 0.0f);
  vox_optim *opt = NULL;
  int ge, gp, n;
  VT_OK(vox_optim_new(&cfg, &opt));
  VT_OK(vox_optim_add_group(opt, "encoder", 0.1f, 0.0f, &ge));
  VT_OK(vox_optim_add_group(opt, "projector", -1, -1, &gp));
  VT_OK(vox_optim_add_params(opt, ge, reg, "encoder.*", &n));
  cr_assert_eq(n, 1);
  VT_OK(vox_optim_add_params(opt, gp, reg, NULL, &n)); /* the rest that trains: projector only */
  cr_assert_eq(n, 1);
  cr_assert_eq(opt->n_entries, 2);
  cr_assert_eq(vox_optim_state_count(opt), 0); /* plain SGD keeps no state */
  const float ones[6] = {1, 1, 1, 1, 1, 1};
  set_grad(enc, ones, 1.0f);
  set_grad(proj, ones, 1.0f);
  vox_optim_set_lr_factor(opt, 0.5f);
  cr_assert_float_eq(vox_optim_group_lr(opt, ge), 0.05f, 1e-7);
  VT_OK(vox_optim_step(opt));
  float e1[6], e2[6];
  for (int i = 0; i < 6; i++) e1[i] = 1.0f - 0.05f, e2[i] = 1.0f - 0.5f;
  vt_assert_close_f32(enc, e1, 1e-7, 1e-6, "encoder group");
  vt_assert_close_f32(proj, e2, 1e-7, 1e-6, "projector group");
  vt_assert_close_f32(frozen, ones, 0, 0, "frozen");
  vox_optim_zero_grad(opt);
  cr_assert_null(enc->grad);
  cr_assert_null(proj->grad);
  vox_optim_free(opt);
  vox_params_free(reg);
}

Test(optim, schedules) {
  vox_schedule s = {.kind = VOX_SCHED_COSINE, .warmup_steps = 10, .total_steps = 110, .min_lr_ratio = 0.1};
  VT_OK(vox_schedule_validate(&s));
  cr_assert_float_eq(vox_schedule_factor(&s, 0), 0.1, 1e-12);
  cr_assert_float_eq(vox_schedule_factor(&s, 4), 0.5, 1e-12);
  cr_assert_float_eq(vox_schedule_factor(&s, 9), 1.0, 1e-12);
  cr_assert_float_eq(vox_schedule_factor(&s, 10), 1.0, 1e-12);
  cr_assert_float_eq(vox_schedule_factor(&s, 60), 0.55, 1e-12); /* halfway: 0.1 + 0.9 * 0.5 */
  cr_assert_float_eq(vox_schedule_factor(&s, 35), 0.1 + 0.9 * 0.5 * (1 + cos(M_PI * 0.25)), 1e-12);
  cr_assert_float_eq(vox_schedule_factor(&s, 110), 0.1, 1e-12);
  cr_assert_float_eq(vox_schedule_factor(&s, 500), 0.1, 1e-12);
  s.kind = VOX_SCHED_LINEAR;
  cr_assert_float_eq(vox_schedule_factor(&s, 35), 0.1 + 0.9 * 0.75, 1e-12);
  cr_assert_float_eq(vox_schedule_factor(&s, 110), 0.1, 1e-12);
  s.kind = VOX_SCHED_CONSTANT;
  cr_assert_float_eq(vox_schedule_factor(&s, 2), 0.3, 1e-12);
  cr_assert_float_eq(vox_schedule_factor(&s, 1000), 1.0, 1e-12);
  vox_schedule_kind k;
  VT_OK(vox_schedule_kind_parse("cosine", &k));
  cr_assert_eq(k, VOX_SCHED_COSINE);
  cr_assert_eq(vox_schedule_kind_parse("cosin", &k), VOX_ERR_INVALID);
  vox_schedule bad = {.kind = VOX_SCHED_COSINE, .warmup_steps = 10, .total_steps = 5};
  cr_assert_eq(vox_schedule_validate(&bad), VOX_ERR_INVALID);
}

/* Gradients (3,4) and (0,0,12): global norm 13. Clipping to 6.5 halves them (to within the 1e-6 guard). */
Test(optim, clip_grad_norm) {
  const float z[3] = {0};
  vox_tensor *a = leaf(VT_SHAPE(2), z), *b = leaf(VT_SHAPE(3), z);
  vox_optim_config cfg = vox_optim_sgd_config(1.0f, 0.0f, false, 0.0f);
  vox_optim *opt = NULL;
  VT_OK(vox_optim_new(&cfg, &opt));
  VT_OK(vox_optim_add_group(opt, NULL, -1, -1, NULL));
  VT_OK(vox_optim_add_param(opt, 0, "a", a));
  VT_OK(vox_optim_add_param(opt, 0, "b", b));
  const float ga[2] = {3, 4}, gb[3] = {0, 0, 12};
  set_grad(a, ga, 1.0f);
  set_grad(b, gb, 1.0f);
  double norm = 0;
  VT_OK(vox_optim_clip_grad_norm(opt, 100.0, &norm));
  cr_assert_float_eq(norm, 13.0, 1e-5);
  vt_assert_close_f32(a->grad, ga, 0, 0, "not clipped below max");
  vox_optim_set_grad_scale(opt, 0.5f); /* the norm is that of the gradient the step will use */
  VT_OK(vox_optim_grad_norm(opt, &norm));
  cr_assert_float_eq(norm, 6.5, 1e-5);
  vox_optim_set_grad_scale(opt, 1.0f);
  VT_OK(vox_optim_clip_grad_norm(opt, 6.5, &norm));
  cr_assert_float_eq(norm, 13.0, 1e-5);
  const float ea[2] = {1.5f, 2.0f}, eb[3] = {0, 0, 6.0f};
  vt_assert_close_f32(a->grad, ea, 1e-6, 1e-5, "clipped a");
  vt_assert_close_f32(b->grad, eb, 1e-6, 1e-5, "clipped b");
  VT_OK(vox_optim_grad_norm(opt, &norm));
  cr_assert_float_eq(norm, 6.5, 1e-4);
  vox_optim_free(opt);
  vox_tensor_release(a);
  vox_tensor_release(b);
}

Test(optim, rejects_bad_config) {
  vox_optim *opt = NULL;
  vox_optim_config cfg = vox_optim_adamw_config(0.01f, 0.0f);
  cfg.beta1 = 1.0f;
  cr_assert_eq(vox_optim_new(&cfg, &opt), VOX_ERR_INVALID);
  cfg = vox_optim_sgd_config(0.1f, 0.0f, true, 0.0f);
  cr_assert_eq(vox_optim_new(&cfg, &opt), VOX_ERR_INVALID);
  cr_assert_null(opt);
}
