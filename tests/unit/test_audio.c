/* Audio I/O: WAV round trips (PCM16 and float), resampling 44.1k/8k -> 16k (length and a sine's frequency kept),
 * stereo mixdown, and bad input (missing, empty, truncated, random bytes, zero frames) giving errors naming the file. */
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio/audio.h"
#include "vox_test.h"

static char tmpdir[256];
static void setup_dir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vox_test_audio_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
}
static const char *tmp(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
  return buf[k];
}

static float *sine(int64_t n, double freq, int rate, double amp) {
  float *x = malloc(n * sizeof(float));
  for (int64_t i = 0; i < n; i++) x[i] = (float)(amp * sin(2 * M_PI * freq * i / rate));
  return x;
}

/* Frequency estimate from zero crossings: robust enough to tell 440 Hz from a rate-mismatched 1200 Hz. */
static double zc_freq(const float *x, int64_t n, int rate) {
  int64_t first = -1, last = -1, count = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i - 1] < 0 && x[i] >= 0) {
      if (first < 0) first = i;
      last = i;
      count++;
    }
  return (count - 1) * (double)rate / (double)(last - first);
}

TestSuite(audio, .init = setup_dir);

Test(audio, wav_round_trip_pcm16_and_float) {
  const int64_t n = 8000;
  float *x = sine(n, 440, 16000, 0.5);
  x[10] = 1.0f; /* must clip, not wrap to -1 */
  x[11] = -1.0f;
  VT_OK(vox_audio_save_wav(tmp("a16.wav"), x, n, 16000));
  VT_OK(vox_audio_save_wav_ex(tmp("af.wav"), x, n, 16000, VOX_WAV_FLOAT32));
  float *y;
  int64_t m;
  int rate;
  VT_OK(vox_audio_read(tmp("a16.wav"), &y, &m, &rate));
  cr_assert_eq(m, n);
  cr_assert_eq(rate, 16000);
  double err = 0;
  for (int64_t i = 0; i < n; i++) err = fmax(err, fabs(y[i] - x[i]));
  cr_assert_leq(err, 1.0 / 32768 + 1e-6, "PCM16 round trip max abs err %g > 1/32768", err);
  cr_assert_gt(y[10], 0.99f, "+1.0 clipped, got %g", y[10]);
  free(y);
  VT_OK(vox_audio_read(tmp("af.wav"), &y, &m, &rate));
  cr_assert_eq(m, n);
  for (int64_t i = 0; i < n; i++) cr_assert_eq(y[i], x[i], "float WAV not lossless at %lld", (long long)i);
  free(y);
  free(x);
}

static void check_resample_from(int rate) {
  const int64_t n = rate; /* 1 s */
  float *x = sine(n, 440, rate, 0.5);
  char name[64];
  snprintf(name, sizeof name, "r%d.wav", rate);
  VT_OK(vox_audio_save_wav_ex(tmp(name), x, n, rate, VOX_WAV_FLOAT32));
  float *y;
  int64_t m;
  VT_OK(vox_audio_load(tmp(name), 16000, &y, &m));
  cr_assert_eq(m, 16000, "%d Hz, 1 s -> %lld samples at 16 kHz", rate, (long long)m);
  double f = zc_freq(y + 800, m - 1600, 16000);
  cr_assert(fabs(f - 440) < 1.0, "%d Hz -> 16 kHz: sine at %g Hz, want 440", rate, f);
  /* amplitude preserved away from the edges (HQ passband ripple is tiny) */
  float peak = 0;
  for (int64_t i = 800; i < m - 800; i++) peak = fmaxf(peak, fabsf(y[i]));
  cr_assert(fabsf(peak - 0.5f) < 0.01f, "%d Hz -> 16 kHz: peak %g, want 0.5", rate, peak);
  free(x);
  free(y);
}

Test(audio, resample_44100_to_16000) { check_resample_from(44100); }
Test(audio, resample_8000_to_16000) { check_resample_from(8000); }

Test(audio, resample_length_odd_sizes) {
  float *x = sine(12345, 100, 22050, 0.3), *y;
  int64_t m;
  VT_OK(vox_audio_resample(x, 12345, 22050, 16000, &y, &m));
  cr_assert_eq(m, (int64_t)llround(12345.0 * 16000 / 22050));
  free(y);
  free(x);
}

