/* HDF5 checkpoint files: named tensors in groups (/params, /optim, ...), string and integer attributes on /meta,
 * and small binary state blobs (/state/rng, /state/loader). Writes are atomic: temp file, fsync, rename. */
#ifndef VOX_IO_CHECKPOINT_H
#define VOX_IO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

typedef struct vox_ckpt_writer vox_ckpt_writer;
typedef struct vox_ckpt_reader vox_ckpt_reader;

/* Opens `<path>.tmp-<pid>` for writing; nothing at `path` changes until vox_ckpt_writer_commit. */
vox_status vox_ckpt_writer_new(const char *path, vox_ckpt_writer **out);
/* Stores `t` (any device/dtype; f32 and bf16 are stored as f32, i32 as i32) at "/<group>/<name>". Names may
 * contain dots (HF parameter names) and slashes (sub-groups). */
vox_status vox_ckpt_write_tensor(vox_ckpt_writer *w, const char *group, const char *name, const vox_tensor *t);
vox_status vox_ckpt_write_attr_string(vox_ckpt_writer *w, const char *key, const char *value); /* on /meta */
vox_status vox_ckpt_write_attr_int(vox_ckpt_writer *w, const char *key, int64_t value);       /* on /meta */
vox_status vox_ckpt_write_blob(vox_ckpt_writer *w, const char *name, const void *data, size_t nbytes); /* /state/<name> */
/* Closes, fsyncs and renames over `path`. The writer is freed in every case. */
vox_status vox_ckpt_writer_commit(vox_ckpt_writer *w);
/* Discards the temporary file. */
void vox_ckpt_writer_abort(vox_ckpt_writer *w);

vox_status vox_ckpt_reader_open(const char *path, vox_ckpt_reader **out);
void vox_ckpt_reader_close(vox_ckpt_reader *r);
/* Names of the datasets in /<group> (recursively, "a/b" for sub-groups). Caller frees each and the array. */
vox_status vox_ckpt_list(vox_ckpt_reader *r, const char *group, char ***names, int *count);
/* Reads "/<group>/<name>" into `dst` (existing tensor of the same shape, any device/dtype). Errors name the
 * file, the dataset and both shapes. */
vox_status vox_ckpt_read_into(vox_ckpt_reader *r, const char *group, const char *name, vox_tensor *dst);
/* Reads into a new CPU tensor of the stored shape and dtype. */
vox_status vox_ckpt_read_tensor(vox_ckpt_reader *r, const char *group, const char *name, vox_tensor **out);
vox_status vox_ckpt_read_attr_string(vox_ckpt_reader *r, const char *key, char **value); /* caller frees */
vox_status vox_ckpt_read_attr_int(vox_ckpt_reader *r, const char *key, int64_t *value);
vox_status vox_ckpt_read_blob(vox_ckpt_reader *r, const char *name, void **data, size_t *nbytes); /* caller frees */
bool vox_ckpt_has(vox_ckpt_reader *r, const char *group, const char *name);

#endif
