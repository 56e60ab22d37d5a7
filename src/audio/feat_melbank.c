/* Mel filter matrices for the CPU feature extractors: librosa's Slaney filters (Whisper) and Kaldi's HTK-mel
 * triangles (fbank), computed in double and stored as float with per-band non-zero ranges. */
#include <math.h>
#include <stdlib.h>

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

static double slaney_hz_to_mel(double f) {
  const double f_sp = 200.0 / 3, min_log_hz = 1000, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27;
  return f >= min_log_hz ? min_log_mel + log(f / min_log_hz) / logstep : f / f_sp;
}
static double slaney_mel_to_hz(double m) {
  const double f_sp = 200.0 / 3, min_log_hz = 1000, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27;
  return m >= min_log_mel ? min_log_hz * exp(logstep * (m - min_log_mel)) : f_sp * m;
}

vox_status feat_melbank_slaney(int sample_rate, int n_fft, int n_mels, double f_lo, double f_hi, feat_melbank *out) {
  if (sample_rate <= 0 || n_fft < 2 || n_mels < 1 || f_lo < 0 || f_hi <= f_lo || f_hi > sample_rate / 2.0)
    return vox_errorf(VOX_ERR_INVALID, "slaney mel filters: bad parameters sr=%d n_fft=%d n_mels=%d fmin=%g fmax=%g",
                      sample_rate, n_fft, n_mels, f_lo, f_hi);
  int n_freq = n_fft / 2 + 1;
  VOX_TRY(melbank_alloc(n_mels, n_freq, out));
  double *mel_f = malloc((size_t)(n_mels + 2) * sizeof(double));
  if (!mel_f) {
    feat_melbank_free(out);
    return vox_errorf(VOX_ERR_NOMEM, "slaney mel filters: out of memory");
  }
  double mlo = slaney_hz_to_mel(f_lo), mhi = slaney_hz_to_mel(f_hi);
  for (int i = 0; i < n_mels + 2; i++) mel_f[i] = slaney_mel_to_hz(mlo + (mhi - mlo) * i / (n_mels + 1));
  for (int m = 0; m < n_mels; m++) {
    double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
    double d0 = mel_f[m + 1] - mel_f[m], d1 = mel_f[m + 2] - mel_f[m + 1];
    for (int k = 0; k < n_freq; k++) {
      double f = (double)sample_rate / 2 * k / (n_freq - 1);
      double lower = (f - mel_f[m]) / d0, upper = (mel_f[m + 2] - f) / d1;
      double v = fmax(0.0, fmin(lower, upper));
      /* librosa stores the triangle as float32 before scaling by enorm */
      out->w[(long)m * n_freq + k] = (float)((float)v * enorm);
    }
  }
  free(mel_f);
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
