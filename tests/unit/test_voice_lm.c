/* Voice-token LM tests: the CosyVoice2 bistream layout at 5:15 position by position, the unistream fallback, the
 * batched loss against per-sample losses, gradients into the semantic vectors, and input errors. */
#include <criterion/logging.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "models/voice_lm.h"
#include "vox_test.h"

typedef struct vlm {
  vox_params *reg;
  vox_voice_lm v;
} vlm;

static vlm *vlm_new(uint64_t seed) {
  vlm *m = calloc(1, sizeof *m);
  VT_OK(vox_params_new(&m->reg));
  vox_rng rng = vox_rng_make(seed);
  vox_voice_lm_config c = {.lm = {.hidden_size = 16, .num_hidden_layers = 1, .num_attention_heads = 2,
                                  .num_key_value_heads = 1, .intermediate_size = 32, .initializer_range = 0.2f,
                                  .attention_bias = true},
                           .speech_vocab = 50};
  VT_OK(vox_voice_lm_init(&m->v, m->reg, "voice_lm.", &c, &rng));
  return m;
}

static void vlm_free(vlm *m) {
  vox_voice_lm_release(&m->v);
  vox_params_free(m->reg);
  free(m);
}

Test(voice_lm, bistream_layout_5_15) {
  vlm *m = vlm_new(1);
  cr_assert_eq(m->v.cfg.lm.vocab_size, 54);
  cr_assert_eq(m->v.end_of_speech, 50);
  cr_assert_eq(m->v.turn_of_speech, 51);
  cr_assert_eq(m->v.next_semantic, 52);
  cr_assert_eq(m->v.start, 53);
  /* 7 text positions, 40 speech tokens (40*5 > 7*15: bistream). */
  int32_t sp[40];
  for (int i = 0; i < 40; i++) sp[i] = i;
  vox_voice_lm_stream s;
  VT_OK(vox_voice_lm_layout(&m->v, 7, sp, 40, &s));
  cr_assert(s.bistream);
  cr_assert_eq(s.len, 1 + 7 + 40 + 1);
  /* start */
  cr_assert(!s.is_semantic[0] && s.value[0] == 53 && s.target[0] == -100);
  /* chunk 0: e0..e4 then s0..s14; e0..e3 ignored, e4 -> s0, s_k -> s_{k+1}, s14 -> next semantic */
  for (int t = 0; t < 5; t++) cr_assert(s.is_semantic[1 + t] && s.value[1 + t] == t);
  for (int t = 0; t < 4; t++) cr_assert_eq(s.target[1 + t], -100);
  cr_assert_eq(s.target[5], 0);
  for (int k = 0; k < 15; k++) {
    cr_assert(!s.is_semantic[6 + k] && s.value[6 + k] == k);
    cr_assert_eq(s.target[6 + k], k < 14 ? k + 1 : 52, "chunk 0 speech %d", k);
  }
  /* last chunk: e5, e6, turn of speech, s15..s39; e5, e6 ignored, turn -> s15, ..., s39 -> end of speech */
  int p = 21;
  cr_assert(s.is_semantic[p] && s.value[p] == 5 && s.target[p] == -100);
  cr_assert(s.is_semantic[p + 1] && s.value[p + 1] == 6 && s.target[p + 1] == -100);
  cr_assert(!s.is_semantic[p + 2] && s.value[p + 2] == 51 && s.target[p + 2] == 15);
  for (int k = 15; k < 40; k++) {
    cr_assert(!s.is_semantic[p + 3 + k - 15] && s.value[p + 3 + k - 15] == k);
    cr_assert_eq(s.target[p + 3 + k - 15], k < 39 ? k + 1 : 50);
  }
  vox_voice_lm_stream_free(&s);
  /* 10 text positions (a multiple of 5): two full chunks and an empty last one. */
  VT_OK(vox_voice_lm_layout(&m->v, 10, sp, 31, &s));
  cr_assert(s.bistream);
  cr_assert_eq(s.len, 1 + 10 + 31 + 1);
  cr_assert_eq(s.target[40], 52, "the 2nd chunk's last speech token asks for the next semantic vectors");
  cr_assert(!s.is_semantic[41] && s.value[41] == 51 && s.target[41] == 30);
  cr_assert(s.value[42] == 30 && s.target[42] == 50);
  vox_voice_lm_stream_free(&s);
  vlm_free(m);
}

