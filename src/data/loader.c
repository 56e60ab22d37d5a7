/* The data loader: per-epoch plan (shuffle, length buckets, frame-capped batches, rank balancing) and the
 * worker threads that decode and featurise batches ahead of the consumer, handed out strictly in order. */
#include "data/loader.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audio.h"
#include "core/rng.h"

vox_loader_opts vox_loader_opts_default(void) {
  return (vox_loader_opts){
      .sample_rate = 16000,
      .features = VOX_LOADER_WHISPER_MEL,
      .n_mels = 80,
      .lfr_m = 1,
      .lfr_n = 1,
      .specaug = {.n_freq_masks = 2, .max_freq_width = 27, .n_time_masks = 2, .max_time_width = 40,
                  .max_time_ratio = 0.05f},
      .max_frames_in_batch = 0,
      .shuffle = true,
      .world_size = 1,
  };
}

/* ---- the epoch plan ---------------------------------------------------------------------------------- */
typedef struct span {
  int64_t start, len; /* into plan.order */
} span;

typedef struct plan {
  int64_t epoch; /* -1: none */
  int64_t *order;
  span *batches;
  int64_t n_batches; /* all ranks; a multiple of world_size */
} plan;

typedef struct slot {
  int64_t index; /* batch (rank-local) held; -1 empty */
  bool done;
  vox_status st;
  char *err;
  vox_batch *b;
} slot;

struct vox_loader {
  vox_manifest *man;
  vox_loader_opts o;
  vox_cmvn *cmvn;
  int64_t *planned; /* planned frames per sample */
  int64_t *active;  /* the samples in use when opts.fraction < 1 (ascending manifest indices), else NULL */
  int64_t n_active; /* how many samples the epochs cover */
  int bins;
  plan run;   /* the epoch workers are making (changed only while no worker runs) */
  plan query; /* for vox_loader_plan_batch / num_batches on other epochs */
  vox_loader_pos pos;
  /* workers */
  bool running;
  pthread_t *threads;
  int n_threads;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  int64_t next_make, n_local; /* next rank-local batch to start; batches on this rank this epoch */
  slot *slots;
  int n_slots;
};

static uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c) { return splitmix(splitmix(splitmix(a) ^ b) ^ c); }

int64_t vox_loader_planned_frames(const vox_loader_opts *o, double seconds) {
  /* 10 ms of slack absorbs durations rounded in the manifest and the resampler's rounding. */
  int64_t n = (int64_t)ceil(seconds * o->sample_rate) + o->sample_rate / 100;
  int64_t f;
  if (o->features == VOX_LOADER_WHISPER_MEL) {
    f = n / VOX_WHISPER_HOP;
  } else {
    int64_t len = (int64_t)(o->sample_rate * 0.025), shift = (int64_t)(o->sample_rate * 0.010);
    f = n < len ? 0 : 1 + (n - len) / shift;
    int ln = o->lfr_n > 0 ? o->lfr_n : 1;
    f = (f + ln - 1) / ln;
  }
  return f < 1 ? 1 : f;
}

static void plan_clear(plan *p) {
  free(p->order);
  free(p->batches);
  memset(p, 0, sizeof *p);
  p->epoch = -1;
}

