/* The data loader: frame cap, every sample once per epoch across ranks, equal batch counts per rank, seeded
 * and epoch-dependent order, exact resume, thread-count independence, and errors naming file:line. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audio.h"
#include "data/loader.h"
#include "vox_test.h"

static char tmpdir[256];
static char manifest[400];
#define N_SAMPLES 37 /* prime: uneven shards for every world size tried */

/* Writes N_SAMPLES sine WAVs of 0.12 .. 1.2 s and their manifest. */
static void setup(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vox_test_loader_XXXXXX");
  cr_assert(mkdtemp(tmpdir));
  snprintf(manifest, sizeof manifest, "%s/m.jsonl", tmpdir);
  FILE *f = fopen(manifest, "w");
  cr_assert(f);
  for (int i = 0; i < N_SAMPLES; i++) {
    int64_t n = 16000 * (12 + (i * 7) % 109) / 100;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t k = 0; k < n; k++) x[k] = 0.3f * sinf(2.0f * 3.14159265f * (200.0f + 20.0f * i) * k / 16000.0f);
    char path[512];
    snprintf(path, sizeof path, "%s/s%02d.wav", tmpdir, i);
    VT_OK(vox_audio_save_wav(path, x, n, 16000));
    free(x);
    fprintf(f, "{\"key\":\"s%02d\",\"task\":\"asr\",\"audio\":\"s%02d.wav\",\"duration\":%.4f,\"text\":\"t%d\"}\n",
            i, i, n / 16000.0, i);
  }
  fclose(f);
}
static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  cr_assert(system(cmd) == 0);
}
TestSuite(loader, .init = setup, .fini = teardown);

static vox_loader_opts opts_base(void) {
  vox_loader_opts o = vox_loader_opts_default();
  o.max_frames_in_batch = 400;
  o.seed = 7;
  o.bucket_window = 16;
  return o;
}

static vox_loader *open_ok(const vox_loader_opts *o) {
  vox_loader *L = NULL;
  VT_OK(vox_loader_open(manifest, o, &L));
  return L;
}

Test(loader, frame_and_batch_size_caps_hold) {
  vox_loader_opts o = opts_base();
  o.batch_size = 3;
  vox_loader *L = open_ok(&o);
  int64_t seen = 0;
  for (;;) {
    vox_batch *b = NULL;
    VT_OK(vox_loader_next(L, &b));
    if (!b) break;
    cr_assert(b->B * b->T <= o.max_frames_in_batch, "batch %lld: %lld x %lld frames > cap %lld",
              (long long)b->index, (long long)b->B, (long long)b->T, (long long)o.max_frames_in_batch);
    cr_assert(b->B >= 1 && b->B <= 3);
    cr_assert_eq(b->bins, 80);
    for (int64_t i = 0; i < b->B; i++) {
      cr_assert(b->lengths[i] >= 1 && b->lengths[i] <= b->T);
      /* padding is zero, valid frames are not */
      const float *row = b->feats + (i * b->T + b->lengths[i] - 1) * b->bins;
      double e = 0;
      for (int k = 0; k < b->bins; k++) e += fabs(row[k]);
      cr_assert(e > 0, "last valid frame of %s is all zero", b->keys[i]);
      if (b->lengths[i] < b->T) cr_assert_eq(b->feats[(i * b->T + b->lengths[i]) * b->bins], 0.0f);
      cr_assert_str_eq(b->keys[i], b->samples[i]->key);
      cr_assert_eq(b->texts[i], b->samples[i]->text);
    }
    seen += b->B;
    vox_batch_free(b);
  }
  cr_assert_eq(seen, N_SAMPLES);
  cr_assert_eq(vox_loader_position(L).epoch, 1);
  vox_loader_free(L);

  /* A sample longer than the cap on its own is refused at open, naming its line. */
  o.max_frames_in_batch = 50;
  vox_loader *bad = NULL;
  cr_assert_eq(vox_loader_open(manifest, &o, &bad), VOX_ERR_INVALID);
  cr_assert(strstr(vox_last_error(), "m.jsonl:") && strstr(vox_last_error(), "max_frames_in_batch"), "%s",
            vox_last_error());
}

