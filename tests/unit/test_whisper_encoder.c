/* Whisper encoder tests: HF names, sinusoidal positions, output shapes for odd/even frame counts, a padded row equal
 * to that row alone, the chunk (streaming) mask hiding later chunks, gradients reaching the weights, errors. */
#include <criterion/logging.h>
#include <math.h>
#include <string.h>

#include "core/autograd.h"
#include "models/whisper_encoder.h"
#include "vox_test.h"

static vox_whisper_config small_cfg(void) {
  return (vox_whisper_config){.num_mel_bins = 8, .d_model = 16, .encoder_layers = 2, .encoder_attention_heads = 4,
                              .encoder_ffn_dim = 32, .max_source_positions = 12, .init_std = 0.2f};
}

static void build(vox_params **reg, vox_whisper_encoder *m, const char *prefix) {
  VT_OK(vox_params_new(reg));
  vox_rng rng = vox_rng_make(5);
  vox_whisper_config cfg = small_cfg();
  VT_OK(vox_whisper_encoder_init(m, *reg, prefix, &cfg, &rng));
  /* Non-trivial LayerNorm affines and biases, so padding and masks are exercised through them too. */
  for (int i = 0; i < (*reg)->count; i++) {
    vox_param *p = &(*reg)->items[i];
    if (p->tensor->ndim == 1) VT_OK(vox_init_uniform(p->tensor, &rng, 0.5, 1.5));
  }
}

