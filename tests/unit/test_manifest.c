/* Manifest parsing and validation: good lines of every task load with resolved paths and kept extras; every
 * kind of bad line is reported with its line number, and all bad lines are reported, not only the first. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/manifest.h"
#include "vox_test.h"

static char tmpdir[256];

static void setup(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vox_test_manifest_XXXXXX");
  cr_assert(mkdtemp(tmpdir));
}
static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  cr_assert(system(cmd) == 0);
}
TestSuite(manifest, .init = setup, .fini = teardown);

static const char *write_file(const char *name, const char *text) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static const char *issue_at(const vox_manifest_report *r, int line) {
  for (int64_t i = 0; i < r->n_issues; i++)
    if (r->issues[i].line == line) return r->issues[i].message;
  return NULL;
}

Test(manifest, loads_every_task_with_paths_and_extras) {
  write_file("a.wav", "x");
  const char *p = write_file(
      "m.jsonl",
      "{\"key\":\"u1\",\"task\":\"asr\",\"audio\":\"a.wav\",\"duration\":1.25,\"text\":\"hello\",\"speaker\":\"s1\","
      "\"lang\":\"en\"}\n"
      "\n"
      "{\"key\":\"u2\",\"task\":\"tts\",\"audio\":\"/abs/b.wav\",\"duration\":2,\"text\":\"hi\","
      "\"instruction\":\"speak slowly\",\"speech_tokens\":\"tok/u2.npy\"}\n"
      "{\"key\":\"u3\",\"task\":\"s2t_chat\",\"audio\":\"a.wav\",\"duration\":0.5,\"messages\":[{\"role\":\"user\","
      "\"content\":\"<|audio|>\"},{\"role\":\"assistant\",\"content\":\"4\"}],\"answer_audio\":\"a.wav\"}\n"
      "{\"key\":\"u4\",\"task\":\"text\",\"text\":\"plain text\"}\n");
  vox_manifest *m = NULL;
  VT_OK(vox_manifest_load(p, &m));
  cr_assert_eq(m->n, 4);
  char expect[600];
  snprintf(expect, sizeof expect, "%s/a.wav", tmpdir);
  cr_assert_str_eq(m->samples[0].audio, expect);
  cr_assert_float_eq(m->samples[0].duration, 1.25, 1e-12);
  cr_assert_str_eq(m->samples[0].speaker, "s1");
  cr_assert_str_eq(m->samples[0].extra_json, "{\"lang\":\"en\"}");
  cr_assert_eq(m->samples[1].line, 3, "blank lines count: got line %d", m->samples[1].line);
  cr_assert_str_eq(m->samples[1].audio, "/abs/b.wav");
  cr_assert_str_eq(m->samples[1].instruction, "speak slowly");
  snprintf(expect, sizeof expect, "%s/tok/u2.npy", tmpdir);
  cr_assert_str_eq(m->samples[1].speech_tokens, expect);
  cr_assert(strstr(m->samples[2].messages_json, "\"assistant\""));
  cr_assert_null(m->samples[3].audio);
  cr_assert_float_eq(m->samples[3].duration, -1.0, 0);
  vox_manifest_free(m);

  vox_manifest_report *r = NULL;
  VT_OK(vox_manifest_validate(p, true, &r)); /* /abs/b.wav and tok/u2.npy are missing */
  cr_assert_eq(r->n_good, 3);
  cr_assert_eq(r->n_bad, 1);
  cr_assert_eq(r->n_missing_files, 2);
  cr_assert(issue_at(r, 3) && strstr(issue_at(r, 3), "/abs/b.wav"), "%s", issue_at(r, 3));
  cr_assert(strstr(issue_at(r, 3), "u2.npy"));
  cr_assert_float_eq(r->total_seconds, 1.25 + 0.5, 1e-9);
  vox_manifest_report_free(r);
  VT_OK(vox_manifest_validate(p, false, &r));
  cr_assert_eq(r->n_issues, 0);
  cr_assert_eq(r->n_tasks, 4);
  vox_manifest_report_free(r);
}