/* Every sample exactly once per epoch over all ranks, and every rank the same number of batches. */
Test(loader, sharding_covers_every_sample_once_with_equal_counts) {
  for (int W = 1; W <= 5; W++) {
    for (int64_t epoch = 0; epoch < 2; epoch++) {
      int count[N_SAMPLES] = {0};
      int64_t nb0 = -1;
      for (int r = 0; r < W; r++) {
        vox_loader_opts o = opts_base();
        o.world_size = W;
        o.rank = r;
        o.max_frames_in_batch = 1000;
        vox_loader *L = open_ok(&o);
        int64_t nb = vox_loader_num_batches(L, epoch);
        if (nb0 < 0) nb0 = nb;
        cr_assert_eq(nb, nb0, "world %d epoch %lld: rank %d has %lld batches, rank 0 has %lld", W,
                     (long long)epoch, r, (long long)nb, (long long)nb0);
        for (int64_t j = 0; j < nb; j++) {
          int64_t *idx, n;
          VT_OK(vox_loader_plan_batch(L, epoch, j, &idx, &n));
          for (int64_t k = 0; k < n; k++) count[idx[k]]++;
          free(idx);
        }
        vox_loader_free(L);
      }
      for (int i = 0; i < N_SAMPLES; i++)
        cr_assert_eq(count[i], 1, "world %d epoch %lld: sample %d seen %d times", W, (long long)epoch, i, count[i]);
    }
  }
}

/* Fewer samples than ranks: batches are repeated so no rank runs out (the documented exception). */
Test(loader, more_ranks_than_samples_pads_by_repeating) {
  char small[500];
  snprintf(small, sizeof small, "%s/small.jsonl", tmpdir);
  FILE *f = fopen(small, "w");
  fprintf(f, "{\"key\":\"a\",\"task\":\"asr\",\"audio\":\"s00.wav\",\"duration\":0.12,\"text\":\"a\"}\n"
             "{\"key\":\"b\",\"task\":\"asr\",\"audio\":\"s01.wav\",\"duration\":0.19,\"text\":\"b\"}\n");
  fclose(f);
  for (int r = 0; r < 3; r++) {
    vox_loader_opts o = opts_base();
    o.world_size = 3;
    o.rank = r;
    vox_loader *L = NULL;
    VT_OK(vox_loader_open(small, &o, &L));
    cr_assert_eq(vox_loader_num_batches(L, 0), 1);
    vox_batch *b = NULL;
    VT_OK(vox_loader_next(L, &b));
    cr_assert(b && b->B == 1);
    vox_batch_free(b);
    vox_loader_free(L);
  }
}

static void plan_of(vox_loader *L, int64_t epoch, int64_t *flat, int64_t *n_flat) {
  *n_flat = 0;
  int64_t nb = vox_loader_num_batches(L, epoch);
  for (int64_t j = 0; j < nb; j++) {
    int64_t *idx, n;
    VT_OK(vox_loader_plan_batch(L, epoch, j, &idx, &n));
    for (int64_t k = 0; k < n; k++) flat[(*n_flat)++] = idx[k];
    flat[(*n_flat)++] = -1; /* batch boundary */
    free(idx);
  }
}

Test(loader, seeded_order_reproducible_and_changes_per_epoch) {
  vox_loader_opts o = opts_base();
  vox_loader *A = open_ok(&o), *B = open_ok(&o);
  int64_t a0[2 * N_SAMPLES], b0[2 * N_SAMPLES], a1[2 * N_SAMPLES], na0, nb0, na1;
  plan_of(A, 0, a0, &na0);
  plan_of(B, 0, b0, &nb0);
  plan_of(A, 1, a1, &na1);
  cr_assert_eq(na0, nb0);
  cr_assert(!memcmp(a0, b0, (size_t)na0 * sizeof *a0), "same seed, same epoch: different plans");
  cr_assert(na0 != na1 || memcmp(a0, a1, (size_t)na0 * sizeof *a0), "epoch 1 repeats epoch 0's order");
  vox_loader_free(B);
  o.seed = 8;
  B = open_ok(&o);
  plan_of(B, 0, b0, &nb0);
  cr_assert(na0 != nb0 || memcmp(a0, b0, (size_t)na0 * sizeof *a0), "another seed gives the same order");
  vox_loader_free(A);
  vox_loader_free(B);
}

