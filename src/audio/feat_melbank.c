/* Mel filter matrices for the CPU feature extractors, stored with per-band non-zero ranges: Kaldi's HTK-mel
 * triangles (fbank) built here in double, and any dense matrix (Whisper's, from vox_mel_filters_new). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/feat_internal.h"

static vox_status melbank_alloc(int n_mels, int n_freq, feat_melbank *b) {
  b->n_mels = n_mels;
  b->n_freq = n_freq;
  b->w = calloc((size_t)n_mels * n_freq, sizeof(float));
  b->lo = calloc((size_t)n_mels, sizeof(int));
  b->hi = calloc((size_t)n_mels, sizeof(int));
  if (!b->w || !b->lo || !b->hi) {
    feat_melbank_free(b);
    return vox_errorf(VOX_ERR_NOMEM, "mel filterbank: cannot allocate %d x %d", n_mels, n_freq);
  }
  return VOX_OK;
}

static void melbank_ranges(feat_melbank *b) {
  for (int m = 0; m < b->n_mels; m++) {
    const float *w = b->w + (long)m * b->n_freq;
    int lo = 0, hi = 0;
    while (lo < b->n_freq && w[lo] == 0.f) lo++;
    for (int k = lo; k < b->n_freq; k++)
      if (w[k] != 0.f) hi = k + 1;
    b->lo[m] = lo;
    b->hi[m] = hi > lo ? hi : lo;
  }
}

vox_status feat_melbank_from_dense(const float *w, int n_mels, int n_freq, feat_melbank *out) {
  VOX_TRY(melbank_alloc(n_mels, n_freq, out));
  memcpy(out->w, w, (size_t)n_mels * n_freq * sizeof(float));
  melbank_ranges(out);
  return VOX_OK;
}

static double kaldi_mel(double f) { return 1127.0 * log(1.0 + f / 700.0); }

vox_status feat_melbank_kaldi(int sample_rate, int n_fft, int n_mels, double low_freq, double high_freq,
                              feat_melbank *out) {
  double nyquist = 0.5 * sample_rate;
  if (high_freq <= 0) high_freq += nyquist;
  if (sample_rate <= 0 || n_fft < 2 || n_mels < 3 || low_freq < 0 || low_freq >= nyquist || high_freq <= 0 ||
      high_freq > nyquist || high_freq <= low_freq)
    return vox_errorf(VOX_ERR_INVALID,
                      "kaldi mel banks: bad parameters sr=%d n_fft=%d n_mels=%d low=%g high=%g (need 0 <= low < high "
                      "<= Nyquist, n_mels >= 3)",
                      sample_rate, n_fft, n_mels, low_freq, high_freq);
  int n_bins = n_fft / 2, n_freq = n_bins + 1;
  VOX_TRY(melbank_alloc(n_mels, n_freq, out));
  double bin_width = (double)sample_rate / n_fft;
  double mlo = kaldi_mel(low_freq), mhi = kaldi_mel(high_freq), delta = (mhi - mlo) / (n_mels + 1);
  /* one log per FFT bin, not per (band, bin): this runs once per fbank call, so short clips notice it */
  double *bin_mel = malloc((size_t)n_bins * sizeof(double));
  if (!bin_mel) {
    feat_melbank_free(out);
    return vox_errorf(VOX_ERR_NOMEM, "kaldi mel banks: out of memory");
  }
  for (int k = 0; k < n_bins; k++) bin_mel[k] = kaldi_mel(bin_width * k);
  for (int m = 0; m < n_mels; m++) {
    double left = mlo + m * delta, center = mlo + (m + 1) * delta, right = mlo + (m + 2) * delta;
    for (int k = 0; k < n_bins; k++) {
      double up = (bin_mel[k] - left) / (center - left), down = (right - bin_mel[k]) / (right - center);
      out->w[(long)m * n_freq + k] = (float)fmax(0.0, fmin(up, down));
    }
  }
  free(bin_mel);
  melbank_ranges(out);
  return VOX_OK;
}

void feat_melbank_free(feat_melbank *b) {
  if (!b) return;
  free(b->w);
  free(b->lo);
  free(b->hi);
  b->w = NULL;
  b->lo = b->hi = NULL;
}