Test(audio, stereo_mixdown) {
  const int64_t n = 4000;
  float *st = malloc(2 * n * sizeof(float));
  for (int64_t i = 0; i < n; i++) {
    st[2 * i] = 0.5f;
    st[2 * i + 1] = (i % 2) ? 0.25f : -0.25f;
  }
  SF_INFO info = {.samplerate = 16000, .channels = 2, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
  SNDFILE *sf = sf_open(tmp("st.wav"), SFM_WRITE, &info);
  cr_assert_not_null(sf);
  cr_assert_eq(sf_writef_float(sf, st, n), n);
  sf_close(sf);
  float *y;
  int64_t m;
  VT_OK(vox_audio_load(tmp("st.wav"), 16000, &y, &m));
  cr_assert_eq(m, n);
  for (int64_t i = 0; i < n; i++) {
    float want = 0.5f * (0.5f + ((i % 2) ? 0.25f : -0.25f));
    cr_assert_float_eq(y[i], want, 1e-7, "mixdown at %lld: %g vs %g", (long long)i, y[i], want);
  }
  free(y);
  free(st);
}

/* The load must fail with `code` and a message naming the file and containing `what`. */
static void expect_error(const char *path, vox_status code, const char *what) {
  float *y = (float *)0x1;
  int64_t m = -1;
  vox_status s = vox_audio_load(path, 16000, &y, &m);
  cr_assert_eq(s, code, "%s: got %s (%s), want %s", path, vox_status_name(s), vox_last_error(),
               vox_status_name(code));
  cr_assert_null(y);
  cr_assert_eq(m, 0);
  cr_assert(strstr(vox_last_error(), path), "message does not name the file: %s", vox_last_error());
  cr_assert(strstr(vox_last_error(), what), "message lacks '%s': %s", what, vox_last_error());
}

static void write_bytes(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  if (n) cr_assert_eq(fwrite(b, 1, n, f), n);
  fclose(f);
}

Test(audio, bad_inputs_name_the_file) {
  expect_error(tmp("missing.wav"), VOX_ERR_NOT_FOUND, "not found");
  write_bytes(tmp("empty.wav"), "", 0);
  expect_error(tmp("empty.wav"), VOX_ERR_PARSE, "empty");

  unsigned char junk[3000];
  uint32_t s = 12345;
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)((s = s * 1103515245u + 12345u) >> 16);
  write_bytes(tmp("random.wav"), junk, sizeof junk);
  expect_error(tmp("random.wav"), VOX_ERR_UNSUPPORTED, "unsupported");

  /* a valid PCM16 file cut in the middle of its data, and one cut inside its header */
  float *x = sine(16000, 440, 16000, 0.5);
  VT_OK(vox_audio_save_wav(tmp("full.wav"), x, 16000, 16000));
  free(x);
  FILE *f = fopen(tmp("full.wav"), "rb");
  unsigned char buf[32044];
  size_t got = fread(buf, 1, sizeof buf, f);
  fclose(f);
  cr_assert_eq(got, 32044u);
  write_bytes(tmp("trunc.wav"), buf, 20000);
  expect_error(tmp("trunc.wav"), VOX_ERR_PARSE, "truncated");
  write_bytes(tmp("trunc_hdr.wav"), buf, 30);
  expect_error(tmp("trunc_hdr.wav"), VOX_ERR_PARSE, "truncated");

  /* a streamed WAV (RIFF and data sizes 0xFFFFFFFF, as written to a pipe) is complete, not truncated */
  unsigned char streamed[32044];
  memcpy(streamed, buf, sizeof buf);
  memset(streamed + 4, 0xff, 4);
  memset(streamed + 40, 0xff, 4);
  write_bytes(tmp("streamed.wav"), streamed, sizeof streamed);
  float *y;
  int64_t m;
  VT_OK(vox_audio_load(tmp("streamed.wav"), 16000, &y, &m));
  cr_assert_eq(m, 16000);
  free(y);

  /* a well-formed WAV with zero frames */
  VT_OK(vox_audio_save_wav(tmp("zero.wav"), NULL, 0, 16000));
  expect_error(tmp("zero.wav"), VOX_ERR_PARSE, "no audio frames");

  /* a header claiming 5 Hz */
  memcpy(buf + 24, (uint32_t[]){5}, 4);
  write_bytes(tmp("rate.wav"), buf, sizeof buf);
  expect_error(tmp("rate.wav"), VOX_ERR_PARSE, "sample rate");
}

Test(audio, flac_and_espeak_fixture) {
  /* FLAC through libsndfile: lossless for 16-bit content */
  const int64_t n = 5000;
  float *x = sine(n, 300, 16000, 0.25);
  SF_INFO info = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16};
  SNDFILE *sf = sf_open(tmp("a.flac"), SFM_WRITE, &info);
  cr_assert_not_null(sf, "%s", sf_strerror(NULL));
  cr_assert_eq(sf_writef_float(sf, x, n), n);
  sf_close(sf);
  float *y;
  int64_t m;
  VT_OK(vox_audio_load(tmp("a.flac"), 16000, &y, &m));
  cr_assert_eq(m, n);
  for (int64_t i = 0; i < n; i++) cr_assert(fabsf(y[i] - x[i]) <= 1.0f / 32768 + 1e-6f);
  free(y);
  free(x);
  /* the espeak-ng utterance (22050 Hz PCM16) resampled to 16 kHz */
  int rate;
  float *raw;
  int64_t nraw;
  VT_OK(vox_audio_read(vt_fixture("audio/speech_22k.wav"), &raw, &nraw, &rate));
  cr_assert_eq(rate, 22050);
  VT_OK(vox_audio_load(vt_fixture("audio/speech_22k.wav"), 16000, &y, &m));
  cr_assert_eq(m, (int64_t)llround((double)nraw * 16000 / 22050));
  double e_in = 0, e_out = 0; /* speech energy is below 8 kHz, so resampling keeps the mean power */
  for (int64_t i = 0; i < nraw; i++) e_in += (double)raw[i] * raw[i];
  for (int64_t i = 0; i < m; i++) e_out += (double)y[i] * y[i];
  e_in /= nraw;
  e_out /= m;
  cr_assert(fabs(e_out / e_in - 1) < 0.05, "mean power %g -> %g", e_in, e_out);
  free(raw);
  free(y);
  cr_assert_eq(vox_audio_load(vt_fixture("audio/speech_22k.wav"), 0, &y, &m), VOX_ERR_INVALID);
}
