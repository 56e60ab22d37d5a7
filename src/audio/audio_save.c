/* WAV writing through libsndfile: mono, 16-bit PCM (clipped) or 32-bit float. */
#include <sndfile.h>
#include <string.h>

#include "audio/audio.h"

vox_status vox_audio_save_wav_ex(const char *path, const float *samples, int64_t n, int rate,
                                 vox_wav_encoding encoding) {
  if (!path || (!samples && n > 0) || n < 0) return vox_errorf(VOX_ERR_INVALID, "vox_audio_save_wav: NULL argument");
  if (rate < VOX_AUDIO_MIN_RATE || rate > VOX_AUDIO_MAX_RATE)
    return vox_errorf(VOX_ERR_INVALID, "audio %s: cannot write sample rate %d Hz (expected %d..%d)", path, rate,
                      VOX_AUDIO_MIN_RATE, VOX_AUDIO_MAX_RATE);
  SF_INFO info;
  memset(&info, 0, sizeof info);
  info.samplerate = rate;
  info.channels = 1;
  if (encoding == VOX_WAV_PCM16)
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  else if (encoding == VOX_WAV_FLOAT32)
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  else
    return vox_errorf(VOX_ERR_INVALID, "audio %s: unknown WAV encoding %d", path, (int)encoding);
  SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
  if (!sf) return vox_errorf(VOX_ERR_IO, "audio %s: cannot create: %s", path, sf_strerror(NULL));
  /* Without clipping libsndfile wraps +1.0 around to -32768. */
  sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
  sf_count_t w = n ? sf_writef_float(sf, samples, n) : 0;
  vox_status s = VOX_OK;
  if (w != n) s = vox_errorf(VOX_ERR_IO, "audio %s: wrote %lld of %lld frames: %s", path, (long long)w, (long long)n,
                             sf_strerror(sf));
  if (sf_close(sf) != 0 && s == VOX_OK) s = vox_errorf(VOX_ERR_IO, "audio %s: closing failed", path);
  return s;
}

vox_status vox_audio_save_wav(const char *path, const float *samples, int64_t n, int rate) {
  return vox_audio_save_wav_ex(path, samples, n, rate, VOX_WAV_PCM16);
}