typedef struct sort_item {
  int64_t frames, pos, idx;
} sort_item;
static int cmp_item(const void *a, const void *b) {
  const sort_item *x = a, *y = b;
  if (x->frames != y->frames) return x->frames < y->frames ? -1 : 1;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static vox_status plan_build(const vox_loader *L, int64_t epoch, plan *p) {
  plan_clear(p);
  const int64_t n = L->n_active;
  const vox_loader_opts *o = &L->o;
  p->order = malloc((size_t)n * sizeof *p->order);
  sort_item *items = malloc((size_t)n * sizeof *items);
  /* at most n batches, plus room for padding up to world_size */
  p->batches = malloc((size_t)(n + o->world_size) * sizeof *p->batches);
  if (!p->order || !items || !p->batches) {
    free(items);
    plan_clear(p);
    return vox_errorf(VOX_ERR_NOMEM, "loader: out of memory planning epoch %lld", (long long)epoch);
  }
  vox_rng rng = vox_rng_make(mix3(o->seed, (uint64_t)epoch, 0x706c616eull));
  for (int64_t i = 0; i < n; i++) p->order[i] = L->active ? L->active[i] : i;
  if (o->shuffle)
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = (int64_t)(vox_rng_next_u64(&rng) % (uint64_t)(i + 1));
      int64_t t = p->order[i];
      p->order[i] = p->order[j];
      p->order[j] = t;
    }
  int64_t win = o->bucket_window;
  if (win <= 0) win = 100 * (o->batch_size > 0 ? o->batch_size : 32);
  int64_t nb = 0;
  const int64_t cap = o->max_frames_in_batch;
  for (int64_t w0 = 0; w0 < n; w0 += win) {
    int64_t w1 = w0 + win < n ? w0 + win : n;
    for (int64_t i = w0; i < w1; i++)
      items[i] = (sort_item){.frames = L->planned[p->order[i]], .pos = i, .idx = p->order[i]};
    qsort(items + w0, (size_t)(w1 - w0), sizeof *items, cmp_item);
    for (int64_t i = w0; i < w1; i++) p->order[i] = items[i].idx;
    int64_t start = w0, maxf = 0;
    for (int64_t i = w0; i < w1; i++) {
      int64_t f = items[i].frames, cnt = i - start;
      int64_t newmax = f > maxf ? f : maxf;
      if (cnt > 0 && ((cnt + 1) * newmax > cap || (o->batch_size > 0 && cnt + 1 > o->batch_size))) {
        p->batches[nb++] = (span){start, cnt};
        start = i;
        newmax = f;
      }
      maxf = newmax;
    }
    if (w1 > start) p->batches[nb++] = (span){start, w1 - start};
  }
  free(items);
  for (int64_t i = nb - 1; o->shuffle && i > 0; i--) {
    int64_t j = (int64_t)(vox_rng_next_u64(&rng) % (uint64_t)(i + 1));
    span t = p->batches[i];
    p->batches[i] = p->batches[j];
    p->batches[j] = t;
  }
  /* Balance: split the largest batch until every rank gets the same count; repeat only if nothing splits. */
  const int64_t W = o->world_size;
  while (nb % W) {
    int64_t best = -1;
    for (int64_t i = 0; i < nb; i++)
      if (p->batches[i].len >= 2 && (best < 0 || p->batches[i].len > p->batches[best].len)) best = i;
    if (best < 0) break;
    span s = p->batches[best];
    memmove(&p->batches[best + 2], &p->batches[best + 1], (size_t)(nb - best - 1) * sizeof(span));
    p->batches[best] = (span){s.start, s.len / 2};
    p->batches[best + 1] = (span){s.start + s.len / 2, s.len - s.len / 2};
    nb++;
  }
  for (int64_t k = 0; nb % W; k++) p->batches[nb++] = p->batches[k];
  p->n_batches = nb;
  p->epoch = epoch;
  return VOX_OK;
}

static vox_status plan_for(vox_loader *L, int64_t epoch, const plan **out) {
  if (L->run.epoch == epoch) {
    *out = &L->run;
    return VOX_OK;
  }
  if (L->query.epoch != epoch) VOX_TRY(plan_build(L, epoch, &L->query));
  *out = &L->query;
  return VOX_OK;
}

int64_t vox_loader_num_batches(vox_loader *L, int64_t epoch) {
  const plan *p;
  if (plan_for(L, epoch, &p) != VOX_OK) return -1;
  return p->n_batches / L->o.world_size;
}

static const span *local_batch(const vox_loader *L, const plan *p, int64_t index) {
  return &p->batches[L->o.rank + index * L->o.world_size];
}

vox_status vox_loader_plan_batch(vox_loader *L, int64_t epoch, int64_t index, int64_t **indices, int64_t *count) {
  const plan *p;
  VOX_TRY(plan_for(L, epoch, &p));
  int64_t nl = p->n_batches / L->o.world_size;
  if (index < 0 || index >= nl)
    return vox_errorf(VOX_ERR_INDEX, "loader: batch %lld of epoch %lld out of range [0, %lld)", (long long)index,
                      (long long)epoch, (long long)nl);
  const span *s = local_batch(L, p, index);
  *indices = malloc((size_t)s->len * sizeof **indices);
  if (!*indices) return vox_errorf(VOX_ERR_NOMEM, "loader: out of memory");
  memcpy(*indices, p->order + s->start, (size_t)s->len * sizeof **indices);
  *count = s->len;
  return VOX_OK;
}

