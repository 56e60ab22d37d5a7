/* HDF5 checkpoint files: round trip of tensors, attributes and blobs, atomic replacement, and the errors a
 * truncated file or a mis-shaped model gives. */
#include "vox_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/checkpoint.h"

static char dir[128], path[256];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/vox_ckpt_XXXXXX");
  cr_assert(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/step_10.h5", dir);
}
static void teardown(void) {
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  (void)system(cmd);
}
TestSuite(checkpoint, .init = setup, .fini = teardown);

static void write_one(const char *p, float scale) {
  vox_ckpt_writer *w = NULL;
  VT_OK(vox_ckpt_writer_new(p, &w));
  vox_tensor *a = vt_randn(VT_SHAPE(3, 4), 1, scale, false);
  int32_t iv[3] = {7, -1, 42};
  vox_tensor *b = vt_from_i32(VT_SHAPE(3), iv);
  VT_OK(vox_ckpt_write_tensor(w, "params", "layers.0.self_attn.q_proj.weight", a));
  VT_OK(vox_ckpt_write_tensor(w, "params", "ids", b));
  /* A strided view is written as its logical values. */
  vox_tensor *col = NULL;
  VT_OK(vox_tensor_view_slice(a, 1, 1, 2, 1, &col));
  VT_OK(vox_ckpt_write_tensor(w, "optim", "layers.0.self_attn.q_proj.weight/m", col));
  VT_OK(vox_ckpt_write_attr_string(w, "config", "model:\n  d: 4\n"));
  VT_OK(vox_ckpt_write_attr_int(w, "step", 10));
  VT_OK(vox_ckpt_write_blob(w, "rng", "\x01\x02\x03", 3));
  VT_OK(vox_ckpt_writer_commit(w));
  vox_tensor_release(a);
  vox_tensor_release(b);
  vox_tensor_release(col);
}

Test(checkpoint, round_trip) {
  write_one(path, 1.0f);
  vox_ckpt_reader *r = NULL;
  VT_OK(vox_ckpt_reader_open(path, &r));
  vox_tensor *a = vt_randn(VT_SHAPE(3, 4), 1, 1.0f, false), *got = NULL;
  VT_OK(vox_ckpt_read_tensor(r, "params", "layers.0.self_attn.q_proj.weight", &got));
  vt_assert_close(got, a, 0, 0, "weight");
  vox_tensor_release(got);
  VT_OK(vox_ckpt_read_tensor(r, "params", "ids", &got));
  cr_assert_eq(got->dtype, VOX_I32);
  cr_assert_eq(vox_tensor_i32(got)[2], 42);
  vox_tensor_release(got);
  VT_OK(vox_ckpt_read_tensor(r, "optim", "layers.0.self_attn.q_proj.weight/m", &got));
  cr_assert_eq(got->shape[0], 3);
  cr_assert_eq(vox_tensor_f32(got)[1], vox_tensor_f32(a)[5]);
  vox_tensor_release(got);
  char **names;
  int n;
  VT_OK(vox_ckpt_list(r, "params", &names, &n));
  cr_assert_eq(n, 2);
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  char *cfg;
  int64_t step;
  VT_OK(vox_ckpt_read_attr_string(r, "config", &cfg));
  cr_assert_str_eq(cfg, "model:\n  d: 4\n");
  free(cfg);
  VT_OK(vox_ckpt_read_attr_int(r, "step", &step));
  cr_assert_eq(step, 10);
  void *blob;
  size_t nb;
  VT_OK(vox_ckpt_read_blob(r, "rng", &blob, &nb));
  cr_assert(nb == 3 && !memcmp(blob, "\x01\x02\x03", 3));
  free(blob);
  /* Reading into a model tensor of the wrong shape names both shapes. */
  vox_tensor *wrong = vt_randn(VT_SHAPE(4, 3), 2, 1.0f, false);
  cr_assert_eq(vox_ckpt_read_into(r, "params", "layers.0.self_attn.q_proj.weight", wrong), VOX_ERR_SHAPE);
  cr_assert(strstr(vox_last_error(), "f32[3,4]") && strstr(vox_last_error(), "f32[4,3]"), "%s", vox_last_error());
  cr_assert_eq(vox_ckpt_read_into(r, "params", "missing.weight", wrong), VOX_ERR_NOT_FOUND);
  cr_assert(!vox_ckpt_has(r, "params", "missing.weight"));
  vox_tensor_release(wrong);
  vox_tensor_release(a);
  vox_ckpt_reader_close(r);
}

Test(checkpoint, aborted_write_keeps_last_good_file) {
  write_one(path, 1.0f);
  vox_ckpt_writer *w = NULL;
  VT_OK(vox_ckpt_writer_new(path, &w));
  vox_tensor *a = vt_randn(VT_SHAPE(2), 9, 1.0f, false);
  VT_OK(vox_ckpt_write_tensor(w, "params", "other", a));
  vox_ckpt_writer_abort(w); /* a failed step */
  vox_tensor_release(a);
  vox_ckpt_reader *r = NULL;
  VT_OK(vox_ckpt_reader_open(path, &r));
  cr_assert(vox_ckpt_has(r, "params", "ids") && !vox_ckpt_has(r, "params", "other"));
  vox_ckpt_reader_close(r);
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
  cr_assert(access(tmp, F_OK) != 0, "the temporary file was left behind");
}

Test(checkpoint, truncated_and_missing_files_are_clear_errors) {
  write_one(path, 1.0f);
  FILE *f = fopen(path, "r+");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fclose(f);
  cr_assert_eq(truncate(path, size / 3), 0);
  vox_ckpt_reader *r = NULL;
  vox_status st = vox_ckpt_reader_open(path, &r);
  if (st == VOX_OK) { /* the superblock may survive: then reading must fail cleanly */
    vox_tensor *t = NULL;
    st = vox_ckpt_read_tensor(r, "params", "layers.0.self_attn.q_proj.weight", &t);
    vox_tensor_release(t);
    vox_ckpt_reader_close(r);
  }
  cr_assert_neq(st, VOX_OK, "a truncated checkpoint read without error");
  cr_assert(strstr(vox_last_error(), dir), "%s", vox_last_error());
  char missing[300];
  snprintf(missing, sizeof missing, "%s/nope.h5", dir);
  cr_assert_eq(vox_ckpt_reader_open(missing, &r), VOX_ERR_IO);
  cr_assert(strstr(vox_last_error(), "nope.h5"), "%s", vox_last_error());
}
