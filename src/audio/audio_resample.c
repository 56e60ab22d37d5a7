/* Sample-rate conversion with libsoxr at HQ quality (the one-shot API flushes the filter tail, so the
 * output length is exactly round(n * out_rate / in_rate)). */
#include <math.h>
#include <soxr.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audio.h"

vox_status vox_audio_resample(const float *in, int64_t n, int in_rate, int out_rate, float **out, int64_t *out_n) {
  if (!out || !out_n || (!in && n > 0) || n < 0)
    return vox_errorf(VOX_ERR_INVALID, "vox_audio_resample: NULL or negative argument");
  *out = NULL;
  *out_n = 0;
  if (in_rate <= 0 || out_rate <= 0)
    return vox_errorf(VOX_ERR_INVALID, "vox_audio_resample: sample rates must be positive (got %d -> %d)", in_rate,
                      out_rate);
  int64_t want = (int64_t)llround((double)n * out_rate / in_rate);
  float *o = malloc((size_t)(want > 0 ? want : 1) * sizeof(float));
  if (!o) return vox_errorf(VOX_ERR_NOMEM, "vox_audio_resample: cannot allocate %lld samples", (long long)want);
  if (in_rate == out_rate || n == 0) {
    if (n) memcpy(o, in, (size_t)n * sizeof(float));
    *out = o;
    *out_n = n;
    return VOX_OK;
  }
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  size_t done = 0;
  soxr_error_t err = soxr_oneshot((double)in_rate, (double)out_rate, 1, in, (size_t)n, NULL, o, (size_t)want, &done,
                                  &io, &q, NULL);
  if (err) {
    free(o);
    return vox_errorf(VOX_ERR_INVALID, "vox_audio_resample: soxr %d -> %d Hz failed: %s", in_rate, out_rate, err);
  }
  /* soxr may deliver one sample less than the rounded length; hold the last value rather than invent data. */
  for (size_t i = done; i < (size_t)want; i++) o[i] = done ? o[done - 1] : 0.f;
  *out = o;
  *out_n = want;
  return VOX_OK;
}