/* ---- making one batch --------------------------------------------------------------------------------- */
void vox_batch_free(vox_batch *b) {
  if (!b) return;
  free(b->feats);
  free(b->lengths);
  free(b->indices);
  free(b->samples);
  free(b->keys);
  free(b->texts);
  free(b);
}

/* Decodes and featurises sample `idx`; errors carry the manifest file:line. */
static vox_status featurize(const vox_loader *L, int64_t epoch, int64_t idx, float **feats, int64_t *frames) {
  const vox_sample *s = &L->man->samples[idx];
  const vox_loader_opts *o = &L->o;
  float *x = NULL, *f = NULL;
  int64_t n = 0, nf = 0;
  int bins = 0;
  vox_status st = vox_audio_load(s->audio, o->sample_rate, &x, &n);
  if (st == VOX_OK) {
    if (o->features == VOX_LOADER_WHISPER_MEL) {
      st = vox_features_whisper_mel(x, n, o->n_mels, &f, &nf);
    } else {
      vox_fbank_opts fo = vox_fbank_opts_default();
      fo.sample_rate = o->sample_rate;
      fo.n_mels = o->n_mels;
      st = vox_features_fbank(x, n, &fo, &f, &nf, &bins);
      if (st == VOX_OK && nf > 0 && (o->lfr_m > 1 || o->lfr_n > 1)) {
        float *g = NULL;
        int64_t ng = 0;
        st = vox_features_lfr(f, nf, bins, o->lfr_m, o->lfr_n, &g, &ng);
        free(f);
        f = g;
        nf = ng;
      }
      if (st == VOX_OK && nf > 0 && L->cmvn) st = vox_cmvn_apply(L->cmvn, f, nf, L->bins);
    }
  }
  free(x);
  if (st == VOX_OK && nf <= 0)
    st = vox_errorf(VOX_ERR_INVALID, "audio '%s' is too short for features (%lld samples)", s->audio, (long long)n);
  if (st == VOX_OK && nf > L->planned[idx])
    st = vox_errorf(VOX_ERR_INVALID,
                    "audio '%s' gives %lld frames but its duration %.3f s allows at most %lld: the manifest's "
                    "duration is wrong",
                    s->audio, (long long)nf, s->duration, (long long)L->planned[idx]);
  if (st == VOX_OK && o->specaugment) {
    vox_rng rng = vox_rng_make(mix3(o->seed, (uint64_t)epoch, 0x5ec0000000000000ull + (uint64_t)idx));
    st = vox_specaugment(f, nf, L->bins, &o->specaug, &rng);
  }
  if (st != VOX_OK) {
    free(f);
    return vox_error_context(st, "%s:%d (key '%s'): ", L->man->path, s->line, s->key);
  }
  *feats = f;
  *frames = nf;
  return VOX_OK;
}

