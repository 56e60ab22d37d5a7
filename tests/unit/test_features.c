/* Feature extractors against external references (tests/fixtures/audio/make_reference.py): Whisper log-mel vs
 * torch.stft + Whisper's log_mel_spectrogram, Kaldi fbank vs torchaudio.compliance.kaldi.fbank, LFR + CMVN vs
 * FunASR's apply_lfr/apply_cmvn, on a chirp, Gaussian noise and an espeak-ng utterance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/features.h"
#include "io/npy.h"
#include "vox_test.h"

/* Stated tolerances (max abs error).
 * Whisper: the reference is Whisper's own float32 torch computation; the (max - 8) clamp keeps every value within
 * 80 dB of the peak, where float32 FFTs agree closely: all elements within WHISPER_MAX_ABS.
 * fbank: the reference is torchaudio's kaldi.fbank in float64. A float32 FFT (Kaldi's own, torchaudio's, ours)
 * cannot resolve bins far below a frame's peak: torchaudio in float32 is off by 0.30 nats on the chirp for bins
 * ~30 nats down. So elements within FBANK_NEAR_DEPTH nats of their frame's maximum must be within FBANK_MAX_ABS,
 * and all elements within FBANK_DEEP_MAX_ABS.
 * LFR is a copy (exact); CMVN is one add and one multiply in float32 as FunASR does (CMVN_MAX_ABS). */
#define WHISPER_MAX_ABS 2e-4    /* log10 units / 4 */
#define FBANK_NEAR_DEPTH 20.0   /* nats below the frame maximum (87 dB) */
#define FBANK_MAX_ABS 1e-3      /* natural-log units (values range about -16 .. 31) */
#define FBANK_DEEP_MAX_ABS 0.5
#define CMVN_MAX_ABS 1e-5

static float *load(const char *name, int want_ndim, int64_t *shape) {
  char path[512];
  snprintf(path, sizeof path, "audio/%s", name);
  float *d;
  int nd;
  VT_OK(vox_npy_load_f32(vt_fixture(path), &d, &nd, shape));
  cr_assert_eq(nd, want_ndim, "%s: ndim %d, want %d", name, nd, want_ndim);
  return d;
}

static double max_abs(const float *a, const float *b, int64_t n, int64_t *where) {
  double m = 0;
  *where = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - b[i]);
    if (!(e <= m)) { /* catches NaN */
      m = isnan(e) ? INFINITY : e;
      *where = i;
    }
  }
  return m;
}

static void check(const char *what, const float *got, int64_t frames, int bins, const float *ref,
                  const int64_t *ref_shape, double tol) {
  cr_assert_eq(frames, ref_shape[0], "%s: %lld frames, reference %lld", what, (long long)frames,
               (long long)ref_shape[0]);
  cr_assert_eq(bins, ref_shape[1], "%s: %d bins, reference %lld", what, bins, (long long)ref_shape[1]);
  int64_t at;
  double e = max_abs(got, ref, frames * bins, &at);
  cr_log_info("%s: max abs error %.3g (tolerance %.3g) over %lld x %d", what, e, tol, (long long)frames, bins);
  printf("%s: max abs error %.3g (tolerance %.3g)\n", what, e, tol);
  cr_assert(e <= tol, "%s: max abs error %g > %g at frame %lld bin %lld (got %g, reference %g)", what, e, tol,
            (long long)(at / bins), (long long)(at % bins), got[at], ref[at]);
}

static void whisper_case(const char *sig, int n_mels) {
  char name[64];
  int64_t xs[8], rs[8];
  snprintf(name, sizeof name, "%s_16k.npy", sig);
  float *x = load(name, 1, xs);
  snprintf(name, sizeof name, "%s_whisper%d.npy", sig, n_mels);
  float *ref = load(name, 2, rs);
  float *out;
  int64_t T;
  VT_OK(vox_features_whisper_mel(x, xs[0], n_mels, &out, &T));
  cr_assert_eq(T, xs[0] / 160);
  check(name, out, T, n_mels, ref, rs, WHISPER_MAX_ABS);
  free(out);
  free(ref);
  free(x);
}

Test(whisper_mel, chirp_80) { whisper_case("chirp", 80); }
Test(whisper_mel, chirp_128) { whisper_case("chirp", 128); }
Test(whisper_mel, noise_80) { whisper_case("noise", 80); }
Test(whisper_mel, speech_80) { whisper_case("speech", 80); }

Test(whisper_mel, rejects_bad_args) {
  float x[300] = {0}, *out = NULL;
  int64_t T;
  cr_assert_eq(vox_features_whisper_mel(x, 300, 64, &out, &T), VOX_ERR_INVALID);
  cr_assert_eq(vox_features_whisper_mel(x, 200, 80, &out, &T), VOX_ERR_INVALID); /* too short to reflect-pad */
  cr_assert_null(out);
  VT_OK(vox_features_whisper_mel(x, 300, 80, &out, &T)); /* silence: finite, all equal */
  cr_assert_eq(T, 1);
  for (int i = 0; i < 80; i++) cr_assert_float_eq(out[i], (-10.f + 4.f) / 4.f, 1e-6);
  free(out);
}

