/* Projector tests: output lengths per kind (MinMo conv stride 2 = ceil(len/2), SLAM stacking drops the tail),
 * padded batches equal to each sample alone, parameter names, gradients, and the output projector. */
#include <criterion/logging.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "models/projector.h"
#include "vox_test.h"

typedef struct proj {
  vox_params *reg;
  vox_projector p;
} proj;

static proj *proj_new(vox_projector_kind kind, uint64_t seed) {
  proj *p = calloc(1, sizeof *p);
  VT_OK(vox_params_new(&p->reg));
  vox_rng rng = vox_rng_make(seed);
  vox_projector_config c = {.kind = kind, .in_dim = 16, .out_dim = 24, .n_heads = 2, .d_ff = 32, .hidden = 40, .k = 3};
  VT_OK(vox_projector_init(&p->p, p->reg, "input_projector.", &c, &rng));
  return p;
}

static void proj_free(proj *p) {
  vox_projector_release(&p->p);
  vox_params_free(p->reg);
  free(p);
}

Test(projector, output_lengths_and_names) {
  proj *m = proj_new(VOX_PROJ_MINMO, 1), *l = proj_new(VOX_PROJ_LINEAR, 2), *f = proj_new(VOX_PROJ_MLP, 3);
  int64_t lens[] = {1, 2, 3, 10, 11, 0};
  int64_t want_m[] = {1, 1, 2, 5, 6, 0}, want_l[] = {0, 0, 1, 3, 3, 0}, want_f[] = {1, 2, 3, 10, 11, 0};
  for (int i = 0; i < 6; i++) {
    cr_assert_eq(vox_projector_out_len(&m->p, lens[i]), want_m[i], "minmo %lld", (long long)lens[i]);
    cr_assert_eq(vox_projector_out_len(&l->p, lens[i]), want_l[i], "linear %lld", (long long)lens[i]);
    cr_assert_eq(vox_projector_out_len(&f->p, lens[i]), want_f[i], "mlp %lld", (long long)lens[i]);
  }
  cr_assert_eq(m->p.cfg.n_layers, 2, "MinMo's two transformer layers by default");
  cr_assert_not_null(vox_params_get(m->reg, "input_projector.layers.1.self_attn.q_proj.weight"));
  vox_tensor *cw = vox_params_get(m->reg, "input_projector.conv.weight");
  cr_assert(cw && cw->shape[0] == 24 && cw->shape[1] == 16 && cw->shape[2] == 3);
  vox_tensor *l1 = vox_params_get(l->reg, "input_projector.linear1.weight");
  cr_assert(l1 && l1->shape[0] == 40 && l1->shape[1] == 48, "k=3 stacked frames");
  cr_assert_not_null(vox_params_get(f->reg, "input_projector.linear2.bias"));
  proj_free(m);
  proj_free(l);
  proj_free(f);
}

/* Forward of a padded batch vs each row alone at its own length. */
static void batch_vs_rows(vox_projector_kind kind) {
  proj *p = proj_new(kind, 10 + kind);
  vox_tensor *x = vt_randn(VT_SHAPE(3, 11, 16), 5, 1.0f, false);
  int32_t lens[3] = {11, 7, 4};
  vox_tensor *lt = vt_from_i32(VT_SHAPE(3), lens);
  vox_tensor *y = NULL, *yl = NULL;
  VT_OK(vox_projector_forward(&p->p, x, lt, false, NULL, &y, &yl));
  int32_t ol[3];
  VT_OK(vox_tensor_read_i32(yl, ol));
  for (int b = 0; b < 3; b++) {
    cr_assert_eq(ol[b], vox_projector_out_len(&p->p, lens[b]));
    vox_tensor *row = NULL, *rc = NULL, *ry = NULL, *ref = NULL, *got = NULL, *g2 = NULL;
    VT_OK(vox_tensor_view_slice(x, 0, b, b + 1, 1, &row));
    VT_OK(vox_tensor_view_slice(row, 1, 0, lens[b], 1, &rc));
    vox_tensor *rcc = NULL;
    VT_OK(vox_tensor_clone(rc, &rcc));
    VT_OK(vox_projector_forward(&p->p, rcc, NULL, false, NULL, &ry, NULL));
    cr_assert_eq(ry->shape[1], ol[b]);
    VT_OK(vox_tensor_view_slice(y, 0, b, b + 1, 1, &got));
    VT_OK(vox_tensor_view_slice(got, 1, 0, ol[b], 1, &g2));
    VT_OK(vox_tensor_clone(g2, &ref));
    vt_assert_close(ref, ry, 1e-5, 1e-4, vox_projector_kind_name(kind));
    vox_tensor *all[] = {row, rc, rcc, ry, ref, got, g2};
    for (int i = 0; i < 7; i++) vox_tensor_release(all[i]);
  }
  vox_tensor_release(x);
  vox_tensor_release(lt);
  vox_tensor_release(y);
  vox_tensor_release(yl);
  proj_free(p);
}