Test(whisper_encoder, names_and_positions) {
  vox_params *reg = NULL;
  vox_whisper_encoder m;
  build(&reg, &m, "audio.");
  const char *names[] = {"audio.encoder.conv1.weight", "audio.encoder.conv1.bias", "audio.encoder.conv2.weight",
                         "audio.encoder.embed_positions.weight", "audio.encoder.layers.1.self_attn.k_proj.weight",
                         "audio.encoder.layers.1.self_attn.out_proj.bias",
                         "audio.encoder.layers.0.self_attn_layer_norm.weight", "audio.encoder.layers.0.fc1.weight",
                         "audio.encoder.layers.0.fc2.bias", "audio.encoder.layers.0.final_layer_norm.bias",
                         "audio.encoder.layer_norm.weight"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    cr_assert_not_null(vox_params_get(reg, names[i]), "missing %s", names[i]);
  cr_assert_null(vox_params_get(reg, "audio.encoder.layers.0.self_attn.k_proj.bias"));
  cr_assert_eq(vox_params_get(reg, "audio.encoder.conv1.weight")->shape[1], 8);
  cr_assert_eq(vox_params_get(reg, "audio.encoder.conv1.weight")->shape[2], 3);
  /* conv1, conv2 (w+b), positions, 2 x (norm w+b, q w+b, k w, v w+b, out w+b, norm w+b, fc1 w+b, fc2 w+b), ln */
  cr_assert_eq(reg->count, 5 + 2 * 15 + 2);
  cr_assert(!m.embed_positions->requires_grad);
  /* sinusoids(12, 16): row t = [sin(t * inv_i) | cos(t * inv_i)], inv_i = 10000^(-i / 7) */
  const float *pe = vox_tensor_f32(m.embed_positions);
  for (int t = 0; t < 12; t++)
    for (int i = 0; i < 8; i++) {
      double a = t * exp(-log(10000.0) * i / 7.0);
      cr_assert_float_eq(pe[t * 16 + i], sin(a), 2e-5, "pos %d,%d", t, i);
      cr_assert_float_eq(pe[t * 16 + 8 + i], cos(a), 2e-5, "pos %d,%d", t, i);
    }
  vox_whisper_encoder_release(&m);
  vox_params_free(reg);
}

Test(whisper_encoder, padded_row_matches_row_alone) {
  vox_params *reg = NULL;
  vox_whisper_encoder m;
  build(&reg, &m, "");
  enum { B = 2, T = 11, L1 = 7 }; /* odd lengths exercise the conv2 boundary */
  vox_tensor *x = vt_randn(VT_SHAPE(B, T, 8), 11, 1.0f, false);
  vox_tensor *lens = vt_from_i32(VT_SHAPE(B), (int32_t[]){T, L1}), *h = NULL, *ol = NULL;
  VT_OK(vox_whisper_encoder_forward(&m, x, lens, NULL, false, NULL, &h, &ol));
  cr_assert_eq(h->shape[0], B);
  cr_assert_eq(h->shape[1], 6);
  cr_assert_eq(h->shape[2], 16);
  int32_t olv[B];
  VT_OK(vox_tensor_read_i32(ol, olv));
  cr_assert_eq(olv[0], 6);
  cr_assert_eq(olv[1], 4);
  vox_tensor *row = NULL, *alone = NULL, *ref = NULL, *hv = NULL, *hr = NULL;
  VT_OK(vox_op_slice(x, 0, 1, 2, 1, &row));
  VT_OK(vox_op_slice(row, 1, 0, L1, 1, &alone));
  VT_OK(vox_whisper_encoder_forward(&m, alone, NULL, NULL, false, NULL, &ref, NULL));
  cr_assert_eq(ref->shape[1], 4);
  VT_OK(vox_op_slice(h, 0, 1, 2, 1, &hr));
  VT_OK(vox_op_slice(hr, 1, 0, 4, 1, &hv));
  vt_assert_close(hv, ref, 1e-5, 1e-4, "padded row vs alone");
  /* Without lengths the padding leaks into the valid outputs (the check above is not vacuous). */
  vox_tensor *h2 = NULL, *h2r = NULL, *h2v = NULL;
  VT_OK(vox_whisper_encoder_forward(&m, x, NULL, NULL, false, NULL, &h2, NULL));
  VT_OK(vox_op_slice(h2, 0, 1, 2, 1, &h2r));
  VT_OK(vox_op_slice(h2r, 1, 0, 4, 1, &h2v));
  cr_assert_gt(vt_close_ratio(h2v, ref, 1e-5, 1e-4), 1.0);
  vox_tensor *objs[] = {x, lens, h, ol, row, alone, ref, hv, hr, h2, h2r, h2v};
  for (size_t i = 0; i < sizeof objs / sizeof *objs; i++) vox_tensor_release(objs[i]);
  vox_whisper_encoder_release(&m);
  vox_params_free(reg);
}

/* Chunk size 3 output frames: changing input frames from 2*6+1 on (past chunk 1's lookahead frame 12) leaves
 * outputs 0..5 unchanged, and with full attention it does not. */
Test(whisper_encoder, chunk_mask_hides_later_chunks) {
  vox_params *reg = NULL;
  vox_whisper_encoder m;
  build(&reg, &m, "");
  enum { T = 20 };
  vox_tensor *x = vt_randn(VT_SHAPE(1, T, 8), 21, 1.0f, false);
  vox_tensor *y = NULL;
  VT_OK(vox_tensor_clone(x, &y));
  float *yd = vox_tensor_f32(y);
  for (int t = 13; t < T; t++)
    for (int c = 0; c < 8; c++) yd[t * 8 + c] += 3.0f;
  vox_whisper_stream_opts so = {.chunk_size = 3};
  vox_tensor *hx = NULL, *hy = NULL, *hxs = NULL, *hys = NULL;
  VT_OK(vox_whisper_encoder_forward(&m, x, NULL, &so, false, NULL, &hx, NULL));
  VT_OK(vox_whisper_encoder_forward(&m, y, NULL, &so, false, NULL, &hy, NULL));
  VT_OK(vox_op_slice(hx, 1, 0, 6, 1, &hxs));
  VT_OK(vox_op_slice(hy, 1, 0, 6, 1, &hys));
  vt_assert_close(hxs, hys, 1e-6, 1e-5, "chunks 0-1 with later frames changed");
  vox_tensor *fx = NULL, *fy = NULL, *fxs = NULL, *fys = NULL;
  VT_OK(vox_whisper_encoder_forward(&m, x, NULL, NULL, false, NULL, &fx, NULL));
  VT_OK(vox_whisper_encoder_forward(&m, y, NULL, NULL, false, NULL, &fy, NULL));
  VT_OK(vox_op_slice(fx, 1, 0, 6, 1, &fxs));
  VT_OK(vox_op_slice(fy, 1, 0, 6, 1, &fys));
  cr_assert_gt(vt_close_ratio(fxs, fys, 1e-6, 1e-5), 1.0, "full attention should see the change");
  vox_tensor *objs[] = {x, y, hx, hy, hxs, hys, fx, fy, fxs, fys};
  for (size_t i = 0; i < sizeof objs / sizeof *objs; i++) vox_tensor_release(objs[i]);
  vox_whisper_encoder_release(&m);
  vox_params_free(reg);
}

Test(whisper_encoder, gradients_reach_weights_not_positions) {
  vox_params *reg = NULL;
  vox_whisper_encoder m;
  build(&reg, &m, "");
  vox_tensor *x = vt_randn(VT_SHAPE(2, 9, 8), 3, 1.0f, true), *lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){9, 4});
  vox_tensor *h = NULL, *s = NULL;
  VT_OK(vox_whisper_encoder_forward(&m, x, lens, NULL, true, NULL, &h, NULL));
  VT_OK(vox_op_sum(h, 0, NULL, false, &s));
  VT_OK(vox_backward(s, NULL));
  cr_assert_not_null(m.conv1.weight->grad);
  cr_assert_not_null(m.layers[1].mlp.down.weight->grad);
  cr_assert_null(m.embed_positions->grad);
  cr_assert_not_null(x->grad);
  /* frames past row 1's length get no gradient (they are zeroed before the convs) */
  const float *g = vox_tensor_f32(x->grad);
  for (int t = 4; t < 9; t++)
    for (int c = 0; c < 8; c++) cr_assert_eq(g[(9 + t) * 8 + c], 0.0f);
  vox_tensor_release(x);
  vox_tensor_release(lens);
  vox_tensor_release(h);
  vox_tensor_release(s);
  vox_whisper_encoder_release(&m);
  vox_params_free(reg);
}

