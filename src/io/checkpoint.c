/* HDF5 checkpoint reading and writing (libhdf5 1.10 API). The writer works on a temporary file that only
 * replaces the target after a successful close + fsync, so a crash mid-write never loses the last checkpoint. */
#include "io/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct vox_ckpt_writer {
  hid_t file, meta, lcpl;
  char *path, *tmp_path;
};

struct vox_ckpt_reader {
  hid_t file;
  char *path;
};

static void hdf5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

vox_status vox_ckpt_writer_new(const char *path, vox_ckpt_writer **out) {
  hdf5_quiet();
  vox_ckpt_writer *w = calloc(1, sizeof *w);
  if (!w) return vox_errorf(VOX_ERR_NOMEM, "checkpoint: out of memory");
  w->path = strdup(path);
  w->tmp_path = malloc(strlen(path) + 32);
  sprintf(w->tmp_path, "%s.tmp-%d", path, (int)getpid());
  w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (w->file < 0) {
    vox_status st = vox_errorf(VOX_ERR_IO, "%s: cannot create checkpoint file (%s)", w->tmp_path, strerror(errno));
    free(w->path);
    free(w->tmp_path);
    free(w);
    return st;
  }
  w->lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(w->lcpl, 1);
  w->meta = H5Gcreate2(w->file, "meta", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  *out = w;
  return VOX_OK;
}

static vox_status write_dataset(vox_ckpt_writer *w, const char *dset_path, hid_t mem_type, hid_t file_type,
                                int ndim, const hsize_t *dims, const void *data) {
  hid_t space = H5Screate_simple(ndim, dims, NULL);
  if (ndim == 0) {
    H5Sclose(space);
    space = H5Screate(H5S_SCALAR);
  }
  hid_t d = H5Dcreate2(w->file, dset_path, file_type, space, w->lcpl, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = d >= 0 ? H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
  if (d >= 0) H5Dclose(d);
  H5Sclose(space);
  if (d < 0 || e < 0) return vox_errorf(VOX_ERR_IO, "%s: cannot write dataset %s", w->tmp_path, dset_path);
  return VOX_OK;
}

vox_status vox_ckpt_write_tensor(vox_ckpt_writer *w, const char *group, const char *name, const vox_tensor *t) {
  char path[1024];
  snprintf(path, sizeof path, "/%s/%s", group, name);
  vox_dtype stored = t->dtype == VOX_I32 ? VOX_I32 : VOX_F32;
  vox_tensor *host = NULL;
  VOX_TRY(vox_tensor_to(t, VOX_CPU, stored, &host));
  hsize_t dims[VOX_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
  vox_status st = stored == VOX_F32
                      ? write_dataset(w, path, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, t->ndim, dims, vox_tensor_data(host))
                      : write_dataset(w, path, H5T_NATIVE_INT32, H5T_STD_I32LE, t->ndim, dims, vox_tensor_data(host));
  vox_tensor_release(host);
  return st;
}

vox_status vox_ckpt_write_attr_string(vox_ckpt_writer *w, const char *key, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, strlen(value) + 1);
  H5Tset_strpad(type, H5T_STR_NULLTERM);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(w->meta, key, type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a >= 0 ? H5Awrite(a, type, value) : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  return a < 0 || e < 0 ? vox_errorf(VOX_ERR_IO, "%s: cannot write attribute /meta.%s", w->tmp_path, key) : VOX_OK;
}

vox_status vox_ckpt_write_attr_int(vox_ckpt_writer *w, const char *key, int64_t value) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(w->meta, key, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a >= 0 ? H5Awrite(a, H5T_NATIVE_INT64, &value) : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  return a < 0 || e < 0 ? vox_errorf(VOX_ERR_IO, "%s: cannot write attribute /meta.%s", w->tmp_path, key) : VOX_OK;
}

vox_status vox_ckpt_write_blob(vox_ckpt_writer *w, const char *name, const void *data, size_t nbytes) {
  char path[512];
  snprintf(path, sizeof path, "/state/%s", name);
  hsize_t dims[1] = {nbytes};
  return write_dataset(w, path, H5T_NATIVE_UINT8, H5T_STD_U8LE, 1, dims, nbytes ? data : "");
}

static void writer_free(vox_ckpt_writer *w) {
  free(w->path);
  free(w->tmp_path);
  free(w);
}

void vox_ckpt_writer_abort(vox_ckpt_writer *w) {
  if (!w) return;
  if (w->meta >= 0) H5Gclose(w->meta);
  H5Pclose(w->lcpl);
  H5Fclose(w->file);
  unlink(w->tmp_path);
  writer_free(w);
}

vox_status vox_ckpt_writer_commit(vox_ckpt_writer *w) {
  H5Gclose(w->meta);
  w->meta = -1;
  H5Pclose(w->lcpl);
  herr_t e = H5Fclose(w->file);
  vox_status st = VOX_OK;
  if (e < 0) st = vox_errorf(VOX_ERR_IO, "%s: closing the checkpoint failed", w->tmp_path);
  if (st == VOX_OK) {
    int fd = open(w->tmp_path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) st = vox_errorf(VOX_ERR_IO, "%s: fsync failed: %s", w->tmp_path, strerror(errno));
    if (fd >= 0) close(fd);
  }
  if (st == VOX_OK && rename(w->tmp_path, w->path) != 0)
    st = vox_errorf(VOX_ERR_IO, "%s: cannot rename the finished checkpoint into place: %s", w->path, strerror(errno));
  if (st != VOX_OK) unlink(w->tmp_path);
  writer_free(w);
  return st;
}

/* ---- reading ---------------------------------------------------------------------------------------------- */

vox_status vox_ckpt_reader_open(const char *path, vox_ckpt_reader **out) {
  hdf5_quiet();
  if (access(path, R_OK) != 0) return vox_errorf(VOX_ERR_IO, "%s: cannot read checkpoint: %s", path, strerror(errno));
  if (H5Fis_hdf5(path) <= 0) return vox_errorf(VOX_ERR_PARSE, "%s: not an HDF5 file (truncated or corrupt checkpoint?)", path);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return vox_errorf(VOX_ERR_PARSE, "%s: cannot open as HDF5 (corrupt checkpoint?)", path);
  vox_ckpt_reader *r = calloc(1, sizeof *r);
  r->file = f;
  r->path = strdup(path);
  *out = r;
  return VOX_OK;
}

void vox_ckpt_reader_close(vox_ckpt_reader *r) {
  if (!r) return;
  H5Fclose(r->file);
  free(r->path);
  free(r);
}

typedef struct list_ctx {
  char **names;
  int count, cap;
} list_ctx;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *op) {
  list_ctx *c = op;
  H5O_info_t oi;
  if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET) return 0;
  if (c->count == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 64;
    char **n = realloc(c->names, sizeof(char *) * (size_t)c->cap);
    if (!n) return -1;
    c->names = n;
  }
  c->names[c->count++] = strdup(name);
  return 0;
}

vox_status vox_ckpt_list(vox_ckpt_reader *r, const char *group, char ***names, int *count) {
  *names = NULL;
  *count = 0;
  if (H5Lexists(r->file, group, H5P_DEFAULT) <= 0) return VOX_OK;
  hid_t g = H5Gopen2(r->file, group, H5P_DEFAULT);
  if (g < 0) return vox_errorf(VOX_ERR_PARSE, "%s: /%s is not a group", r->path, group);
  list_ctx c = {0};
  herr_t e = H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, list_cb, &c);
  H5Gclose(g);
  if (e < 0) {
    for (int i = 0; i < c.count; i++) free(c.names[i]);
    free(c.names);
    return vox_errorf(VOX_ERR_PARSE, "%s: cannot list /%s", r->path, group);
  }
  *names = c.names;
  *count = c.count;
  return VOX_OK;
}

