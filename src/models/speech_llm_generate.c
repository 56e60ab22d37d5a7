/* Generation with KV caches: a right-padded prefill of the spliced prompts, then one token per row per step.
 * Each row keeps its own RoPE positions (prompt length + step) and an additive mask hides the cache slots between
 * its prompt end and the batch's longest prompt, so a row decodes exactly as it would alone. Greedy for any batch;
 * beam search (HF-style length-normalised hypotheses) for one sample. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "models/seq_util.h"
#include "models/speech_llm_internal.h"

#define MASKED (-1e30f)

/* The LLM's layers over x [B, T, H] with the caches, then the final norm. */
static vox_status run_layers(vox_qwen2 *q, vox_tensor *x, vox_tensor *pos, const vox_attention_mask *mask,
                             vox_kv_cache *caches, vox_tensor **hidden) {
  vox_tensor *h = vox_tensor_retain(x);
  vox_status st = VOX_OK;
  for (int i = 0; i < q->cfg.num_hidden_layers; i++) {
    vox_tensor *next = NULL;
    st = vox_block_forward(&q->layers[i], h, pos, mask, &caches[i], false, NULL, &next);
    vox_tensor_release(h);
    h = next;
    if (st != VOX_OK) return st;
  }
  st = vox_rms_norm_forward(&q->norm, h, hidden);
  vox_tensor_release(h);
  return st;
}

/* logits [n, V] of the hidden rows (host indices) -> host f32 [n * V]. */
static vox_status row_logits(vox_qwen2 *q, vox_tensor *hidden, const int32_t *rows, int n, float *out) {
  vox_tensor *sel = NULL, *lg = NULL;
  vox_status st = vox_seq_gather_rows(hidden, rows, 1, (int64_t[]){n}, &sel);
  if (st == VOX_OK) st = vox_qwen2_logits(q, sel, &lg);
  if (st == VOX_OK) st = vox_tensor_read_f32(lg, out);
  vox_tensor_release(sel);
  vox_tensor_release(lg);
  return st;
}

/* One decode step: tokens [B] at positions pos[b], attention over the cache with `bias` [B, 1, 1, S] (or NULL). */
static vox_status step(vox_qwen2 *q, const int32_t *tokens, const int32_t *pos, int B, const float *bias, int64_t S,
                       vox_kv_cache *caches, float *logits) {
  vox_device dev = q->embed.weight->device;
  vox_tensor *ids = NULL, *e = NULL, *p = NULL, *bt = NULL, *h = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, vox_seq_i32(tokens, 2, (int64_t[]){B, 1}, dev, &ids), done);
  VOX_CHECK_GOTO(st, vox_seq_i32(pos, 2, (int64_t[]){B, 1}, dev, &p), done);
  VOX_CHECK_GOTO(st, vox_qwen2_embed(q, ids, &e), done);
  vox_attention_mask mask = {.causal = true};
  if (bias) {
    VOX_CHECK_GOTO(st, vox_tensor_from_host(VOX_F32, VOX_CPU, 4, (int64_t[]){B, 1, 1, S}, bias, &bt), done);
    if (dev != VOX_CPU) {
      vox_tensor *d = NULL;
      VOX_CHECK_GOTO(st, vox_tensor_to(bt, dev, VOX_F32, &d), done);
      vox_tensor_release(bt);
      bt = d;
    }
    mask.bias = bt;
  }
  VOX_CHECK_GOTO(st, run_layers(q, e, p, &mask, caches, &h), done);
  int32_t *rows = malloc((size_t)B * sizeof *rows);
  if (!rows) {
    st = vox_errorf(VOX_ERR_NOMEM, "generate: out of memory");
    goto done;
  }
  for (int b = 0; b < B; b++) rows[b] = b;
  st = row_logits(q, h, rows, B, logits);
  free(rows);
done:
  vox_tensor_release(ids);
  vox_tensor_release(e);
  vox_tensor_release(p);
  vox_tensor_release(bt);
  vox_tensor_release(h);
  return st;
}

