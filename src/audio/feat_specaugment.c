/* SpecAugment masking (frequency bands, then time spans) in place, with every draw from the caller's vox_rng so
 * a given seed always masks the same cells. */
#include <math.h>

#include "audio/features.h"

static int64_t draw(vox_rng *rng, int64_t hi_inclusive) {
  return hi_inclusive <= 0 ? 0 : (int64_t)(vox_rng_next_u64(rng) % (uint64_t)(hi_inclusive + 1));
}

vox_status vox_specaugment(float *feats, int64_t frames, int bins, const vox_specaugment_opts *o, vox_rng *rng) {
  if (!o || !rng || (!feats && frames > 0)) return vox_errorf(VOX_ERR_INVALID, "specaugment: NULL argument");
  if (bins < 1 || frames < 0 || o->n_freq_masks < 0 || o->n_time_masks < 0 || o->max_freq_width < 0 ||
      o->max_time_width < 0)
    return vox_errorf(VOX_ERR_INVALID, "specaugment: negative count/width or bins < 1 (bins=%d frames=%lld)", bins,
                      (long long)frames);
  if (frames == 0) return VOX_OK;
  float fill = o->fill;
  if (o->fill_mean) {
    double acc = 0;
    for (int64_t i = 0; i < frames * bins; i++) acc += feats[i];
    fill = (float)(acc / ((double)frames * bins));
  }
  int64_t fw_max = o->max_freq_width < bins ? o->max_freq_width : bins;
  for (int k = 0; k < o->n_freq_masks; k++) {
    int64_t w = draw(rng, fw_max), f0 = draw(rng, bins - w);
    for (int64_t t = 0; t < frames; t++)
      for (int64_t f = f0; f < f0 + w; f++) feats[t * bins + f] = fill;
  }
  int64_t tw_max = o->max_time_width < frames ? o->max_time_width : frames;
  if (o->max_time_ratio > 0) {
    int64_t cap = (int64_t)floor(o->max_time_ratio * (double)frames);
    if (cap < tw_max) tw_max = cap;
  }
  for (int k = 0; k < o->n_time_masks; k++) {
    int64_t w = draw(rng, tw_max), t0 = draw(rng, frames - w);
    for (int64_t t = t0; t < t0 + w; t++)
      for (int f = 0; f < bins; f++) feats[t * bins + f] = fill;
  }
  return VOX_OK;
}
