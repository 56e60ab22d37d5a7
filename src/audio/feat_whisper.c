/* Whisper log-mel spectrogram, step for step as openai-whisper's log_mel_spectrogram (see features.h); frames are
 * independent until the global max, so the STFT runs in parallel with one kiss_fftr plan per thread. */
#include <float.h>
#include <kiss_fftr.h>
#include <math.h>
#include <stdlib.h>

#include "audio/feat_internal.h"
#include "audio/features.h"
#include "core/backend.h"
#include "core/ops.h"

/* Whisper uses a fixed filterbank per n_mels (librosa Slaney filters from core/ops.h); build it once per process. */
static feat_melbank whisper_bank[2];
static vox_status whisper_bank_build(int n_mels, feat_melbank *b) {
  vox_tensor *t = NULL;
  VOX_TRY(vox_mel_filters_new(VOX_WHISPER_RATE, VOX_WHISPER_N_FFT, n_mels, 0.f, VOX_WHISPER_RATE / 2.f, true, &t));
  vox_status s;
  if (t->ndim != 2 || t->shape[0] != n_mels || t->shape[1] != VOX_WHISPER_N_FFT / 2 + 1 || t->dtype != VOX_F32 ||
      !vox_tensor_is_contiguous(t))
    s = vox_errorf(VOX_ERR_SHAPE, "whisper mel: vox_mel_filters_new gave an unexpected tensor (want contiguous f32 "
                   "[%d, %d])", n_mels, VOX_WHISPER_N_FFT / 2 + 1);
  else
    s = feat_melbank_from_dense(vox_tensor_f32(t), n_mels, VOX_WHISPER_N_FFT / 2 + 1, b);
  vox_tensor_release(t);
  return s;
}
static vox_status whisper_bank_get(int n_mels, const feat_melbank **out) {
  int slot = n_mels == 80 ? 0 : 1;
  vox_status s = VOX_OK;
#pragma omp critical(vox_whisper_bank)
  {
    if (!whisper_bank[slot].w) s = whisper_bank_build(n_mels, &whisper_bank[slot]);
  }
  *out = &whisper_bank[slot];
  return s;
}

vox_status vox_features_whisper_mel(const float *x, int64_t n, int n_mels, float **out, int64_t *frames) {
  if (!out || !frames || (!x && n > 0)) return vox_errorf(VOX_ERR_INVALID, "whisper mel: NULL argument");
  *out = NULL;
  *frames = 0;
  if (n_mels != 80 && n_mels != 128)
    return vox_errorf(VOX_ERR_INVALID, "whisper mel: n_mels must be 80 or 128, got %d", n_mels);
  const int nfft = VOX_WHISPER_N_FFT, hop = VOX_WHISPER_HOP, pad = nfft / 2, nfreq = nfft / 2 + 1;
  /* torch.stft(center=True) reflect-pads by n_fft/2, which needs more samples than the pad. */
  if (n <= pad)
    return vox_errorf(VOX_ERR_INVALID, "whisper mel: need more than %d samples for reflect padding, got %lld", pad,
                      (long long)n);
  const int64_t T = n / hop; /* 1 + n/hop STFT frames, the last one dropped */
  const feat_melbank *bank;
  VOX_TRY(whisper_bank_get(n_mels, &bank));
  float *o = malloc((size_t)T * n_mels * sizeof(float));
  if (!o) return vox_errorf(VOX_ERR_NOMEM, "whisper mel: cannot allocate %lld x %d", (long long)T, n_mels);
  float window[VOX_WHISPER_N_FFT];
  for (int i = 0; i < nfft; i++) window[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / nfft)); /* periodic */

  int failed = 0;
  float gmax = -FLT_MAX;
#pragma omp parallel num_threads(vox_num_threads()) if (T > 32) reduction(max : gmax) reduction(| : failed)
  {
    kiss_fftr_cfg cfg = kiss_fftr_alloc(nfft, 0, NULL, NULL);
    float frame[VOX_WHISPER_N_FFT], power[VOX_WHISPER_N_FFT / 2 + 1];
    kiss_fft_cpx spec[VOX_WHISPER_N_FFT / 2 + 1];
    if (!cfg) failed = 1;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < T; t++) {
      if (!cfg) continue;
      const int64_t start = t * hop - pad;
      for (int i = 0; i < nfft; i++) {
        int64_t j = start + i;
        if (j < 0) j = -j;
        if (j >= n) j = 2 * (n - 1) - j;
        frame[i] = x[j] * window[i];
      }
      kiss_fftr(cfg, frame, spec);
      for (int k = 0; k < nfreq; k++) power[k] = spec[k].r * spec[k].r + spec[k].i * spec[k].i;
      float *row = o + t * n_mels;
      feat_melbank_apply(bank, power, row);
      for (int m = 0; m < n_mels; m++) {
        row[m] = log10f(fmaxf(row[m], 1e-10f));
        gmax = fmaxf(gmax, row[m]);
      }
    }
    kiss_fftr_free(cfg);
  }
  if (failed) {
    free(o);
    return vox_errorf(VOX_ERR_NOMEM, "whisper mel: cannot allocate an FFT plan of size %d", nfft);
  }
  const float floor_v = gmax - 8.0f;
  const int64_t total = T * n_mels;
#pragma omp parallel for num_threads(vox_num_threads()) if (total > 65536)
  for (int64_t i = 0; i < total; i++) o[i] = (fmaxf(o[i], floor_v) + 4.0f) / 4.0f;
  *out = o;
  *frames = T;
  return VOX_OK;
}
