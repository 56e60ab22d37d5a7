/* Private helpers shared by the feature extractors (not part of the public API): a mel filterbank stored
 * with each band's non-zero bin range, so that applying it costs only the triangle widths. */
#ifndef VOX_AUDIO_FEAT_INTERNAL_H
#define VOX_AUDIO_FEAT_INTERNAL_H

#include <stdbool.h>

#include "core/status.h"

typedef struct feat_melbank {
  int n_mels, n_freq;
  float *w;    /* dense [n_mels, n_freq] */
  int *lo, *hi; /* band m is non-zero only in bins [lo[m], hi[m]) */
} feat_melbank;

/* Copies a dense [n_mels, n_freq] matrix (e.g. from vox_mel_filters_new) and finds the band ranges. */
vox_status feat_melbank_from_dense(const float *w, int n_mels, int n_freq, feat_melbank *out);
/* Kaldi MelBanks (HTK mel 1127 ln(1 + f/700), triangles in mel, no normalisation) for a padded FFT of n_fft;
 * n_freq = n_fft/2 + 1 with the Nyquist column zero, as torchaudio.compliance.kaldi.get_mel_banks pads it. */
vox_status feat_melbank_kaldi(int sample_rate, int n_fft, int n_mels, double low_freq, double high_freq,
                              feat_melbank *out);
/* out[m] = sum_k power[k] * w[m, k] over the band's range. */
static inline void feat_melbank_apply(const feat_melbank *b, const float *power, float *out) {
  for (int m = 0; m < b->n_mels; m++) {
    const float *w = b->w + (long)m * b->n_freq;
    float acc = 0;
    for (int k = b->lo[m]; k < b->hi[m]; k++) acc += power[k] * w[k];
    out[m] = acc;
  }
}
void feat_melbank_free(feat_melbank *b);

#endif
