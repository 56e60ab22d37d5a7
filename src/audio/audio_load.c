/* Audio decoding: libsndfile to mono float at the file's rate, then soxr to the requested rate.
 * Checks the file before libsndfile sees it so that missing/empty/truncated files get a precise message. */
#include <errno.h>
#include <stdbool.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audio/audio.h"

/* libsndfile quietly shortens a WAV/AIFF whose data chunk runs past the end of the file; its log shows
 * "data : 32000 (should be 19956)". A declared size of 0 or 0xFFFFFFFF is a streamed header (written before the
 * length was known, e.g. by a pipe), not a truncation, and so is a mismatch in the outer RIFF/FORM size alone. */
static bool log_says_truncated(SNDFILE *sf) {
  char log[8192];
  log[0] = 0;
  sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log);
  for (const char *line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    const char *p = line;
    while (*p == ' ') p++;
    if (strncmp(p, "data :", 6) && strncmp(p, "SSND :", 6)) continue;
    const char *sb = strstr(p, "(should be");
    const char *eol = strchr(p, '\n');
    if (!sb || (eol && sb > eol)) continue;
    unsigned long long declared = strtoull(p + 6, NULL, 10);
    if (declared != 0 && declared < 0xFFFFFFF0ull) return true;
  }
  return false;
}

vox_status vox_audio_read(const char *path, float **samples, int64_t *n, int *rate) {
  if (!path || !samples || !n || !rate) return vox_errorf(VOX_ERR_INVALID, "vox_audio_read: NULL argument");
  *samples = NULL;
  *n = 0;
  *rate = 0;
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT) return vox_errorf(VOX_ERR_NOT_FOUND, "audio %s: file not found", path);
    return vox_errorf(VOX_ERR_IO, "audio %s: cannot stat: %s", path, strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return vox_errorf(VOX_ERR_IO, "audio %s: not a regular file", path);
  if (st.st_size == 0) return vox_errorf(VOX_ERR_PARSE, "audio %s: empty file (0 bytes)", path);

  SF_INFO info;
  memset(&info, 0, sizeof info);
  SNDFILE *sf = sf_open(path, SFM_READ, &info);
  if (!sf) {
    int code = sf_error(NULL);
    const char *why = sf_strerror(NULL);
    if (code == SF_ERR_UNRECOGNISED_FORMAT)
      return vox_errorf(VOX_ERR_UNSUPPORTED, "audio %s: unsupported or unrecognised format (%s)", path, why);
    if (code == SF_ERR_SYSTEM) return vox_errorf(VOX_ERR_IO, "audio %s: cannot open: %s", path, why);
    return vox_errorf(VOX_ERR_PARSE, "audio %s: corrupt or truncated file (%s)", path, why);
  }
  vox_status s = VOX_OK;
  float *buf = NULL, *mono = NULL;
  if (info.samplerate < VOX_AUDIO_MIN_RATE || info.samplerate > VOX_AUDIO_MAX_RATE) {
    s = vox_errorf(VOX_ERR_PARSE, "audio %s: absurd sample rate %d Hz (expected %d..%d)", path, info.samplerate,
                   VOX_AUDIO_MIN_RATE, VOX_AUDIO_MAX_RATE);
    goto done;
  }
  if (info.channels < 1 || info.channels > 256) {
    s = vox_errorf(VOX_ERR_PARSE, "audio %s: absurd channel count %d", path, info.channels);
    goto done;
  }
  if (info.frames <= 0) {
    s = vox_errorf(VOX_ERR_PARSE, "audio %s: no audio frames (empty recording)", path);
    goto done;
  }
  if (log_says_truncated(sf)) {
    s = vox_errorf(VOX_ERR_PARSE, "audio %s: truncated file (data chunk is shorter than its header says)", path);
    goto done;
  }
  /* Streams (e.g. some OGG) may report a frame count estimate; read in blocks until EOF. */
  const int64_t block = 65536;
  int64_t cap = info.frames > 0 ? info.frames : block, got = 0;
  mono = malloc((size_t)cap * sizeof(float));
  buf = malloc((size_t)block * info.channels * sizeof(float));
  if (!mono || !buf) {
    s = vox_errorf(VOX_ERR_NOMEM, "audio %s: cannot allocate %lld frames", path, (long long)cap);
    goto done;
  }
  for (;;) {
    sf_count_t r = sf_readf_float(sf, buf, block);
    if (r <= 0) break;
    if (got + r > cap) {
      int64_t ncap = (got + r) * 2;
      float *m = realloc(mono, (size_t)ncap * sizeof(float));
      if (!m) {
        s = vox_errorf(VOX_ERR_NOMEM, "audio %s: cannot allocate %lld frames", path, (long long)ncap);
        goto done;
      }
      mono = m;
      cap = ncap;
    }
    const int c = info.channels;
    for (sf_count_t i = 0; i < r; i++) {
      float acc = 0;
      for (int k = 0; k < c; k++) acc += buf[i * c + k];
      mono[got + i] = acc / (float)c;
    }
    got += r;
  }
  if (sf_error(sf) != SF_ERR_NO_ERROR) {
    s = vox_errorf(VOX_ERR_PARSE, "audio %s: decoding failed after %lld frames (%s)", path, (long long)got,
                   sf_strerror(sf));
    goto done;
  }
  if (got == 0) {
    s = vox_errorf(VOX_ERR_PARSE, "audio %s: no audio frames could be decoded", path);
    goto done;
  }
  if (got < info.frames) {
    s = vox_errorf(VOX_ERR_PARSE, "audio %s: truncated file (header declares %lld frames, only %lld decoded)", path,
                   (long long)info.frames, (long long)got);
    goto done;
  }
  *samples = mono;
  *n = got;
  *rate = info.samplerate;
  mono = NULL;
done:
  free(buf);
  free(mono);
  sf_close(sf);
  return s;
}

vox_status vox_audio_load(const char *path, int target_rate, float **samples, int64_t *n) {
  if (!samples || !n) return vox_errorf(VOX_ERR_INVALID, "vox_audio_load: NULL argument");
  *samples = NULL;
  *n = 0;
  if (target_rate < VOX_AUDIO_MIN_RATE || target_rate > VOX_AUDIO_MAX_RATE)
    return vox_errorf(VOX_ERR_INVALID, "audio %s: target sample rate %d Hz out of range %d..%d", path ? path : "(null)",
                      target_rate, VOX_AUDIO_MIN_RATE, VOX_AUDIO_MAX_RATE);
  float *raw = NULL;
  int64_t m = 0;
  int rate = 0;
  VOX_TRY(vox_audio_read(path, &raw, &m, &rate));
  if (rate == target_rate) {
    *samples = raw;
    *n = m;
    return VOX_OK;
  }
  vox_status s = vox_audio_resample(raw, m, rate, target_rate, samples, n);
  free(raw);
  if (s != VOX_OK) return vox_error_context(s, "audio %s", path);
  return VOX_OK;
}
