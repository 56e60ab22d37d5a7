/* FunASR low-frame-rate stacking (apply_lfr): row i of the output concatenates padded input frames
 * i*n .. i*n+m-1, where the padding repeats the first frame (m-1)/2 times in front and the last frame behind. */
#include <stdlib.h>
#include <string.h>

#include "audio/features.h"

vox_status vox_features_lfr(const float *in, int64_t frames, int bins, int m, int n, float **out, int64_t *out_frames) {
  if (!out || !out_frames || (!in && frames > 0)) return vox_errorf(VOX_ERR_INVALID, "lfr: NULL argument");
  *out = NULL;
  *out_frames = 0;
  if (m < 1 || n < 1 || bins < 1 || frames < 0)
    return vox_errorf(VOX_ERR_INVALID, "lfr: need m >= 1, n >= 1, bins >= 1, frames >= 0 (got m=%d n=%d bins=%d "
                      "frames=%lld)", m, n, bins, (long long)frames);
  if (frames == 0) return VOX_OK;
  const int64_t T = (frames + n - 1) / n, left = (m - 1) / 2;
  float *o = malloc((size_t)T * m * bins * sizeof(float));
  if (!o) return vox_errorf(VOX_ERR_NOMEM, "lfr: cannot allocate %lld x %d", (long long)T, m * bins);
  for (int64_t i = 0; i < T; i++)
    for (int j = 0; j < m; j++) {
      int64_t src = i * n + j - left; /* index into the unpadded input */
      if (src < 0) src = 0;
      if (src >= frames) src = frames - 1;
      memcpy(o + (i * m + j) * bins, in + src * bins, (size_t)bins * sizeof(float));
    }
  *out = o;
  *out_frames = T;
  return VOX_OK;
}