static bool is_eos(const vox_generate_opts *o, int32_t t) {
  for (int i = 0; i < o->n_eos; i++)
    if (o->eos_ids[i] == t) return true;
  return false;
}

static int32_t argmax(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return (int32_t)best;
}

/* Prefill: splice, run the prompts (right-padded, kv_lens) into fresh caches, logits of each row's last token. */
static vox_status prefill(vox_speech_llm *m, const vox_s2t_batch *b, int64_t capacity, vox_kv_cache **caches,
                          int32_t **lens, int64_t *L, float *logits) {
  vox_tensor *audio = NULL, *emb = NULL, *kv = NULL, *h = NULL;
  int32_t *alens = NULL, *rows = NULL;
  vox_status st;
  *caches = NULL;
  *lens = NULL;
  VOX_CHECK_GOTO(st, vox_sllm_batch_audio(m, b, false, NULL, &audio, &alens), done);
  vox_s2t_batch nb = *b;
  nb.labels = NULL;
  VOX_CHECK_GOTO(st, vox_speech_llm_splice(m, &nb, audio, alens, &emb, lens, NULL), done);
  *L = emb->shape[1];
  VOX_CHECK_GOTO(st, vox_qwen2_caches_new(&m->llm, b->B, *L + capacity, caches), done);
  VOX_CHECK_GOTO(st, vox_seq_i32(*lens, 1, (int64_t[]){b->B}, emb->device, &kv), done);
  VOX_CHECK_GOTO(st, vox_qwen2_forward_embeds(&m->llm, emb, NULL, kv, *caches, false, NULL, &h), done);
  rows = malloc((size_t)b->B * sizeof *rows);
  if (!rows) {
    st = vox_errorf(VOX_ERR_NOMEM, "generate: out of memory");
    goto done;
  }
  for (int i = 0; i < b->B; i++) rows[i] = (int32_t)(i * *L + (*lens)[i] - 1);
  st = row_logits(&m->llm, h, rows, b->B, logits);
done:
  vox_tensor_release(audio);
  vox_tensor_release(emb);
  vox_tensor_release(kv);
  vox_tensor_release(h);
  free(alens);
  free(rows);
  if (st != VOX_OK) {
    vox_qwen2_caches_free(&m->llm, *caches);
    *caches = NULL;
    free(*lens);
    *lens = NULL;
  }
  return st;
}

static vox_status greedy(vox_speech_llm *m, const vox_s2t_batch *b, const vox_generate_opts *o, int32_t **out,
                         int32_t *out_lens) {
  int B = b->B, maxn = o->max_new_tokens;
  int64_t V = m->cfg.llm.vocab_size, L = 0;
  vox_kv_cache *caches = NULL;
  int32_t *lens = NULL, *tok = malloc((size_t)B * sizeof *tok), *pos = malloc((size_t)B * sizeof *pos);
  float *logits = malloc((size_t)(B * V) * sizeof *logits), *bias = NULL;
  bool *done_row = calloc((size_t)B, sizeof *done_row);
  vox_status st = VOX_OK;
  if (!tok || !pos || !logits || !done_row) {
    st = vox_errorf(VOX_ERR_NOMEM, "generate: out of memory");
    goto done;
  }
  VOX_CHECK_GOTO(st, prefill(m, b, maxn, &caches, &lens, &L, logits), done);
  bias = malloc((size_t)(B * (L + maxn)) * sizeof *bias);
  if (!bias) {
    st = vox_errorf(VOX_ERR_NOMEM, "generate: out of memory");
    goto done;
  }
  bool ragged = false;
  for (int i = 0; i < B; i++) ragged |= lens[i] != L;
  for (int s = 0; s < maxn; s++) {
    int alive = 0;
    for (int i = 0; i < B; i++) {
      if (done_row[i]) {
        tok[i] = 0; /* any id: the row's output is final, its step results are ignored */
        continue;
      }
      tok[i] = argmax(logits + i * V, V);
      if (is_eos(o, tok[i])) {
        done_row[i] = true;
        continue;
      }
      out[i][out_lens[i]++] = tok[i];
      alive++;
    }
    if (!alive || s + 1 == maxn) break;
    int64_t S = L + s + 1; /* keys after this step: the prefill's L, s earlier steps, this one */
    for (int i = 0; i < B; i++) {
      pos[i] = lens[i] + s;
      for (int64_t j = 0; j < S; j++) bias[i * S + j] = j >= lens[i] && j < L ? MASKED : 0.0f;
    }
    VOX_CHECK_GOTO(st, step(&m->llm, tok, pos, B, ragged ? bias : NULL, S, caches, logits), done);
  }
done:
  vox_qwen2_caches_free(&m->llm, caches);
  free(lens);
  free(tok);
  free(pos);
  free(logits);
  free(bias);
  free(done_row);
  return st;
}