/* Each bad line names what is wrong; all of them are reported with their own line numbers. */
Test(manifest, reports_every_bad_line) {
  const char *p = write_file(
      "bad.jsonl",
      "{\"key\":\"ok\",\"task\":\"asr\",\"audio\":\"a.wav\",\"duration\":1,\"text\":\"fine\"}\n"       /* 1 */
      "{\"key\":\"m1\",\"task\":\"asr\",\"audio\":\"a.wav\",\"duration\":1,\n"                      /* 2 */
      "{\"key\":\"m2\",\"task\":\"asr\",\"audio\":\"a.wav\",\"duration\":1}\n"                       /* 3 */
      "{\"key\":\"m3\",\"task\":\"asr\",\"audio\":\"a.wav\",\"duration\":-2,\"text\":\"t\"}\n"       /* 4 */
      "{\"key\":\"m4\",\"task\":\"asr\",\"audio\":7,\"duration\":1,\"text\":\"t\"}\n"                /* 5 */
      "{\"key\":\"m5\",\"task\":\"dance\",\"audio\":\"a.wav\",\"duration\":1}\n"                     /* 6 */
      "{\"task\":\"asr\",\"audio\":\"a.wav\",\"duration\":1,\"text\":\"t\"}\n"                       /* 7 */
      "{\"key\":\"ok\",\"task\":\"asr\",\"audio\":\"a.wav\",\"duration\":1,\"text\":\"dup\"}\n"      /* 8 */
      "{\"key\":\"m6\",\"task\":\"s2t_chat\",\"audio\":\"a.wav\",\"duration\":1}\n"                  /* 9 */
      "{\"key\":\"m7\",\"task\":\"s2t_chat\",\"audio\":\"a.wav\",\"duration\":1,\"messages\":[{\"role\":\"bot\","
      "\"content\":\"x\"}]}\n"                                                                      /* 10 */
      "[1,2,3]\n"                                                                                   /* 11 */
      "{\"key\":\"m8\",\"task\":\"asr\",\"audio\":\"a.wav\",\"duration\":\"1.0\",\"text\":\"t\"}\n"  /* 12 */
      "{\"key\":\"m9\",\"task\":\"tts\",\"audio\":\"a.wav\",\"text\":\"t\"}\n"                       /* 13 */
      "{\"key\":\"m10\",\"task\":\"asr\",\"audio\":\"a.wav\",\"duration\":1,\"text\":\"t\"} junk\n"); /* 14 */
  vox_manifest_report *r = NULL;
  VT_OK(vox_manifest_validate(p, false, &r));
  struct {
    int line;
    const char *needle;
  } want[] = {
      {2, "malformed JSON"},
      {3, "missing required key 'text' for task 'asr'"},
      {4, "negative duration"},
      {5, "'audio' must be a string, got number"},
      {6, "unknown task 'dance'"},
      {7, "missing required key 'key'"},
      {8, "duplicate key 'ok' (first at line 1)"},
      {9, "missing required key 'messages'"},
      {10, "role 'bot'"},
      {11, "must be a JSON object"},
      {12, "'duration' must be a number, got string"},
      {13, "missing required key 'duration'"},
      {14, "trailing characters"},
  };
  const int n_want = sizeof want / sizeof want[0];
  cr_assert_eq(r->n_bad, n_want, "bad lines: %lld", (long long)r->n_bad);
  cr_assert_eq(r->n_good, 1);
  for (int i = 0; i < n_want; i++) {
    const char *msg = issue_at(r, want[i].line);
    cr_assert(msg, "no issue reported at line %d", want[i].line);
    cr_assert(strstr(msg, want[i].needle), "line %d: expected '%s' in '%s'", want[i].line, want[i].needle, msg);
  }
  vox_manifest_report_free(r);

  /* Loading for training fails and the one message names every bad line as file:line. */
  vox_manifest *m = NULL;
  cr_assert_eq(vox_manifest_load(p, &m), VOX_ERR_PARSE);
  cr_assert_null(m);
  const char *err = vox_last_error();
  for (int i = 0; i < n_want; i++) {
    char loc[600];
    snprintf(loc, sizeof loc, "bad.jsonl:%d: ", want[i].line);
    cr_assert(strstr(err, loc), "'%s' not in: %s", loc, err);
  }
}

Test(manifest, missing_manifest_and_missing_audio) {
  vox_manifest_report *r = NULL;
  char path[400];
  snprintf(path, sizeof path, "%s/nope.jsonl", tmpdir);
  VT_OK(vox_manifest_validate(path, true, &r));
  cr_assert_eq(r->n_issues, 1);
  cr_assert_eq(r->issues[0].line, 0);
  cr_assert(strstr(r->issues[0].message, "cannot open"));
  vox_manifest_report_free(r);
  vox_manifest *m = NULL;
  cr_assert_eq(vox_manifest_load(path, &m), VOX_ERR_IO);

  const char *p = write_file("m.jsonl", "{\"key\":\"k\",\"task\":\"asr\",\"audio\":\"gone.wav\",\"duration\":1,"
                                        "\"text\":\"t\"}\n");
  VT_OK(vox_manifest_validate(p, true, &r));
  cr_assert_eq(r->n_missing_files, 1);
  cr_assert(issue_at(r, 1) && strstr(issue_at(r, 1), "gone.wav"));
  vox_manifest_report_free(r);
}