Test(projector, minmo_padded_batch_equals_rows_alone) { batch_vs_rows(VOX_PROJ_MINMO); }
Test(projector, linear_padded_batch_equals_rows_alone) { batch_vs_rows(VOX_PROJ_LINEAR); }
Test(projector, mlp_padded_batch_equals_rows_alone) { batch_vs_rows(VOX_PROJ_MLP); }

Test(projector, gradients_reach_input_and_every_parameter) {
  proj *p = proj_new(VOX_PROJ_MINMO, 20);
  vox_tensor *x = vt_randn(VT_SHAPE(2, 9, 16), 6, 1.0f, true), *lt = vt_from_i32(VT_SHAPE(2), (int32_t[]){9, 5});
  vox_tensor *y = NULL, *s = NULL;
  VT_OK(vox_projector_forward(&p->p, x, lt, true, NULL, &y, NULL));
  VT_OK(vox_op_sum(y, 0, NULL, false, &s));
  VT_OK(vox_backward(s, NULL));
  cr_assert_not_null(x->grad);
  float g[2 * 9 * 16];
  VT_OK(vox_tensor_read_f32(x->grad, g));
  /* Padded frames of row 1 (t >= 5) get no gradient: they are masked keys and zeroed before the conv. */
  for (int t = 5; t < 9; t++)
    for (int c = 0; c < 16; c++) cr_assert_eq(g[(9 + t) * 16 + c], 0.0f, "padding frame %d", t);
  for (int i = 0; i < p->reg->count; i++) cr_assert_not_null(p->reg->items[i].tensor->grad, "%s", p->reg->items[i].name);
  vox_tensor_release(x);
  vox_tensor_release(lt);
  vox_tensor_release(y);
  vox_tensor_release(s);
  proj_free(p);
}

Test(projector, errors_and_output_projector) {
  proj *p = proj_new(VOX_PROJ_MLP, 30);
  vox_tensor *x = vt_randn(VT_SHAPE(2, 4, 15), 7, 1.0f, false), *y = NULL;
  cr_assert_eq(vox_projector_forward(&p->p, x, NULL, false, NULL, &y, NULL), VOX_ERR_SHAPE);
  cr_assert(strstr(vox_last_error(), "[2,4,15]") || strstr(vox_last_error(), "f32[2,4,15]"), "%s", vox_last_error());
  vox_projector_kind k;
  cr_assert_eq(vox_projector_kind_parse("qformer", &k), VOX_ERR_INVALID);
  vox_output_projector op;
  vox_rng rng = vox_rng_make(1);
  VT_OK(vox_output_projector_init(&op, p->reg, "output_projector.", 15, 8, &rng));
  VT_OK(vox_output_projector_forward(&op, x, &y));
  cr_assert(y->shape[0] == 2 && y->shape[1] == 4 && y->shape[2] == 8);
  vox_tensor_release(x);
  vox_tensor_release(y);
  proj_free(p);
}