/* ---- beam search (B == 1) ---------------------------------------------------------------------------------- */

typedef struct hyp {
  int32_t *toks;
  int len;
  double score; /* normalised */
} hyp;

static void log_softmax_row(float *x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += exp((double)x[i] - mx);
  float lse = mx + (float)log(s);
  for (int64_t i = 0; i < n; i++) x[i] -= lse;
}

/* caches' rows reordered: new row i = old row parent[i]. */
static vox_status reorder_caches(vox_qwen2 *q, vox_kv_cache *caches, const int *parent, int k) {
  for (int l = 0; l < q->cfg.num_hidden_layers; l++) {
    vox_tensor *pair[2] = {caches[l].k, caches[l].v};
    for (int w = 0; w < 2; w++) {
      vox_tensor *old = NULL;
      VOX_TRY(vox_tensor_clone(pair[w], &old));
      vox_status st = VOX_OK;
      for (int i = 0; i < k && st == VOX_OK; i++) {
        vox_tensor *dst = NULL, *src = NULL;
        st = vox_tensor_view_slice(pair[w], 0, i, i + 1, 1, &dst);
        if (st == VOX_OK) st = vox_tensor_view_slice(old, 0, parent[i], parent[i] + 1, 1, &src);
        if (st == VOX_OK) st = vox_tensor_copy_(dst, src);
        vox_tensor_release(dst);
        vox_tensor_release(src);
      }
      vox_tensor_release(old);
      VOX_TRY(st);
    }
  }
  return VOX_OK;
}

typedef struct cand {
  double score;
  int beam;
  int32_t tok;
} cand;

static int cand_cmp(const void *a, const void *b) {
  double x = ((const cand *)a)->score, y = ((const cand *)b)->score;
  return x < y ? 1 : x > y ? -1 : 0;
}

