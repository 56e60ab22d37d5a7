/* JSONL training manifests: one sample a line (key, task, audio path, duration, text, ChatML messages, ...),
 * parsed with cJSON and validated so that every bad line is reported with file:line, not only the first.
 *
 * Format (one JSON object per line; blank lines are allowed and skipped; line numbers count them):
 *   key            string   unique within the manifest                           (required)
 *   task           string   asr | tts | s2t_chat | s2s_chat | duplex | text      (required)
 *   audio          string   path relative to the manifest's folder unless absolute (required unless task=text)
 *   duration       number   seconds of `audio`, >= 0                              (required with audio)
 *   text           string   transcript (asr), text to speak (tts), text (text)   (required for asr, tts, text)
 *   messages       array    ChatML: [{"role": "system|user|assistant", "content": "..."}, ...]
 *                                                                                 (required for *_chat)
 *   instruction    string   TTS instruction ("speak slowly with a Scottish accent")      (optional)
 *   speech_tokens  string   path of the target speech-token file                          (optional)
 *   speaker        string   speaker identity                                              (optional)
 * Any other field is kept verbatim (vox_sample.extra_json); string fields whose names end in "_audio" or
 * "_file" (e.g. "answer_audio", "labels_file") are paths too (relative to the manifest's folder unless
 * absolute) and are checked like `audio` when files are checked. */
#ifndef VOX_DATA_MANIFEST_H
#define VOX_DATA_MANIFEST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

typedef struct vox_sample {
  char *key;
  char *task;
  char *audio;         /* resolved path (manifest folder joined unless absolute); NULL when absent */
  double duration;     /* seconds; -1 when absent */
  char *text;          /* NULL when absent */
  char *instruction;   /* NULL when absent */
  char *speech_tokens; /* resolved path; NULL when absent */
  char *speaker;       /* NULL when absent */
  char *messages_json; /* the ChatML messages array as compact JSON; NULL when absent */
  char *extra_json;    /* every other field as a compact JSON object ("{}" when none) */
  int line;            /* 1-based line of the manifest this sample came from */
} vox_sample;

typedef struct vox_manifest {
  char *path; /* the manifest file as given */
  char *dir;  /* its folder, against which relative paths resolve */
  vox_sample *samples;
  int64_t n;
} vox_manifest;

/* One problem found by the validator. */
typedef struct vox_manifest_issue {
  int line;      /* 1-based; 0 for whole-file problems (unreadable file) */
  char *message; /* "missing required key 'text' for task 'asr'" (without the file:line prefix) */
} vox_manifest_issue;

#define VOX_MANIFEST_MAX_TASKS 16

typedef struct vox_manifest_report {
  char *path;
  int64_t n_lines;         /* non-blank lines */
  int64_t n_good, n_bad;   /* lines that parsed and validated / did not */
  int64_t n_missing_files; /* referenced files that do not exist (only when files were checked) */
  double total_seconds;    /* sum of `duration` over good lines */
  int n_tasks;
  char *task_names[VOX_MANIFEST_MAX_TASKS];
  int64_t task_counts[VOX_MANIFEST_MAX_TASKS];
  double task_seconds[VOX_MANIFEST_MAX_TASKS];
  vox_manifest_issue *issues; /* every problem, in line order */
  int64_t n_issues;
} vox_manifest_report;

/* Reads and validates every line of `path`. Always fills *out (when the file cannot be opened, the report
 * holds one issue at line 0) and returns VOX_OK unless memory runs out; the caller inspects n_issues.
 * check_files: also report `audio`, `speech_tokens`, "*_audio" and "*_file" paths that do not exist. */
vox_status vox_manifest_validate(const char *path, bool check_files, vox_manifest_report **out);
void vox_manifest_report_free(vox_manifest_report *r);

/* Loads a manifest for training. Fails with VOX_ERR_PARSE when any line is bad; the error message lists
 * every bad line as "path:line: what" (up to 20, then a count). Files are not checked here: the loader
 * reports a missing or corrupt audio file with its file:line when it reads it. */
vox_status vox_manifest_load(const char *path, vox_manifest **out);
void vox_manifest_free(vox_manifest *m);

/* Parses one line; on failure returns VOX_ERR_PARSE with the problem in vox_last_error() (no prefix).
 * `dir` resolves relative paths. Exposed for tools that stream manifests. */
vox_status vox_sample_parse(const char *json_line, const char *dir, int line, vox_sample *out);
void vox_sample_clear(vox_sample *s);

/* Joins dir and a manifest-relative path (absolute paths are returned as they are); caller free()s. */
char *vox_manifest_resolve(const char *dir, const char *rel);

/* The known tasks, NULL-terminated ("asr", "tts", ...). */
extern const char *const vox_manifest_tasks[];

#endif
