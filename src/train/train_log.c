/* The progress line and metrics.jsonl. JSON is written by hand: the records are flat numbers and short strings
 * (escaped), and every record is flushed so that `vox plot` and tail -f see it at once. */
#include "train/train_log.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct vox_train_log {
  FILE *jsonl, *out;
  bool tty, line_open; /* a progress line without its newline is on the terminal */
};

vox_status vox_train_log_open(const char *run_dir, FILE *out, vox_train_log **log) {
  char path[4096];
  snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
  vox_train_log *l = calloc(1, sizeof *l);
  if (!l) return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  l->jsonl = fopen(path, "a");
  if (!l->jsonl) {
    free(l);
    return vox_errorf(VOX_ERR_IO, "%s: cannot open for appending", path);
  }
  l->out = out;
  l->tty = out && isatty(fileno(out));
  *log = l;
  return VOX_OK;
}

static void end_line(vox_train_log *l) {
  if (l->line_open) {
    fputc('\n', l->out);
    l->line_open = false;
  }
}

void vox_train_log_close(vox_train_log *l) {
  if (!l) return;
  if (l->out) end_line(l), fflush(l->out);
  fclose(l->jsonl);
  free(l);
}

static double wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* JSON number: non-finite values become null (JSON has no NaN). */
static void jnum(FILE *f, const char *key, double v) {
  if (isfinite(v))
    fprintf(f, ",\"%s\":%.9g", key, v);
  else
    fprintf(f, ",\"%s\":null", key);
}

static void jstr(FILE *f, const char *key, const char *s) {
  fprintf(f, ",\"%s\":\"", key);
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void head(vox_train_log *l, const char *kind, const char *stage_name, int stage, int64_t step) {
  fprintf(l->jsonl, "{\"event\":\"%s\"", kind);
  fprintf(l->jsonl, ",\"time\":%.3f", wall_time());
  jstr(l->jsonl, "stage_name", stage_name);
  fprintf(l->jsonl, ",\"stage\":%d,\"step\":%lld", stage, (long long)step);
}

static void fmt_eta(char *buf, size_t cap, double s) {
  if (!isfinite(s) || s < 0) snprintf(buf, cap, "?");
  else if (s >= 3600) snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
  else if (s >= 60) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
  else snprintf(buf, cap, "%.0fs", s);
}

void vox_train_log_step_event(vox_train_log *l, const vox_train_log_step *s, bool record) {
  if (record) {
    head(l, "train", s->stage_name, s->stage, s->step);
    jnum(l->jsonl, "loss", s->loss);
    jnum(l->jsonl, "lr", s->lr);
    jnum(l->jsonl, "grad_norm", s->grad_norm);
    jnum(l->jsonl, "tokens_per_s", s->tokens_per_s);
    jnum(l->jsonl, "samples_per_s", s->samples_per_s);
    fprintf(l->jsonl, ",\"tokens\":%lld,\"frames\":%lld,\"samples\":%lld}\n", (long long)s->tokens,
            (long long)s->frames, (long long)s->samples);
    fflush(l->jsonl);
  }
  if (!l->out || (!l->tty && !record)) return;
  char eta[32];
  fmt_eta(eta, sizeof eta, s->eta_s);
  fprintf(l->out, "%s[%s] step %lld/%lld  loss %.4f  lr %.2e  grad-norm %.3f  tokens/s %.0f  ETA %s%s",
          l->tty ? "\r" : "", s->stage_name, (long long)s->step, (long long)s->steps, s->loss, s->lr, s->grad_norm,
          s->tokens_per_s, eta, l->tty ? "\033[K" : "\n");
  l->line_open = l->tty;
  fflush(l->out);
}

void vox_train_log_eval(vox_train_log *l, const char *stage_name, int stage, int64_t step, const vox_task_metrics *m) {
  head(l, "eval", stage_name, stage, step);
  for (int i = 0; i < m->n; i++) jnum(l->jsonl, m->name[i], m->value[i]);
  fputs("}\n", l->jsonl);
  fflush(l->jsonl);
  if (!l->out) return;
  end_line(l);
  fprintf(l->out, "[%s] eval at step %lld:", stage_name, (long long)step);
  for (int i = 0; i < m->n; i++) fprintf(l->out, "  %s %.4g", m->name[i], m->value[i]);
  fputc('\n', l->out);
  fflush(l->out);
}

void vox_train_log_event(vox_train_log *l, const char *kind, const char *stage_name, int stage, int64_t step,
                         const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  head(l, kind, stage_name, stage, step);
  jstr(l->jsonl, "message", msg);
  fputs("}\n", l->jsonl);
  fflush(l->jsonl);
  if (!l->out) return;
  end_line(l);
  fprintf(l->out, "[%s] %s\n", stage_name, msg);
  fflush(l->out);
}
