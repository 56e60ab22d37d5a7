/* Featurisation throughput on one core: hours of 16 kHz audio featurised per second of CPU for Whisper log-mel
 * (80 and 128 bins) and Kaldi fbank (80 bins, + LFR 7/6). Usage: bench_features [seconds_of_audio] [threads]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "audio/features.h"
#include "core/backend.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 600.0;
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  vox_set_num_threads(threads);
  int64_t n = (int64_t)(secs * 16000);
  float *x = malloc(n * sizeof(float));
  vox_rng r = vox_rng_make(1);
  for (int64_t i = 0; i < n; i++) /* speech-like: a wandering tone plus noise */
    x[i] = 0.3f * sinf(0.05f * i + 3.f * sinf(1e-4f * i)) + 0.05f * (float)(vox_rng_next_double(&r) - 0.5);
  printf("bench_features: %.0f s of 16 kHz audio, %d thread(s)\n", secs, threads);
  const char *names[] = {"whisper-mel 80", "whisper-mel 128", "fbank 80", "fbank 80 + lfr 7,6"};
  for (int k = 0; k < 4; k++) {
    double best = 1e30;
    int64_t frames = 0;
    for (int rep = 0; rep < 5; rep++) {
      float *out = NULL, *lfr = NULL;
      int bins;
      int64_t lf;
      double t0 = now();
      vox_status s;
      if (k < 2)
        s = vox_features_whisper_mel(x, n, k == 0 ? 80 : 128, &out, &frames);
      else {
        s = vox_features_fbank(x, n, NULL, &out, &frames, &bins);
        if (s == VOX_OK && k == 3) s = vox_features_lfr(out, frames, bins, 7, 6, &lfr, &lf);
      }
      double dt = now() - t0;
      if (s != VOX_OK) {
        fprintf(stderr, "%s: %s\n", names[k], vox_last_error());
        return 1;
      }
      if (dt < best) best = dt;
      free(out);
      free(lfr);
    }
    double hours_per_s = secs / 3600.0 / best;
    printf("%-20s %8lld frames  %7.3f s  %7.1fx real time  %.3f h audio/s  %.3f h audio/s/core\n", names[k],
           (long long)frames, best, secs / best, hours_per_s, hours_per_s / threads);
  }
  free(x);
  return 0;
}