static vox_status make_batch(const vox_loader *L, const plan *p, int64_t index, vox_batch **out) {
  const span *sp = local_batch(L, p, index);
  const int64_t B = sp->len;
  vox_batch *b = calloc(1, sizeof *b);
  float **per = calloc((size_t)B, sizeof *per);
  if (!b || !per) {
    free(b);
    free(per);
    return vox_errorf(VOX_ERR_NOMEM, "loader: out of memory");
  }
  b->epoch = p->epoch;
  b->index = index;
  b->B = B;
  b->bins = L->bins;
  b->lengths = calloc((size_t)B, sizeof *b->lengths);
  b->indices = calloc((size_t)B, sizeof *b->indices);
  b->samples = calloc((size_t)B, sizeof *b->samples);
  b->keys = calloc((size_t)B, sizeof *b->keys);
  b->texts = calloc((size_t)B, sizeof *b->texts);
  vox_status st = VOX_OK;
  if (!b->lengths || !b->indices || !b->samples || !b->keys || !b->texts)
    st = vox_errorf(VOX_ERR_NOMEM, "loader: out of memory");
  for (int64_t i = 0; st == VOX_OK && i < B; i++) {
    int64_t idx = p->order[sp->start + i];
    const vox_sample *s = &L->man->samples[idx];
    b->indices[i] = idx;
    b->samples[i] = s;
    b->keys[i] = s->key;
    b->texts[i] = s->text;
    st = featurize(L, p->epoch, idx, &per[i], &b->lengths[i]);
    if (st == VOX_OK && b->lengths[i] > b->T) b->T = b->lengths[i];
  }
  if (st == VOX_OK) {
    b->feats = calloc((size_t)(B * b->T * b->bins), sizeof(float));
    if (!b->feats) st = vox_errorf(VOX_ERR_NOMEM, "loader: out of memory for a [%lld, %lld, %d] batch", (long long)B,
                                   (long long)b->T, b->bins);
  }
  for (int64_t i = 0; i < B; i++) {
    if (st == VOX_OK)
      memcpy(b->feats + i * b->T * b->bins, per[i], (size_t)(b->lengths[i] * b->bins) * sizeof(float));
    free(per[i]);
  }
  free(per);
  if (st != VOX_OK) {
    vox_batch_free(b);
    return st;
  }
  *out = b;
  return VOX_OK;
}

/* ---- workers ------------------------------------------------------------------------------------------- */
static void *worker_main(void *arg) {
  vox_loader *L = arg;
  pthread_mutex_lock(&L->mu);
  for (;;) {
    /* A batch may start once its slot is free: index < first unconsumed + n_slots. */
    while (!L->stop && (L->next_make >= L->n_local || L->next_make >= L->pos.batch + L->n_slots))
      pthread_cond_wait(&L->cv, &L->mu);
    if (L->stop) break;
    int64_t index = L->next_make++;
    pthread_mutex_unlock(&L->mu);
    vox_batch *b = NULL;
    vox_status st = make_batch(L, &L->run, index, &b);
    char *err = st == VOX_OK ? NULL : strdup(vox_last_error());
    pthread_mutex_lock(&L->mu);
    slot *s = &L->slots[index % L->n_slots];
    s->index = index;
    s->done = true;
    s->st = st;
    s->err = err;
    s->b = b;
    pthread_cond_broadcast(&L->cv);
  }
  pthread_mutex_unlock(&L->mu);
  return NULL;
}

static void slots_clear(vox_loader *L) {
  for (int i = 0; i < L->n_slots; i++) {
    vox_batch_free(L->slots[i].b);
    free(L->slots[i].err);
    L->slots[i] = (slot){.index = -1};
  }
}

static void workers_stop(vox_loader *L) {
  if (!L->running) return;
  pthread_mutex_lock(&L->mu);
  L->stop = true;
  pthread_cond_broadcast(&L->cv);
  pthread_mutex_unlock(&L->mu);
  for (int i = 0; i < L->n_threads; i++) pthread_join(L->threads[i], NULL);
  L->n_threads = 0;
  L->stop = false;
  slots_clear(L);
  L->running = false;
}

/* Plans pos.epoch and starts the workers at pos.batch. */
static vox_status epoch_start(vox_loader *L) {
  workers_stop(L);
  if (L->run.epoch != L->pos.epoch) {
    if (L->query.epoch == L->pos.epoch) { /* reuse: swap the query plan in */
      plan t = L->run;
      L->run = L->query;
      L->query = t;
    } else {
      VOX_TRY(plan_build(L, L->pos.epoch, &L->run));
    }
  }
  L->n_local = L->run.n_batches / L->o.world_size;
  L->next_make = L->pos.batch;
  L->running = true;
  for (int i = 0; i < L->o.num_workers; i++) {
    if (pthread_create(&L->threads[i], NULL, worker_main, L) != 0) {
      workers_stop(L);
      return vox_errorf(VOX_ERR_STATE, "loader: cannot start worker thread %d", i);
    }
    L->n_threads++;
  }
  return VOX_OK;
}

