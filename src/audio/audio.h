/* vox audio I/O (module prefix vox_audio_): decode any format libsndfile reads to mono float, resample with
 * libsoxr (HQ), write WAV. Owns src/audio/audio_*.c. Every error message names the file and the problem. */
#ifndef VOX_AUDIO_AUDIO_H
#define VOX_AUDIO_AUDIO_H

#include <stdint.h>

#include "core/status.h"

/* Sample rates outside this range are treated as a corrupt header ("absurd sample rate"). */
#define VOX_AUDIO_MIN_RATE 1000
#define VOX_AUDIO_MAX_RATE 768000

/* Reads `path` (WAV, FLAC, OGG/Vorbis, AIFF, ... whatever libsndfile reads), mixes all channels to mono by
 * averaging, and resamples to target_rate (> 0) with soxr HQ. *samples is malloc()ed, caller free()s.
 * Errors: VOX_ERR_NOT_FOUND (missing), VOX_ERR_IO (unreadable), VOX_ERR_PARSE (corrupt, truncated, empty
 * file, zero frames, absurd sample rate), VOX_ERR_UNSUPPORTED (format libsndfile does not know). */
vox_status vox_audio_load(const char *path, int target_rate, float **samples, int64_t *n);

/* Same as vox_audio_load but keeps the file's own sample rate, returned in *rate. */
vox_status vox_audio_read(const char *path, float **samples, int64_t *n, int *rate);

/* Mono resampling in_rate -> out_rate with soxr HQ; *out has round(n * out_rate / in_rate) samples,
 * malloc()ed, caller free()s. in_rate == out_rate copies. */
vox_status vox_audio_resample(const float *in, int64_t n, int in_rate, int out_rate, float **out, int64_t *out_n);

typedef enum vox_wav_encoding {
  VOX_WAV_PCM16 = 0, /* 16-bit signed PCM; samples clipped to [-1, 1) */
  VOX_WAV_FLOAT32    /* IEEE float, lossless for float input */
} vox_wav_encoding;

/* Writes mono `samples` as a 16-bit PCM WAV at `rate`. */
vox_status vox_audio_save_wav(const char *path, const float *samples, int64_t n, int rate);
/* Writes mono `samples` as a WAV with the chosen encoding. */
vox_status vox_audio_save_wav_ex(const char *path, const float *samples, int64_t n, int rate,
                                 vox_wav_encoding encoding);

#endif
