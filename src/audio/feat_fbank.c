/* Kaldi fbank (compute-fbank / torchaudio.compliance.kaldi.fbank) on the CPU: per frame DC removal,
 * pre-emphasis, povey window, zero-padded real FFT, power, HTK-mel triangles, log floored at FLT_EPSILON. */
#include <float.h>
#include <kiss_fftr.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/feat_internal.h"
#include "audio/features.h"
#include "core/backend.h"

vox_fbank_opts vox_fbank_opts_default(void) {
  return (vox_fbank_opts){.sample_rate = 16000,
                          .n_mels = 80,
                          .frame_length_ms = 25.f,
                          .frame_shift_ms = 10.f,
                          .preemph = 0.97f,
                          .low_freq = 20.f,
                          .high_freq = 0.f,
                          .input_scale = 32768.f,
                          .dither = 0.f,
                          .rng = NULL,
                          .remove_dc_offset = true,
                          .round_to_power_of_two = true,
                          .snip_edges = true};
}

vox_status vox_features_fbank(const float *x, int64_t n, const vox_fbank_opts *opts, float **out, int64_t *frames,
                              int *bins) {
  if (!out || !frames || !bins || (!x && n > 0) || n < 0) return vox_errorf(VOX_ERR_INVALID, "fbank: NULL argument");
  *out = NULL;
  *frames = 0;
  *bins = 0;
  const vox_fbank_opts o = opts ? *opts : vox_fbank_opts_default();
  if (!o.snip_edges) return vox_errorf(VOX_ERR_UNSUPPORTED, "fbank: snip_edges=false is not supported");
  if (o.sample_rate <= 0 || o.frame_length_ms <= 0 || o.frame_shift_ms <= 0)
    return vox_errorf(VOX_ERR_INVALID, "fbank: bad sample_rate %d / frame length %g ms / shift %g ms", o.sample_rate,
                      o.frame_length_ms, o.frame_shift_ms);
  if (o.dither > 0 && !o.rng) return vox_errorf(VOX_ERR_INVALID, "fbank: dither %g needs opts->rng", o.dither);
  /* Kaldi truncates (samp_freq * 0.001 * ms); the epsilon keeps 16000 * 25 ms at 400 despite rounding. */
  const int win = (int)(o.sample_rate * 0.001 * o.frame_length_ms + 1e-6);
  const int shift = (int)(o.sample_rate * 0.001 * o.frame_shift_ms + 1e-6);
  if (win < 2 || shift < 1) return vox_errorf(VOX_ERR_INVALID, "fbank: frame of %d samples, shift %d", win, shift);
  int nfft = win;
  if (o.round_to_power_of_two) {
    nfft = 1;
    while (nfft < win) nfft <<= 1;
  }
  if (nfft % 2) return vox_errorf(VOX_ERR_INVALID, "fbank: FFT size %d must be even", nfft);
  feat_melbank bank;
  VOX_TRY(feat_melbank_kaldi(o.sample_rate, nfft, o.n_mels, o.low_freq, o.high_freq, &bank));
  *bins = o.n_mels;
  if (n < win) { /* Kaldi: no frame fits */
    feat_melbank_free(&bank);
    return VOX_OK;
  }
  const int64_t T = 1 + (n - win) / shift;
  const int nm = o.n_mels, nfreq = nfft / 2 + 1;
  float *res = malloc((size_t)T * nm * sizeof(float));
  float *window = malloc((size_t)win * sizeof(float));
  if (!res || !window) {
    free(res);
    free(window);
    feat_melbank_free(&bank);
    return vox_errorf(VOX_ERR_NOMEM, "fbank: cannot allocate %lld x %d", (long long)T, nm);
  }
  for (int i = 0; i < win; i++) window[i] = (float)pow(0.5 - 0.5 * cos(2.0 * M_PI * i / (win - 1)), 0.85);
  uint64_t dseed = 0, doff = 0;
  if (o.dither > 0) {
    dseed = o.rng->seed;
    doff = vox_rng_take(o.rng, (uint64_t)T * win);
  }
  int failed = 0;
#pragma omp parallel num_threads(vox_num_threads()) if (T > 32) reduction(| : failed)
  {
    kiss_fftr_cfg cfg = kiss_fftr_alloc(nfft, 0, NULL, NULL);
    float *frame = calloc((size_t)nfft, sizeof(float)), *power = malloc((size_t)nfreq * sizeof(float));
    kiss_fft_cpx *spec = malloc((size_t)nfreq * sizeof(kiss_fft_cpx));
    if (!cfg || !frame || !power || !spec) failed = 1;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < T; t++) {
      if (!cfg || !frame || !power || !spec) continue;
      const float *src = x + t * shift;
      for (int i = 0; i < win; i++) frame[i] = src[i] * o.input_scale;
      if (o.dither > 0)
        for (int i = 0; i < win; i++)
          frame[i] += o.dither * vox_rng_normal_at(dseed, doff + (uint64_t)t * win + i);
      if (o.remove_dc_offset) {
        double mean = 0;
        for (int i = 0; i < win; i++) mean += frame[i];
        float m = (float)(mean / win);
        for (int i = 0; i < win; i++) frame[i] -= m;
      }
      if (o.preemph != 0) {
        for (int i = win - 1; i > 0; i--) frame[i] -= o.preemph * frame[i - 1];
        frame[0] -= o.preemph * frame[0];
      }
      for (int i = 0; i < win; i++) frame[i] *= window[i];
      /* frame[win..nfft) stays zero from calloc */
      kiss_fftr(cfg, frame, spec);
      for (int k = 0; k < nfreq; k++) power[k] = spec[k].r * spec[k].r + spec[k].i * spec[k].i;
      float *row = res + t * nm;
      feat_melbank_apply(&bank, power, row);
      for (int m = 0; m < nm; m++) row[m] = logf(fmaxf(row[m], FLT_EPSILON));
    }
    kiss_fftr_free(cfg);
    free(frame);
    free(power);
    free(spec);
  }
  free(window);
  feat_melbank_free(&bank);
  if (failed) {
    free(res);
    return vox_errorf(VOX_ERR_NOMEM, "fbank: cannot allocate FFT buffers of size %d", nfft);
  }
  *out = res;
  *frames = T;
  return VOX_OK;
}
