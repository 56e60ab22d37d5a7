/* The training data loader (module prefix vox_loader_, vox_batch_): length-bucketed dynamic batches capped by
 * padded frames, seeded per-epoch shuffling, equal batch counts on every rank, worker threads that decode audio
 * and compute features ahead of the trainer, and exact resume from a (epoch, batch) position.
 *
 * The epoch plan (which samples form which batch, in which order) is a pure function of (manifest, options,
 * seed, epoch): every rank computes the same plan and takes batches rank, rank + W, rank + 2W, ... A batch's
 * features depend only on its samples and (seed, epoch, sample index) — never on the thread that made it — so
 * results are identical for any number of workers.
 *
 * Planning, per epoch e:
 *  1. order = the sample indices shuffled with Philox(seed, e) (or manifest order when shuffle is off);
 *  2. the order is cut into windows of `bucket_window` samples; each window is sorted by planned frames, so
 *     similar lengths meet (length bucketing) while the shuffle still mixes the epoch;
 *  3. each sorted window is cut greedily into batches with B * max_frames <= max_frames_in_batch (padded
 *     frames, what memory pays for) and B <= batch_size (when > 0);
 *  4. the batches are shuffled (seed, e) so that lengths do not come in sorted runs;
 *  5. equal batches per rank: while the count is not a multiple of world_size, the batch with the most samples
 *     (>= 2) is split in two halves — every sample still appears exactly once and the cap still holds. Only
 *     when no batch can be split (fewer samples than ranks) are batches repeated from the epoch's start, the
 *     single case in which a sample is seen twice in an epoch. Nothing is ever dropped.
 * Planned frames come from the manifest's `duration` (plus 10 ms slack); a decoded sample with more frames than
 * planned is an error naming the manifest line (its duration is wrong), so the cap is a guarantee. A sample
 * longer than max_frames_in_batch on its own is an error at open time. */
#ifndef VOX_DATA_LOADER_H
#define VOX_DATA_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "audio/features.h"
#include "core/status.h"
#include "data/manifest.h"

typedef enum vox_loader_features {
  VOX_LOADER_WHISPER_MEL = 0, /* vox_features_whisper_mel, n_mels bins, 100 frames/s */
  VOX_LOADER_FBANK_LFR        /* Kaldi fbank (+ LFR m/n) (+ CMVN), FunASR/SenseVoice input */
} vox_loader_features;

typedef struct vox_loader_opts {
  int sample_rate;              /* 16000 */
  vox_loader_features features; /* VOX_LOADER_WHISPER_MEL */
  int n_mels;                   /* 80 (Whisper 80/128; fbank bins) */
  int lfr_m, lfr_n;             /* fbank only: 1, 1 = no stacking; SenseVoice uses 7, 6 */
  const char *cmvn_path;        /* fbank only: FunASR am.mvn applied after LFR; NULL = none */
  bool specaugment;             /* apply SpecAugment with `specaug` (training) */
  vox_specaugment_opts specaug;
  int64_t max_frames_in_batch;  /* cap on B * T (padded feature frames); required > 0 */
  int batch_size;               /* cap on B; 0 = no cap */
  int bucket_window;            /* samples sorted together for bucketing; 0 = 100 * typical batch */
  bool shuffle;                 /* true */
  double fraction;              /* use a seeded subset of this share of the samples (0 or 1: all) */
  uint64_t seed;
  int rank, world_size;         /* 0, 1 */
  int num_workers;              /* decoding threads; 0 = decode on the calling thread */
  int prefetch;                 /* batches made ahead of the consumer; 0 = 2 * num_workers */
} vox_loader_opts;

vox_loader_opts vox_loader_opts_default(void);

/* Where the loader stands: the next batch next() returns is batch `batch` (0-based, counted on this rank) of
 * epoch `epoch`. Two integers, so a checkpoint stores it as-is (/state/loader). */
typedef struct vox_loader_pos {
  int64_t epoch;
  int64_t batch;
} vox_loader_pos;

typedef struct vox_batch {
  int64_t epoch, index; /* which batch of which epoch (index counted on this rank) */
  int64_t B, T;         /* samples, padded frames */
  int bins;
  float *feats;         /* [B, T, bins] row-major, zero beyond each sample's length */
  int64_t *lengths;     /* [B] valid frames */
  int64_t *indices;     /* [B] sample indices in the manifest */
  const vox_sample **samples; /* [B] borrowed from the loader's manifest (valid while the loader lives) */
  const char **keys;    /* [B] borrowed */
  const char **texts;   /* [B] borrowed; NULL where a sample has no text */
} vox_batch;

typedef struct vox_loader vox_loader;

/* Loads and validates `manifest_path` (every bad line reported) and plans. Samples without audio (task
 * "text") are rejected: this loader feeds audio models. */
vox_status vox_loader_open(const char *manifest_path, const vox_loader_opts *opts, vox_loader **out);
void vox_loader_free(vox_loader *L);

/* The loader's manifest (borrowed). */
const vox_manifest *vox_loader_manifest(const vox_loader *L);
/* Number of batches this rank gets in `epoch` (the same on every rank). */
int64_t vox_loader_num_batches(vox_loader *L, int64_t epoch);

/* Hands out the next batch (caller frees it with vox_batch_free). At the end of an epoch sets *out = NULL and
 * returns VOX_OK; the next call starts the following epoch. A sample that cannot be read or featurised fails
 * the call with an error naming the manifest file:line and the audio path; the loader stays at that batch. */
vox_status vox_loader_next(vox_loader *L, vox_batch **out);

/* The position of the batch the next call to vox_loader_next returns. */
vox_loader_pos vox_loader_position(const vox_loader *L);
/* Moves to `pos` (e.g. restored from a checkpoint); the following batches equal those an uninterrupted run
 * would have produced from there. batch may equal num_batches (the epoch's end). */
vox_status vox_loader_seek(vox_loader *L, vox_loader_pos pos);

/* Plan inspection without decoding (tests, tools): the manifest indices of batch `index` on this rank. The
 * returned array is malloc()ed; caller free()s. */
vox_status vox_loader_plan_batch(vox_loader *L, int64_t epoch, int64_t index, int64_t **indices, int64_t *count);

/* Planned feature frames of a sample of `seconds` under these options (the bucketing length). */
int64_t vox_loader_planned_frames(const vox_loader_opts *opts, double seconds);

void vox_batch_free(vox_batch *b);

#endif