static vox_status beam(vox_speech_llm *m, const vox_s2t_batch *b, const vox_generate_opts *o, int32_t **out,
                       int32_t *out_lens) {
  int k = o->beam_size, maxn = o->max_new_tokens;
  double lp = o->length_penalty;
  int64_t V = m->cfg.llm.vocab_size, L = 0;
  vox_kv_cache *c1 = NULL, *caches = NULL;
  int32_t *lens = NULL;
  float *logits = malloc((size_t)(k * V) * sizeof *logits);
  int32_t *seqs = calloc((size_t)(k * maxn), sizeof *seqs), *nseqs = calloc((size_t)(k * maxn), sizeof *nseqs);
  double *scores = calloc((size_t)k, sizeof *scores);
  int *parent = calloc((size_t)k, sizeof *parent);
  int32_t *tok = calloc((size_t)k, sizeof *tok), *pos = calloc((size_t)k, sizeof *pos);
  cand *cands = malloc((size_t)(k * 2 * k) * sizeof *cands);
  hyp *fin = calloc((size_t)k, sizeof *fin);
  int n_fin = 0;
  vox_status st = VOX_OK;
  if (!logits || !seqs || !nseqs || !scores || !parent || !tok || !pos || !cands || !fin) {
    st = vox_errorf(VOX_ERR_NOMEM, "generate: out of memory");
    goto done;
  }
  VOX_CHECK_GOTO(st, prefill(m, b, maxn, &c1, &lens, &L, logits), done);
  /* k copies of the one prompt's cache. */
  VOX_CHECK_GOTO(st, vox_qwen2_caches_new(&m->llm, k, L + maxn, &caches), done);
  for (int l = 0; l < m->cfg.llm.num_hidden_layers; l++) {
    for (int i = 0; i < k; i++) {
      vox_tensor *pair[2][2] = {{caches[l].k, c1[l].k}, {caches[l].v, c1[l].v}};
      for (int w = 0; w < 2; w++) {
        vox_tensor *dst = NULL;
        st = vox_tensor_view_slice(pair[w][0], 0, i, i + 1, 1, &dst);
        if (st == VOX_OK) st = vox_tensor_copy_(dst, pair[w][1]);
        vox_tensor_release(dst);
        if (st != VOX_OK) goto done;
      }
    }
    caches[l].len = c1[l].len;
  }
  log_softmax_row(logits, V);
  for (int i = 1; i < k; i++) memcpy(logits + i * V, logits, (size_t)V * sizeof *logits);
  for (int i = 1; i < k; i++) scores[i] = -INFINITY; /* the k beams start as one */
  for (int s = 0; s < maxn; s++) {
    /* Top 2k candidates over all beams (2k so that eos picks still leave k to continue, as HF does). */
    int nc = 0;
    for (int i = 0; i < k; i++) {
      if (scores[i] == -INFINITY) continue;
      for (int64_t v = 0; v < V; v++) {
        double sc = scores[i] + logits[i * V + v];
        if (nc < 2 * k) {
          cands[nc++] = (cand){sc, i, (int32_t)v};
          qsort(cands, (size_t)nc, sizeof *cands, cand_cmp);
        } else if (sc > cands[nc - 1].score) {
          cands[nc - 1] = (cand){sc, i, (int32_t)v};
          qsort(cands, (size_t)nc, sizeof *cands, cand_cmp);
        }
      }
    }
    int nb = 0;
    double new_scores[64];
    for (int c = 0; c < nc && nb < k; c++) {
      if (is_eos(o, cands[c].tok)) {
        double norm = cands[c].score / pow((double)(s + 1), lp);
        if (n_fin < k || norm > fin[n_fin - 1].score) {
          int slot = n_fin < k ? n_fin++ : n_fin - 1;
          free(fin[slot].toks);
          fin[slot].toks = malloc((size_t)(s + 1) * sizeof(int32_t));
          if (!fin[slot].toks) {
            st = vox_errorf(VOX_ERR_NOMEM, "generate: out of memory");
            goto done;
          }
          memcpy(fin[slot].toks, seqs + (int64_t)cands[c].beam * maxn, (size_t)s * sizeof(int32_t));
          fin[slot].len = s;
          fin[slot].score = norm;
          for (int a = slot; a > 0 && fin[a].score > fin[a - 1].score; a--) {
            hyp t = fin[a];
            fin[a] = fin[a - 1];
            fin[a - 1] = t;
          }
        }
        continue;
      }
      parent[nb] = cands[c].beam;
      tok[nb] = cands[c].tok;
      new_scores[nb] = cands[c].score;
      memcpy(nseqs + (int64_t)nb * maxn, seqs + (int64_t)cands[c].beam * maxn, (size_t)s * sizeof(int32_t));
      nseqs[(int64_t)nb * maxn + s] = cands[c].tok;
      nb++;
    }
    for (int i = nb; i < k; i++) {
      parent[i] = parent[0];
      tok[i] = tok[0];
      new_scores[i] = -INFINITY;
    }
    memcpy(seqs, nseqs, (size_t)(k * maxn) * sizeof *seqs);
    for (int i = 0; i < k; i++) scores[i] = new_scores[i];
    /* Done when k hypotheses are finished and no running beam can beat the worst (HF early_stopping=False). */
    if (n_fin == k && (nb == 0 || scores[0] / pow((double)(s + 1), lp) <= fin[k - 1].score)) break;
    if (s + 1 == maxn) {
      for (int i = 0; i < nb; i++) {
        double norm = scores[i] / pow((double)(s + 1), lp);
        if (n_fin < k || norm > fin[n_fin - 1].score) {
          int slot = n_fin < k ? n_fin++ : n_fin - 1;
          free(fin[slot].toks);
          fin[slot].toks = malloc((size_t)(s + 1) * sizeof(int32_t));
          if (!fin[slot].toks) {
            st = vox_errorf(VOX_ERR_NOMEM, "generate: out of memory");
            goto done;
          }
          memcpy(fin[slot].toks, seqs + (int64_t)i * maxn, (size_t)(s + 1) * sizeof(int32_t));
          fin[slot].len = s + 1;
          fin[slot].score = norm;
          for (int a = slot; a > 0 && fin[a].score > fin[a - 1].score; a--) {
            hyp t = fin[a];
            fin[a] = fin[a - 1];
            fin[a - 1] = t;
          }
        }
      }
      break;
    }
    VOX_CHECK_GOTO(st, reorder_caches(&m->llm, caches, parent, k), done);
    for (int i = 0; i < k; i++) pos[i] = (int32_t)(L + s);
    VOX_CHECK_GOTO(st, step(&m->llm, tok, pos, k, NULL, 0, caches, logits), done);
    for (int i = 0; i < k; i++) log_softmax_row(logits + i * V, V);
  }
  if (n_fin > 0) {
    memcpy(out[0], fin[0].toks, (size_t)fin[0].len * sizeof(int32_t));
    out_lens[0] = fin[0].len;
  }
done:
  vox_qwen2_caches_free(&m->llm, c1);
  vox_qwen2_caches_free(&m->llm, caches);
  free(lens);
  free(logits);
  free(seqs);
  free(nseqs);
  free(scores);
  free(parent);
  free(tok);
  free(pos);
  free(cands);
  if (fin)
    for (int i = 0; i < k; i++) free(fin[i].toks);
  free(fin);
  return st;
}