static void fbank_case(const char *sig) {
  char name[64];
  int64_t xs[8], rs[8];
  snprintf(name, sizeof name, "%s_16k.npy", sig);
  float *x = load(name, 1, xs);
  snprintf(name, sizeof name, "%s_fbank.npy", sig);
  float *ref = load(name, 2, rs);
  float *out;
  int64_t T;
  int bins;
  VT_OK(vox_features_fbank(x, xs[0], NULL, &out, &T, &bins));
  cr_assert_eq(T, 1 + (xs[0] - 400) / 160);
  check(name, out, T, bins, ref, rs, FBANK_DEEP_MAX_ABS);
  double near = 0;
  int64_t at = -1, counted = 0;
  for (int64_t t = 0; t < T; t++) {
    float mx = -INFINITY;
    for (int k = 0; k < bins; k++) mx = fmaxf(mx, ref[t * bins + k]);
    for (int k = 0; k < bins; k++) {
      int64_t i = t * bins + k;
      if (ref[i] < mx - FBANK_NEAR_DEPTH) continue;
      counted++;
      double e = fabs((double)out[i] - ref[i]);
      if (!(e <= near)) near = isnan(e) ? INFINITY : e, at = i;
    }
  }
  printf("%s: max abs error %.3g within %.0f nats of the frame peak (tolerance %.3g, %lld of %lld elements)\n", name,
         near, FBANK_NEAR_DEPTH, FBANK_MAX_ABS, (long long)counted, (long long)(T * bins));
  cr_assert(near <= FBANK_MAX_ABS, "%s: max abs error %g > %g at frame %lld bin %lld (got %g, reference %g)", name,
            near, FBANK_MAX_ABS, (long long)(at / bins), (long long)(at % bins), out[at], ref[at]);
  cr_assert_gt(counted, T * bins / 5, "too few elements near the peak to be a meaningful check");
  free(out);
  free(ref);
  free(x);
}

Test(fbank, chirp) { fbank_case("chirp"); }
Test(fbank, noise) { fbank_case("noise"); }
Test(fbank, speech) { fbank_case("speech"); }

Test(fbank, short_input_and_dither) {
  float x[1000];
  for (int i = 0; i < 1000; i++) x[i] = 0.1f * sinf(0.05f * i);
  float *out = (float *)1;
  int64_t T;
  int bins;
  VT_OK(vox_features_fbank(x, 399, NULL, &out, &T, &bins));
  cr_assert_eq(T, 0);
  cr_assert_null(out);
  vox_fbank_opts o = vox_fbank_opts_default();
  o.dither = 1.0f;
  cr_assert_eq(vox_features_fbank(x, 1000, &o, &out, &T, &bins), VOX_ERR_INVALID); /* dither without rng */
  vox_rng r1 = vox_rng_make(7), r2 = vox_rng_make(7), r3 = vox_rng_make(8);
  float *a, *b, *c, *clean;
  o.rng = &r1;
  VT_OK(vox_features_fbank(x, 1000, &o, &a, &T, &bins));
  o.rng = &r2;
  VT_OK(vox_features_fbank(x, 1000, &o, &b, &T, &bins));
  o.rng = &r3;
  VT_OK(vox_features_fbank(x, 1000, &o, &c, &T, &bins));
  VT_OK(vox_features_fbank(x, 1000, NULL, &clean, &T, &bins));
  cr_assert_eq(T, 4);
  cr_assert(r1.offset > 0, "dither must advance the rng");
  cr_assert_eq(memcmp(a, b, T * bins * sizeof(float)), 0, "same seed, same dither");
  cr_assert_neq(memcmp(a, c, T * bins * sizeof(float)), 0, "different seed, different dither");
  cr_assert_neq(memcmp(a, clean, T * bins * sizeof(float)), 0, "dither changes the output");
  free(a);
  free(b);
  free(c);
  free(clean);
}

Test(lfr_cmvn, speech_matches_funasr) {
  /* stacks the reference fbank so that LFR and CMVN are checked on their own */
  int64_t fs[8], ls[8], cs[8];
  float *fb = load("speech_fbank.npy", 2, fs), *ref_lfr = load("speech_lfr.npy", 2, ls),
        *ref_cmvn = load("speech_lfr_cmvn.npy", 2, cs);
  float *lfr;
  int64_t T = fs[0], TL;
  int bins = (int)fs[1];
  VT_OK(vox_features_lfr(fb, T, bins, 7, 6, &lfr, &TL));
  cr_assert_eq(TL, (T + 5) / 6);
  /* 129 frames: the last window (padded rows 126..132) needs one repeat of the final frame */
  check("speech_lfr", lfr, TL, 7 * bins, ref_lfr, ls, 0.0);
  vox_cmvn *cm;
  VT_OK(vox_cmvn_load(vt_fixture("audio/am.mvn"), &cm));
  cr_assert_eq(cm->dim, 560);
  cr_assert_eq(vox_cmvn_apply(cm, lfr, TL, bins), VOX_ERR_SHAPE);
  VT_OK(vox_cmvn_apply(cm, lfr, TL, 7 * bins));
  check("speech_lfr_cmvn", lfr, TL, 7 * bins, ref_cmvn, cs, CMVN_MAX_ABS);
  vox_cmvn_free(cm);
  free(fb);
  free(lfr);
  free(ref_lfr);
  free(ref_cmvn);
}