vox_status vox_loader_next(vox_loader *L, vox_batch **out) {
  *out = NULL;
  if (!L->running) VOX_TRY(epoch_start(L));
  if (L->pos.batch >= L->n_local) {
    workers_stop(L);
    L->pos = (vox_loader_pos){L->pos.epoch + 1, 0};
    return VOX_OK;
  }
  const int64_t index = L->pos.batch;
  if (L->o.num_workers == 0) {
    VOX_TRY(make_batch(L, &L->run, index, out));
    L->pos.batch++;
    return VOX_OK;
  }
  pthread_mutex_lock(&L->mu);
  slot *s = &L->slots[index % L->n_slots];
  while (!(s->done && s->index == index)) pthread_cond_wait(&L->cv, &L->mu);
  vox_status st = s->st;
  char *err = s->err;
  vox_batch *b = s->b;
  *s = (slot){.index = -1};
  if (st == VOX_OK) L->pos.batch++;
  pthread_cond_broadcast(&L->cv);
  pthread_mutex_unlock(&L->mu);
  if (st != VOX_OK) {
    /* Stay at this batch: a retry re-decodes it (after the file is fixed) from a clean pipeline. */
    workers_stop(L);
    vox_errorf(st, "%s", err ? err : "loader: worker failed");
    free(err);
    return st;
  }
  *out = b;
  return VOX_OK;
}

vox_loader_pos vox_loader_position(const vox_loader *L) { return L->pos; }

vox_status vox_loader_seek(vox_loader *L, vox_loader_pos pos) {
  if (pos.epoch < 0 || pos.batch < 0)
    return vox_errorf(VOX_ERR_INVALID, "loader seek: negative position (epoch %lld, batch %lld)",
                      (long long)pos.epoch, (long long)pos.batch);
  int64_t nl = vox_loader_num_batches(L, pos.epoch);
  if (nl < 0) return VOX_ERR_NOMEM;
  if (pos.batch > nl)
    return vox_errorf(VOX_ERR_INDEX, "loader seek: batch %lld beyond the %lld batches of epoch %lld",
                      (long long)pos.batch, (long long)nl, (long long)pos.epoch);
  workers_stop(L);
  L->pos = pos;
  return VOX_OK;
}

const vox_manifest *vox_loader_manifest(const vox_loader *L) { return L->man; }

/* ---- open / free ---------------------------------------------------------------------------------------- */
/* opts.fraction < 1: a seeded subset of round(fraction * n) samples (at least one), the same in every epoch and on
 * every rank, kept in manifest order. */
static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}
static vox_status choose_subset(vox_loader *L) {
  const int64_t n = L->man->n;
  L->n_active = n;
  if (L->o.fraction <= 0.0 || L->o.fraction >= 1.0 || n == 0) return VOX_OK;
  int64_t k = (int64_t)(L->o.fraction * (double)n + 0.5);
  if (k < 1) k = 1;
  L->active = malloc((size_t)n * sizeof *L->active);
  if (!L->active) return vox_errorf(VOX_ERR_NOMEM, "loader: out of memory");
  for (int64_t i = 0; i < n; i++) L->active[i] = i;
  vox_rng rng = vox_rng_make(mix3(L->o.seed, 0x73756273ull, (uint64_t)n));
  for (int64_t i = 0; i < k; i++) { /* partial Fisher-Yates: the first k are a uniform sample */
    int64_t j = i + (int64_t)(vox_rng_next_u64(&rng) % (uint64_t)(n - i));
    int64_t t = L->active[i];
    L->active[i] = L->active[j];
    L->active[j] = t;
  }
  qsort(L->active, (size_t)k, sizeof *L->active, cmp_i64);
  L->n_active = k;
  return VOX_OK;
}