static bool batches_equal(const vox_batch *x, const vox_batch *y) {
  if (x->B != y->B || x->T != y->T || x->bins != y->bins || x->epoch != y->epoch || x->index != y->index)
    return false;
  if (memcmp(x->indices, y->indices, (size_t)x->B * sizeof *x->indices)) return false;
  if (memcmp(x->lengths, y->lengths, (size_t)x->B * sizeof *x->lengths)) return false;
  return !memcmp(x->feats, y->feats, (size_t)(x->B * x->T * x->bins) * sizeof(float));
}

/* Collects up to max batches (crossing epoch ends) from the loader. */
static int collect(vox_loader *L, vox_batch **out, int max) {
  int n = 0;
  while (n < max) {
    vox_batch *b = NULL;
    VT_OK(vox_loader_next(L, &b));
    if (b) out[n++] = b;
  }
  return n;
}

Test(loader, resume_reproduces_remaining_batches) {
  vox_loader_opts o = opts_base();
  o.specaugment = true; /* randomness must be a function of the position too */
  o.num_workers = 2;
  vox_loader *L = open_ok(&o);
  const int64_t nb = vox_loader_num_batches(L, 0);
  cr_assert(nb >= 6, "need several batches, got %lld", (long long)nb);
  const int total = (int)nb + 4; /* into epoch 1 */
  vox_batch *ref[64];
  collect(L, ref, total);
  vox_loader_free(L);

  const int cut = (int)nb - 2;
  L = open_ok(&o);
  vox_batch *first[64];
  collect(L, first, cut);
  vox_loader_pos pos = vox_loader_position(L);
  cr_assert_eq(pos.epoch, 0);
  cr_assert_eq(pos.batch, cut);
  vox_loader_free(L);

  L = open_ok(&o);
  VT_OK(vox_loader_seek(L, pos));
  vox_batch *rest[64];
  collect(L, rest, total - cut);
  for (int i = 0; i < total - cut; i++)
    cr_assert(batches_equal(ref[cut + i], rest[i]), "resumed batch %d differs (epoch %lld index %lld)", i,
              (long long)rest[i]->epoch, (long long)rest[i]->index);
  for (int i = 0; i < cut; i++) cr_assert(batches_equal(ref[i], first[i]));
  for (int i = 0; i < total; i++) vox_batch_free(ref[i]);
  for (int i = 0; i < cut; i++) vox_batch_free(first[i]);
  for (int i = 0; i < total - cut; i++) vox_batch_free(rest[i]);
  cr_assert_eq(vox_loader_seek(L, (vox_loader_pos){0, 10000}), VOX_ERR_INDEX);
  vox_loader_free(L);
}

Test(loader, thread_count_does_not_change_batches) {
  vox_batch *runs[3][64];
  int counts[3];
  const int workers[3] = {0, 1, 3};
  for (int r = 0; r < 3; r++) {
    vox_loader_opts o = opts_base();
    o.num_workers = workers[r];
    o.prefetch = r == 2 ? 2 : 0;
    o.specaugment = true;
    vox_loader *L = open_ok(&o);
    counts[r] = (int)vox_loader_num_batches(L, 0);
    collect(L, runs[r], counts[r]);
    vox_loader_free(L);
  }
  for (int r = 1; r < 3; r++) {
    cr_assert_eq(counts[r], counts[0]);
    for (int i = 0; i < counts[0]; i++)
      cr_assert(batches_equal(runs[0][i], runs[r][i]), "%d workers: batch %d differs", workers[r], i);
  }
  for (int r = 0; r < 3; r++)
    for (int i = 0; i < counts[r]; i++) vox_batch_free(runs[r][i]);
}