bool vox_ckpt_has(vox_ckpt_reader *r, const char *group, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "/%s/%s", group, name);
  /* H5Lexists needs every intermediate link to exist. */
  char partial[1024];
  for (char *p = path + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      snprintf(partial, sizeof partial, "%.*s", (int)(p - path), path);
      if (H5Lexists(r->file, partial, H5P_DEFAULT) <= 0) return false;
      if (!*p) return true;
    }
  }
}

/* Opens a dataset and reports its shape and whether it holds integers. */
static vox_status open_dataset(vox_ckpt_reader *r, const char *group, const char *name, hid_t *d, int *ndim,
                               int64_t *shape, bool *is_int) {
  char path[1024];
  snprintf(path, sizeof path, "/%s/%s", group, name);
  if (!vox_ckpt_has(r, group, name)) return vox_errorf(VOX_ERR_NOT_FOUND, "%s: no dataset %s", r->path, path);
  *d = H5Dopen2(r->file, path, H5P_DEFAULT);
  if (*d < 0) return vox_errorf(VOX_ERR_PARSE, "%s: %s is not a dataset", r->path, path);
  hid_t space = H5Dget_space(*d);
  int n = H5Sget_simple_extent_ndims(space);
  hsize_t dims[VOX_MAX_DIMS];
  if (n < 0 || n > VOX_MAX_DIMS) {
    H5Sclose(space);
    H5Dclose(*d);
    return vox_errorf(VOX_ERR_PARSE, "%s: %s has %d dims (at most %d)", r->path, path, n, VOX_MAX_DIMS);
  }
  H5Sget_simple_extent_dims(space, dims, NULL);
  H5Sclose(space);
  *ndim = n;
  for (int i = 0; i < n; i++) shape[i] = (int64_t)dims[i];
  hid_t type = H5Dget_type(*d);
  *is_int = H5Tget_class(type) == H5T_INTEGER;
  H5Tclose(type);
  return VOX_OK;
}