Test(lfr_cmvn, lfr_padding_by_hand) {
  /* 5 frames of width 1 valued 0..4, m=3 n=2: padded [0,0,1,2,3,4] (+4 behind) -> [0,0,1] [1,2,3] [3,4,4] */
  float in[5] = {0, 1, 2, 3, 4}, *out;
  int64_t T;
  VT_OK(vox_features_lfr(in, 5, 1, 3, 2, &out, &T));
  cr_assert_eq(T, 3);
  float want[9] = {0, 0, 1, 1, 2, 3, 3, 4, 4};
  for (int i = 0; i < 9; i++) cr_assert_eq(out[i], want[i], "lfr[%d] = %g, want %g", i, out[i], want[i]);
  free(out);
}

static const char *write_tmp(const char *text) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/vox_test_cmvn_XXXXXX");
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

Test(lfr_cmvn, cmvn_parse_errors) {
  vox_cmvn *c = NULL;
  cr_assert_eq(vox_cmvn_load("/nonexistent/am.mvn", &c), VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "/nonexistent/am.mvn"));
  const char *p = write_tmp("<Nnet>\n<AddShift> 3 3\n<LearnRateCoef> 0 [ 1 2 ]\n<Rescale> 3 3\n"
                            "<LearnRateCoef> 0 [ 1 2 3 ]\n</Nnet>\n");
  cr_assert_eq(vox_cmvn_load(p, &c), VOX_ERR_PARSE);
  cr_assert(strstr(vox_last_error(), p) && strstr(vox_last_error(), "2 values"), "%s", vox_last_error());
  remove(p);
  p = write_tmp("<Nnet>\n<AddShift> 2 2\n<LearnRateCoef> 0 [ 1 2 ]\n</Nnet>\n");
  cr_assert_eq(vox_cmvn_load(p, &c), VOX_ERR_PARSE);
  cr_assert(strstr(vox_last_error(), "<Rescale>"), "%s", vox_last_error());
  remove(p);
  /* vectors broken over lines are accepted */
  p = write_tmp("<Nnet> <AddShift> 2 2 <LearnRateCoef> 0 [ 1\n 2 ]\n<Rescale> 2 2\n<LearnRateCoef> 0 [ 0.5\n 2 ]");
  VT_OK(vox_cmvn_load(p, &c));
  float x[2] = {1, 1};
  VT_OK(vox_cmvn_apply(c, x, 1, 2));
  cr_assert_float_eq(x[0], 1.0f, 1e-7);
  cr_assert_float_eq(x[1], 6.0f, 1e-7);
  vox_cmvn_free(c);
  remove(p);
}

Test(specaugment, masks_within_limits_and_seeded) {
  enum { T = 200, B = 80 };
  float *a = malloc(T * B * sizeof(float)), *b = malloc(T * B * sizeof(float));
  vox_specaugment_opts o = {.n_freq_masks = 2, .max_freq_width = 27, .n_time_masks = 2, .max_time_width = 40,
                            .max_time_ratio = 0.05f, .fill = -100.f};
  int distinct = 0;
  for (uint64_t seed = 0; seed < 50; seed++) {
    for (int i = 0; i < T * B; i++) a[i] = b[i] = 1.f;
    vox_rng r1 = vox_rng_make(seed), r2 = vox_rng_make(seed);
    VT_OK(vox_specaugment(a, T, B, &o, &r1));
    VT_OK(vox_specaugment(b, T, B, &o, &r2));
    cr_assert_eq(memcmp(a, b, sizeof(float) * T * B), 0, "same seed must give same masks");
    /* masked cells form at most 2 full-height time spans of <= 10 frames (5% of 200) and 2 full-width bands
     * of <= 27 bins: count fully-masked columns and rows */
    int cols = 0, rows = 0, masked = 0;
    for (int f = 0; f < B; f++) {
      int all = 1;
      for (int t = 0; t < T; t++) all &= a[t * B + f] == -100.f;
      cols += all;
    }
    for (int t = 0; t < T; t++) {
      int all = 1;
      for (int f = 0; f < B; f++) all &= a[t * B + f] == -100.f;
      rows += all;
    }
    for (int i = 0; i < T * B; i++) masked += a[i] == -100.f;
    cr_assert_leq(cols, 54);
    cr_assert_leq(rows, 20);
    cr_assert_eq(masked, cols * T + rows * B - cols * rows, "a masked cell outside any full band/span");
    distinct += masked > 0;
  }
  cr_assert_gt(distinct, 40, "masks should almost always mask something");
  free(a);
  free(b);
}
