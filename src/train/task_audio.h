/* Audio datasets for audio tasks (module prefix vox_task_audio_): the loader a recipe dataset gives an audio task,
 * with feature options derived from the model's encoder config. */
#ifndef VOX_TRAIN_TASK_AUDIO_H
#define VOX_TRAIN_TASK_AUDIO_H

#include <stdbool.h>

#include "data/loader.h"
#include "models/model_config.h"
#include "train/task.h"

/* Opens dataset `name` (a key of the recipe's `data`; ref names the stage node that asked, for errors) as a
 * loader: Whisper log-mel with the encoder's bin count, or the SAN-M encoder's LFR fbank (80 bins x LFR 7, 6); a
 * dataset naming other `features`/`n_mels` is an error. The dataset node gives `cmvn`, `specaugment` (training
 * only) and `num_workers`; the stage gives `batch.max_frames_in_batch` (12000), `batch.batch_size` and, for
 * training, `data.fraction` and the rank's shard. Eval loaders keep manifest order. *path: the resolved manifest
 * path (caller frees). A `speech_as_text` dataset is refused. */
vox_status vox_task_audio_open(const vox_task_ctx *ctx, const vox_mc_encoder *enc, const vox_config *ref,
                               const char *name, bool training, vox_loader **L, char **path);

/* A training loader's position as a task data position (epoch, batch), and back; `who` names the task in errors. */
vox_status vox_task_audio_position(const vox_loader *train, vox_task_pos *pos);
vox_status vox_task_audio_seek(vox_loader *train, const vox_task_pos *pos, const char *who);

#endif