Test(voice_lm, unistream_when_speech_is_short) {
  vlm *m = vlm_new(2);
  int32_t sp[10] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
  vox_voice_lm_stream s;
  VT_OK(vox_voice_lm_layout(&m->v, 4, sp, 10, &s)); /* 10*5 <= 4*15 */
  cr_assert(!s.bistream);
  cr_assert_eq(s.len, 1 + 4 + 1 + 10);
  for (int t = 0; t < 5; t++) cr_assert_eq(s.target[t], -100);
  cr_assert(s.value[5] == 51 && s.target[5] == 3);
  cr_assert(s.value[15] == 3 && s.target[15] == 50);
  vox_voice_lm_stream_free(&s);
  cr_assert_eq(vox_voice_lm_layout(&m->v, 4, (int32_t[]){50}, 1, &s), VOX_ERR_INDEX);
  vlm_free(m);
}

Test(voice_lm, batched_loss_equals_per_sample_and_reaches_semantics) {
  vlm *m = vlm_new(3);
  vox_tensor *sem = vt_randn(VT_SHAPE(2, 7, 16), 4, 1.0f, true);
  int32_t sp[2 * 40];
  for (int i = 0; i < 80; i++) sp[i] = (i * 7 + 3) % 50;
  int32_t nsem[2] = {7, 3}, nsp[2] = {40, 12};
  vox_voice_lm_batch b = {.B = 2, .semantic = sem, .n_semantic = nsem, .speech = sp, .speech_stride = 40,
                          .n_speech = nsp};
  vox_tensor *loss = NULL;
  int64_t n = 0;
  VT_OK(vox_voice_lm_loss(&m->v, &b, false, NULL, &loss, &n));
  cr_assert_eq(n, (40 + 1 + 1) + (12 + 1), "speech tokens, next-semantic after chunk 0 of row 0, end-of-speech: %lld",
               (long long)n);
  double lb, sum = 0;
  VT_OK(vox_tensor_item(loss, &lb));
  for (int i = 0; i < 2; i++) {
    vox_tensor *row = NULL, *rc = NULL, *l = NULL;
    VT_OK(vox_tensor_view_slice(sem, 0, i, i + 1, 1, &row));
    VT_OK(vox_tensor_clone(row, &rc));
    vox_voice_lm_batch bi = {.B = 1, .semantic = rc, .n_semantic = &nsem[i], .speech = sp + 40 * i,
                             .speech_stride = 40, .n_speech = &nsp[i]};
    int64_t ni;
    double li;
    VT_OK(vox_voice_lm_loss(&m->v, &bi, false, NULL, &l, &ni));
    VT_OK(vox_tensor_item(l, &li));
    sum += li * (double)ni;
    vox_tensor_release(row);
    vox_tensor_release(rc);
    vox_tensor_release(l);
  }
  cr_assert(fabs(lb - sum / (double)n) < 1e-5, "batched %.7f vs per-sample %.7f", lb, sum / (double)n);
  VT_OK(vox_backward(loss, NULL));
  float g[2 * 7 * 16];
  VT_OK(vox_tensor_read_f32(sem->grad, g));
  double used = 0, unused = 0;
  for (int t = 0; t < 7; t++)
    for (int c = 0; c < 16; c++) {
      used += fabs(g[t * 16 + c]);
      if (t >= 3) unused += fabs(g[(7 + t) * 16 + c]);
    }
  cr_assert(used > 0, "the semantic vectors receive gradient");
  cr_assert_eq(unused, 0.0, "vectors past a row's count are not read");
  vox_tensor_release(loss);
  vox_tensor_release(sem);
  vlm_free(m);
}