/* A corrupt and a missing audio file fail next() with the manifest file:line and the audio path. */
Test(loader, bad_audio_is_an_error_naming_it) {
  char path[600];
  snprintf(path, sizeof path, "%s/s05.wav", tmpdir);
  FILE *f = fopen(path, "r+b");
  cr_assert(f);
  fwrite("GARBAGE!GARBAGE!GARBAGE!GARBAGE!GARBAGE!GARBAGE!", 1, 48, f); /* clobber the RIFF header */
  fclose(f);
  snprintf(path, sizeof path, "%s/s09.wav", tmpdir);
  cr_assert_eq(remove(path), 0);
  for (int workers = 0; workers <= 2; workers += 2) {
    vox_loader_opts o = opts_base();
    o.num_workers = workers;
    o.batch_size = 1; /* one sample a batch: each bad file fails its own batch */
    vox_loader *L = open_ok(&o);
    int errors = 0;
    bool saw5 = false, saw9 = false;
    int64_t nb = vox_loader_num_batches(L, 0);
    for (int64_t j = 0; j < nb; j++) {
      vox_batch *b = NULL;
      vox_status st = vox_loader_next(L, &b);
      if (st != VOX_OK) {
        errors++;
        const char *e = vox_last_error();
        if (strstr(e, "m.jsonl:6") && strstr(e, "s05.wav")) saw5 = true;
        if (strstr(e, "m.jsonl:10") && strstr(e, "s09.wav")) saw9 = true;
        cr_assert_null(b);
        vox_loader_pos p = vox_loader_position(L);
        cr_assert_eq(p.batch, j, "an error must not advance the position");
        VT_OK(vox_loader_seek(L, (vox_loader_pos){0, j + 1}));
      } else {
        vox_batch_free(b);
      }
    }
    cr_assert_eq(errors, 2, "%d workers: %d errors", workers, errors);
    cr_assert(saw5 && saw9, "%d workers: errors did not name m.jsonl:6 / s05.wav and m.jsonl:10 / s09.wav",
              workers);
    vox_loader_free(L);
  }
}

/* fraction: a fixed seeded subset, each of its samples once per epoch on every world size, the rest never. */
Test(loader, fraction_uses_a_fixed_subset) {
  int seen_in[2][N_SAMPLES] = {{0}};
  for (int64_t epoch = 0; epoch < 2; epoch++)
    for (int W = 1; W <= 3; W += 2) {
      int count[N_SAMPLES] = {0};
      for (int r = 0; r < W; r++) {
        vox_loader_opts o = opts_base();
        o.fraction = 0.3;
        o.world_size = W;
        o.rank = r;
        o.max_frames_in_batch = 1000;
        vox_loader *L = open_ok(&o);
        for (int64_t j = 0; j < vox_loader_num_batches(L, epoch); j++) {
          int64_t *idx, n;
          VT_OK(vox_loader_plan_batch(L, epoch, j, &idx, &n));
          for (int64_t k = 0; k < n; k++) count[idx[k]]++;
          free(idx);
        }
        vox_loader_free(L);
      }
      int used = 0;
      for (int i = 0; i < N_SAMPLES; i++) {
        cr_assert(count[i] <= 1, "sample %d seen %d times", i, count[i]);
        used += count[i];
        if (W == 1) seen_in[epoch][i] = count[i];
        else cr_assert_eq(count[i], seen_in[epoch][i], "world %d picks another subset than world 1", W);
      }
      cr_assert_eq(used, 11, "round(0.3 * 37) samples"); /* 11.1 -> 11 */
    }
  for (int i = 0; i < N_SAMPLES; i++) cr_assert_eq(seen_in[0][i], seen_in[1][i], "the subset changed between epochs");
  vox_loader_opts o = opts_base();
  o.fraction = 1.5;
  vox_loader *bad = NULL;
  cr_assert_eq(vox_loader_open(manifest, &o, &bad), VOX_ERR_INVALID);
}