Test(whisper_encoder, errors_name_the_problem) {
  vox_params *reg = NULL;
  vox_whisper_encoder m;
  build(&reg, &m, "");
  vox_tensor *bad = vt_randn(VT_SHAPE(1, 10, 7), 1, 1.0f, false), *h = NULL;
  cr_assert_eq(vox_whisper_encoder_forward(&m, bad, NULL, NULL, false, NULL, &h, NULL), VOX_ERR_SHAPE);
  cr_assert(strstr(vox_last_error(), "[B, T, 8]"), "%s", vox_last_error());
  vox_tensor *longx = vt_randn(VT_SHAPE(1, 25, 8), 1, 1.0f, false);
  cr_assert_eq(vox_whisper_encoder_forward(&m, longx, NULL, NULL, false, NULL, &h, NULL), VOX_ERR_SHAPE);
  cr_assert(strstr(vox_last_error(), "24"), "%s", vox_last_error());
  vox_tensor *ok = vt_randn(VT_SHAPE(1, 24, 8), 1, 1.0f, false), *lens = vt_from_i32(VT_SHAPE(1), (int32_t[]){30});
  cr_assert_eq(vox_whisper_encoder_forward(&m, ok, lens, NULL, false, NULL, &h, NULL), VOX_ERR_INDEX);
  cr_assert(strstr(vox_last_error(), "lengths[0] = 30"), "%s", vox_last_error());
  cr_assert_null(h);
  vox_tensor_release(bad);
  vox_tensor_release(longx);
  vox_tensor_release(ok);
  vox_tensor_release(lens);
  vox_whisper_encoder_release(&m);
  vox_params_free(reg);
}