vox_status vox_loader_open(const char *manifest_path, const vox_loader_opts *opts, vox_loader **out) {
  *out = NULL;
  vox_loader_opts o = opts ? *opts : vox_loader_opts_default();
  if (o.max_frames_in_batch <= 0)
    return vox_errorf(VOX_ERR_INVALID, "loader: max_frames_in_batch must be > 0 (got %lld)",
                      (long long)o.max_frames_in_batch);
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size)
    return vox_errorf(VOX_ERR_INVALID, "loader: rank %d outside world_size %d", o.rank, o.world_size);
  if (!(o.fraction >= 0.0 && o.fraction <= 1.0))
    return vox_errorf(VOX_ERR_INVALID, "loader: fraction must be in [0, 1] (got %g)", o.fraction);
  if (o.sample_rate <= 0 || o.n_mels <= 0 || o.batch_size < 0 || o.num_workers < 0 || o.lfr_m < 1 || o.lfr_n < 1)
    return vox_errorf(VOX_ERR_INVALID,
                      "loader: invalid options (sample_rate %d, n_mels %d, batch_size %d, num_workers %d, lfr %d/%d)",
                      o.sample_rate, o.n_mels, o.batch_size, o.num_workers, o.lfr_m, o.lfr_n);
  if (o.features == VOX_LOADER_WHISPER_MEL && o.sample_rate != VOX_WHISPER_RATE)
    return vox_errorf(VOX_ERR_INVALID, "loader: Whisper mel needs sample_rate %d, got %d", VOX_WHISPER_RATE,
                      o.sample_rate);
  vox_loader *L = calloc(1, sizeof *L);
  if (!L) return vox_errorf(VOX_ERR_NOMEM, "loader: out of memory");
  L->run.epoch = L->query.epoch = -1;
  pthread_mutex_init(&L->mu, NULL);
  pthread_cond_init(&L->cv, NULL);
  vox_status st = vox_manifest_load(manifest_path, &L->man);
  if (st != VOX_OK) goto fail;
  L->o = o;
  L->bins = o.features == VOX_LOADER_WHISPER_MEL ? o.n_mels : o.n_mels * o.lfr_m;
  if (o.cmvn_path && o.features == VOX_LOADER_FBANK_LFR) {
    VOX_CHECK_GOTO(st, vox_cmvn_load(o.cmvn_path, &L->cmvn), fail);
    if (L->cmvn->dim != L->bins) {
      st = vox_errorf(VOX_ERR_SHAPE, "loader: CMVN %s has dimension %d but features have %d bins", o.cmvn_path,
                      L->cmvn->dim, L->bins);
      goto fail;
    }
  }
  L->planned = malloc((size_t)L->man->n * sizeof *L->planned);
  if (!L->planned) {
    st = vox_errorf(VOX_ERR_NOMEM, "loader: out of memory");
    goto fail;
  }
  for (int64_t i = 0; i < L->man->n; i++) {
    const vox_sample *s = &L->man->samples[i];
    if (!s->audio) {
      st = vox_errorf(VOX_ERR_INVALID, "%s:%d (key '%s'): task '%s' has no audio; the loader feeds audio models",
                      L->man->path, s->line, s->key, s->task);
      goto fail;
    }
    L->planned[i] = vox_loader_planned_frames(&o, s->duration);
    if (L->planned[i] > o.max_frames_in_batch) {
      st = vox_errorf(VOX_ERR_INVALID,
                      "%s:%d (key '%s'): %.2f s is %lld frames, more than max_frames_in_batch %lld on its own",
                      L->man->path, s->line, s->key, s->duration, (long long)L->planned[i],
                      (long long)o.max_frames_in_batch);
      goto fail;
    }
  }
  VOX_CHECK_GOTO(st, choose_subset(L), fail);
  L->n_slots = o.prefetch > 0 ? o.prefetch : 2 * (o.num_workers > 0 ? o.num_workers : 1);
  if (L->n_slots < o.num_workers) L->n_slots = o.num_workers; /* every worker can hold a batch */
  L->slots = calloc((size_t)L->n_slots, sizeof *L->slots);
  L->threads = calloc((size_t)(o.num_workers > 0 ? o.num_workers : 1), sizeof *L->threads);
  if (!L->slots || !L->threads) {
    st = vox_errorf(VOX_ERR_NOMEM, "loader: out of memory");
    goto fail;
  }
  for (int i = 0; i < L->n_slots; i++) L->slots[i].index = -1;
  *out = L;
  return VOX_OK;
fail:
  vox_loader_free(L);
  return st;
}

void vox_loader_free(vox_loader *L) {
  if (!L) return;
  workers_stop(L);
  plan_clear(&L->run);
  plan_clear(&L->query);
  free(L->slots);
  free(L->threads);
  free(L->planned);
  free(L->active);
  vox_cmvn_free(L->cmvn);
  vox_manifest_free(L->man);
  pthread_mutex_destroy(&L->mu);
  pthread_cond_destroy(&L->cv);
  free(L);
}
