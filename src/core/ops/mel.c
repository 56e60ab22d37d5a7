/* Mel filterbanks: librosa.filters.mel (Slaney scale + Slaney area norm as Whisper uses, or HTK scale without
 * norm) built on the host, and the filterbank op, a linear map of a power spectrum through those filters. */
#include <math.h>
#include <stdlib.h>

#include "core/ops.h"

/* Slaney's auditory-toolbox scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above. */
static double hz_to_mel(double f, bool slaney) {
  if (!slaney) return 2595.0 * log10(1.0 + f / 700.0);
  const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
  return f >= min_log_hz ? min_log_mel + log(f / min_log_hz) / logstep : f / f_sp;
}

static double mel_to_hz(double m, bool slaney) {
  if (!slaney) return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
  return m >= min_log_mel ? min_log_hz * exp(logstep * (m - min_log_mel)) : f_sp * m;
}

vox_status vox_mel_filters_new(int sample_rate, int n_fft, int n_mels, float fmin, float fmax, bool slaney,
                               vox_tensor **out) {
  *out = NULL;
  if (sample_rate <= 0 || n_fft <= 0 || n_mels <= 0)
    return vox_errorf(VOX_ERR_INVALID, "mel_filters: sample_rate %d, n_fft %d and n_mels %d must be positive",
                      sample_rate, n_fft, n_mels);
  double f_max = fmax > 0 ? fmax : sample_rate / 2.0; /* librosa's fmax=None */
  if (fmin < 0 || fmin >= f_max)
    return vox_errorf(VOX_ERR_INVALID, "mel_filters: need 0 <= fmin (%g) < fmax (%g)", fmin, f_max);
  int n_freq = n_fft / 2 + 1;
  double *mel_f = malloc(sizeof(double) * (size_t)(n_mels + 2));
  float *w = calloc((size_t)n_mels * (size_t)n_freq, sizeof(float));
  if (!mel_f || !w) {
    free(mel_f);
    free(w);
    return vox_errorf(VOX_ERR_NOMEM, "mel_filters: out of memory");
  }
  /* n_mels + 2 band edges evenly spaced in mel, as librosa.mel_frequencies. */
  double mmin = hz_to_mel(fmin, slaney), mmax = hz_to_mel(f_max, slaney);
  for (int i = 0; i < n_mels + 2; i++) mel_f[i] = mel_to_hz(mmin + (mmax - mmin) * i / (n_mels + 1), slaney);
  for (int m = 0; m < n_mels; m++) {
    double lo = mel_f[m], mid = mel_f[m + 1], hi = mel_f[m + 2];
    double enorm = slaney ? 2.0 / (hi - lo) : 1.0; /* Slaney norm: each triangle has unit area */
    for (int k = 0; k < n_freq; k++) {
      double f = (double)sample_rate * k / n_fft; /* np.fft.rfftfreq */
      double lower = (f - lo) / (mid - lo), upper = (hi - f) / (hi - mid);
      double v = lower < upper ? lower : upper;
      w[(size_t)m * n_freq + k] = v > 0 ? (float)(v * enorm) : 0.0f;
    }
  }
  int64_t shape[2] = {n_mels, n_freq};
  vox_status st = vox_tensor_from_host(VOX_F32, VOX_CPU, 2, shape, w, out);
  free(mel_f);
  free(w);
  return st;
}

vox_status vox_op_mel_filterbank(vox_tensor *spec, vox_tensor *filters, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  if (!spec || !filters) return vox_errorf(VOX_ERR_INVALID, "mel_filterbank: spec or filters is NULL");
  if (filters->ndim != 2 || spec->ndim < 1 || spec->shape[spec->ndim - 1] != filters->shape[1])
    return vox_errorf(VOX_ERR_SHAPE, "mel_filterbank: spec %s and filters %s: expected spec [..., n_freq], filters "
                      "[n_mels, n_freq]", vox_tensor_describe(spec, b1, sizeof b1),
                      vox_tensor_describe(filters, b2, sizeof b2));
  vox_status st = vox_op_linear(spec, filters, NULL, out);
  return st == VOX_OK ? st : vox_error_context(st, "mel_filterbank: ");
}