vox_status vox_ckpt_read_tensor(vox_ckpt_reader *r, const char *group, const char *name, vox_tensor **out) {
  hid_t d;
  int ndim;
  int64_t shape[VOX_MAX_DIMS];
  bool is_int;
  VOX_TRY(open_dataset(r, group, name, &d, &ndim, shape, &is_int));
  vox_status st = vox_tensor_empty(is_int ? VOX_I32 : VOX_F32, VOX_CPU, ndim, shape, out);
  if (st == VOX_OK &&
      H5Dread(d, is_int ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, vox_tensor_data(*out)) < 0) {
    st = vox_errorf(VOX_ERR_IO, "%s: reading /%s/%s failed (corrupt file?)", r->path, group, name);
    vox_tensor_drop(out);
  }
  H5Dclose(d);
  return st;
}

vox_status vox_ckpt_read_into(vox_ckpt_reader *r, const char *group, const char *name, vox_tensor *dst) {
  vox_tensor *src = NULL;
  VOX_TRY(vox_ckpt_read_tensor(r, group, name, &src));
  vox_status st = VOX_OK;
  if (!vox_tensor_same_shape(src, dst)) {
    char b1[96], b2[96];
    st = vox_errorf(VOX_ERR_SHAPE, "%s: /%s/%s is %s in the checkpoint but %s in the model", r->path, group, name,
                    vox_tensor_describe(src, b1, sizeof b1), vox_tensor_describe(dst, b2, sizeof b2));
  } else {
    st = vox_tensor_copy_(dst, src);
  }
  vox_tensor_release(src);
  return st;
}

vox_status vox_ckpt_read_attr_string(vox_ckpt_reader *r, const char *key, char **value) {
  hid_t a = H5Aopen_by_name(r->file, "/meta", key, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) return vox_errorf(VOX_ERR_NOT_FOUND, "%s: no attribute /meta.%s", r->path, key);
  hid_t type = H5Aget_type(a);
  vox_status st = VOX_OK;
  if (H5Tget_class(type) != H5T_STRING) {
    st = vox_errorf(VOX_ERR_PARSE, "%s: /meta.%s is not a string", r->path, key);
  } else {
    size_t n = H5Tget_size(type);
    *value = calloc(n + 1, 1);
    if (H5Aread(a, type, *value) < 0) {
      free(*value);
      *value = NULL;
      st = vox_errorf(VOX_ERR_IO, "%s: cannot read /meta.%s", r->path, key);
    }
  }
  H5Tclose(type);
  H5Aclose(a);
  return st;
}

vox_status vox_ckpt_read_attr_int(vox_ckpt_reader *r, const char *key, int64_t *value) {
  hid_t a = H5Aopen_by_name(r->file, "/meta", key, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) return vox_errorf(VOX_ERR_NOT_FOUND, "%s: no attribute /meta.%s", r->path, key);
  herr_t e = H5Aread(a, H5T_NATIVE_INT64, value);
  H5Aclose(a);
  return e < 0 ? vox_errorf(VOX_ERR_PARSE, "%s: /meta.%s is not an integer", r->path, key) : VOX_OK;
}

vox_status vox_ckpt_read_blob(vox_ckpt_reader *r, const char *name, void **data, size_t *nbytes) {
  hid_t d;
  int ndim;
  int64_t shape[VOX_MAX_DIMS];
  bool is_int;
  VOX_TRY(open_dataset(r, "state", name, &d, &ndim, shape, &is_int));
  vox_status st = VOX_OK;
  if (ndim != 1) st = vox_errorf(VOX_ERR_PARSE, "%s: /state/%s is not a byte array", r->path, name);
  if (st == VOX_OK) {
    *nbytes = (size_t)shape[0];
    *data = malloc(*nbytes ? *nbytes : 1);
    if (H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0) {
      free(*data);
      *data = NULL;
      st = vox_errorf(VOX_ERR_IO, "%s: cannot read /state/%s", r->path, name);
    }
  }
  H5Dclose(d);
  return st;
}
