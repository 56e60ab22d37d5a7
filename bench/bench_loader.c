/* Loader throughput: hours of audio decoded and featurised per second of wall time, and per core, over whole
 * epochs of a manifest. Usage: bench_loader MANIFEST [--workers N] [--features whisper|fbank] [--epochs E]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backend.h"
#include "data/loader.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MANIFEST [--workers N] [--features whisper|fbank] [--epochs E] [--max-frames F]\n",
            argv[0]);
    return 2;
  }
  vox_loader_opts o = vox_loader_opts_default();
  o.max_frames_in_batch = 20000;
  o.seed = 1;
  int epochs = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--workers")) o.num_workers = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--epochs")) epochs = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--max-frames")) o.max_frames_in_batch = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--features")) {
      if (!strcmp(argv[i + 1], "fbank")) {
        o.features = VOX_LOADER_FBANK_LFR;
        o.lfr_m = 7;
        o.lfr_n = 6;
      } else o.features = VOX_LOADER_WHISPER_MEL;
    } else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  /* One core per worker: feature kernels run single-threaded inside each worker. */
  vox_set_num_threads(1);
  vox_loader *L = NULL;
  if (vox_loader_open(argv[1], &o, &L) != VOX_OK) {
    fprintf(stderr, "bench_loader: %s\n", vox_last_error());
    return 1;
  }
  double seconds_audio = 0, t0 = now();
  int64_t batches = 0, frames = 0, padded = 0;
  for (int e = 0; e < epochs;) {
    vox_batch *b = NULL;
    if (vox_loader_next(L, &b) != VOX_OK) {
      fprintf(stderr, "bench_loader: %s\n", vox_last_error());
      vox_loader_free(L);
      return 1;
    }
    if (!b) {
      e++;
      continue;
    }
    for (int64_t i = 0; i < b->B; i++) {
      seconds_audio += b->samples[i]->duration;
      frames += b->lengths[i];
    }
    padded += b->B * b->T;
    batches++;
    vox_batch_free(b);
  }
  double wall = now() - t0;
  int cores = o.num_workers > 0 ? o.num_workers : 1;
  double hps = seconds_audio / 3600.0 / wall;
  printf("bench_loader: %s, features %s, workers %d, %d epochs\n", argv[1],
         o.features == VOX_LOADER_WHISPER_MEL ? "whisper-mel-80" : "fbank-80+lfr7/6", o.num_workers, epochs);
  printf("  %.3f h of audio in %.2f s: %.3f h/s (%.0fx real time), %.3f h/s per core (%d core%s)\n",
         seconds_audio / 3600, wall, hps, hps * 3600, hps / cores, cores, cores > 1 ? "s" : "");
  printf("  %lld batches, padding efficiency %.1f%% (valid / padded frames)\n", (long long)batches,
         100.0 * frames / (padded ? padded : 1));
  vox_loader_free(L);
  return 0;
}
