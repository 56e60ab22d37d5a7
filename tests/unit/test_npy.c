/* .npy I/O: float32/int32 round trips through our writer and reader, a file written by NumPy (fixture), the exact
 * v1.0 header NumPy expects, and clear errors for missing, truncated, wrong-dtype and non-npy files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/npy.h"
#include "vox_test.h"

static char path[64];
static const char *tmp_path(void) {
  snprintf(path, sizeof path, "/tmp/vox_test_npy_XXXXXX");
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  return path;
}

Test(npy, f32_round_trip_and_header) {
  float d[6] = {1.5f, -2.f, 3.25f, 0.f, 1e-30f, -7.f};
  const char *p = tmp_path();
  VT_OK(vox_npy_save_f32(p, d, 2, (int64_t[]){2, 3}));
  FILE *f = fopen(p, "rb");
  char head[128];
  cr_assert_eq(fread(head, 1, 128, f), 128u);
  fclose(f);
  cr_assert_eq(memcmp(head, "\x93NUMPY\x01\x00", 8), 0);
  int hlen = (unsigned char)head[8] | (unsigned char)head[9] << 8;
  cr_assert_eq((10 + hlen) % 64, 0, "header must pad the data to a 64-byte boundary");
  cr_assert_eq(head[10 + hlen - 1], '\n');
  cr_assert(strstr(head + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), "%.*s", hlen, head + 10);
  vox_npy a;
  VT_OK(vox_npy_load(p, &a));
  cr_assert_eq(a.dtype, VOX_NPY_F32);
  cr_assert_eq(a.ndim, 2);
  cr_assert_eq(a.shape[0], 2);
  cr_assert_eq(a.shape[1], 3);
  cr_assert_eq(memcmp(a.data, d, sizeof d), 0);
  vox_npy_free(&a);
  remove(p);
}

Test(npy, i32_1d_and_scalar) {
  int32_t d[4] = {1, -2, 2147483647, 0};
  const char *p = tmp_path();
  VT_OK(vox_npy_save_i32(p, d, 1, (int64_t[]){4}));
  vox_npy a;
  VT_OK(vox_npy_load(p, &a));
  cr_assert_eq(a.dtype, VOX_NPY_I32);
  cr_assert_eq(a.ndim, 1);
  cr_assert_eq(a.numel, 4);
  cr_assert_eq(memcmp(a.data, d, sizeof d), 0);
  vox_npy_free(&a);
  float *f;
  int nd;
  int64_t shape[VOX_NPY_MAX_DIMS];
  cr_assert_eq(vox_npy_load_f32(p, &f, &nd, shape), VOX_ERR_DTYPE);
  VT_OK(vox_npy_save_f32(p, (float[]){4.f}, 0, NULL));
  VT_OK(vox_npy_load_f32(p, &f, &nd, shape));
  cr_assert_eq(nd, 0);
  cr_assert_eq(f[0], 4.f);
  free(f);
  remove(p);
}

Test(npy, reads_numpy_written_file) {
  /* written by numpy.save in make_reference.py */
  float *f;
  int nd;
  int64_t shape[VOX_NPY_MAX_DIMS];
  VT_OK(vox_npy_load_f32(vt_fixture("audio/speech_lfr.npy"), &f, &nd, shape));
  cr_assert_eq(nd, 2);
  cr_assert_eq(shape[1], 560);
  free(f);
}

static void write_raw(const char *p, const void *b, size_t n) {
  FILE *f = fopen(p, "wb");
  fwrite(b, 1, n, f);
  fclose(f);
}

static void expect(const char *p, vox_status code, const char *what) {
  vox_npy a;
  vox_status s = vox_npy_load(p, &a);
  cr_assert_eq(s, code, "%s: got %s (%s)", p, vox_status_name(s), vox_last_error());
  cr_assert(strstr(vox_last_error(), p), "message must name the file: %s", vox_last_error());
  cr_assert(strstr(vox_last_error(), what), "message lacks '%s': %s", what, vox_last_error());
  cr_assert_null(a.data);
}

Test(npy, errors) {
  expect("/nonexistent/x.npy", VOX_ERR_NOT_FOUND, "not found");
  const char *p = tmp_path();
  write_raw(p, "hello world, not numpy", 22);
  expect(p, VOX_ERR_PARSE, "magic");
  float d[100] = {0};
  VT_OK(vox_npy_save_f32(p, d, 1, (int64_t[]){100}));
  FILE *f = fopen(p, "rb");
  char buf[512];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  write_raw(p, buf, n - 10);
  expect(p, VOX_ERR_PARSE, "truncated data");
  write_raw(p, buf, 20);
  expect(p, VOX_ERR_PARSE, "truncated header");
  char *q = strstr(buf + 10, "<f4");
  memcpy(q, "<f8", 3);
  write_raw(p, buf, n);
  expect(p, VOX_ERR_DTYPE, "<f8");
  memcpy(q, "<f4", 3);
  q = strstr(buf + 10, "False");
  memcpy(q, "True ", 5);
  write_raw(p, buf, n);
  expect(p, VOX_ERR_UNSUPPORTED, "Fortran");
  remove(p);
}