vox_status vox_speech_llm_generate(vox_speech_llm *m, const vox_s2t_batch *b, const vox_generate_opts *o,
                                   int32_t ***out_ids, int32_t **out_lens) {
  *out_ids = NULL;
  *out_lens = NULL;
  if (!m->cfg.has_llm) return vox_errorf(VOX_ERR_STATE, "generate: the model has no llm");
  if (b->B <= 0 || o->max_new_tokens <= 0)
    return vox_errorf(VOX_ERR_INVALID, "generate: batch %d and max_new_tokens %d must be positive", b->B,
                      o->max_new_tokens);
  if (o->beam_size > 1 && b->B != 1)
    return vox_errorf(VOX_ERR_UNSUPPORTED, "generate: beam search takes one sample (got %d)", b->B);
  if (o->beam_size > 64) return vox_errorf(VOX_ERR_INVALID, "generate: beam_size %d > 64", o->beam_size);
  int32_t **ids = calloc((size_t)b->B, sizeof *ids);
  int32_t *lens = calloc((size_t)b->B, sizeof *lens);
  vox_status st = VOX_OK;
  if (!ids || !lens) st = vox_errorf(VOX_ERR_NOMEM, "generate: out of memory");
  for (int i = 0; st == VOX_OK && i < b->B; i++)
    if (!(ids[i] = calloc((size_t)o->max_new_tokens, sizeof **ids))) st = vox_errorf(VOX_ERR_NOMEM, "generate: oom");
  if (st == VOX_OK) {
    vox_no_grad_begin();
    st = o->beam_size > 1 ? beam(m, b, o, ids, lens) : greedy(m, b, o, ids, lens);
    vox_no_grad_end();
  }
  if (st != VOX_OK) {
    for (int i = 0; ids && i < b->B; i++) free(ids[i]);
    free(ids);
    free(lens);
    return vox_error_context(st, "generate: ");
  }
  *out_ids = ids;
  *out_lens = lens;
  return VOX_OK;
}
