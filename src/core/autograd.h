/* Define-by-run autograd: ops record a vox_node per differentiable result; vox_backward walks the nodes in
 * reverse topological order, accumulates leaf gradients and frees each node's saved tensors once it has run. */
#ifndef VOX_CORE_AUTOGRAD_H
#define VOX_CORE_AUTOGRAD_H

#include <stdbool.h>

#include "core/tensor.h"

#define VOX_NODE_MAX_INPUTS 8
#define VOX_NODE_MAX_SAVED 8
#define VOX_NODE_CTX_BYTES 256

struct vox_node;
/* Computes the gradient of each input from grad_out (shape of the node's output). grad_in[i] is set to a new
 * tensor shaped like input i, or left NULL when input i needs no gradient (vox_node_needs_grad). Runs with
 * autograd disabled. */
typedef vox_status (*vox_backward_fn)(struct vox_node *node, vox_tensor *grad_out, vox_tensor **grad_in);

/* An edge to an input: its producer node, or the leaf tensor itself when it is a leaf that requires grad. */
typedef struct vox_edge {
  struct vox_node *node; /* owned reference */
  vox_tensor *leaf;      /* owned reference */
  int ndim;
  int64_t shape[VOX_MAX_DIMS];
  vox_dtype dtype;
  bool last_use; /* set during backward: the last edge feeding this leaf (its grad hook fires after it) */
} vox_edge;

typedef struct vox_node {
  const char *op;
  atomic_int refcount;
  int n_inputs;
  vox_edge inputs[VOX_NODE_MAX_INPUTS];
  int n_saved;
  vox_tensor *saved[VOX_NODE_MAX_SAVED];
  vox_backward_fn backward;
  unsigned char ctx[VOX_NODE_CTX_BYTES] __attribute__((aligned(16))); /* the op's scalar parameters */
  /* backward bookkeeping */
  vox_tensor *grad;      /* accumulated gradient of the output during backward */
  int pending;           /* consumers not yet run */
  bool done;             /* backward ran; saved tensors and edges were released */
  int64_t out_shape[VOX_MAX_DIMS];
  int out_ndim;
  vox_dtype out_dtype;
  vox_device out_device;
} vox_node;

/* ---- grad mode (thread-local) ---- */
bool vox_grad_enabled(void);
void vox_no_grad_begin(void);
void vox_no_grad_end(void);

/* ---- used by op implementations ---- */
/* When grad mode is on and any input requires grad, creates a node for `out`, marks out->requires_grad and
 * returns it in *node; otherwise *node = NULL. Inputs may be NULL (optional operands). */
vox_status vox_autograd_record(const char *op, vox_tensor *out, int n_inputs, vox_tensor *const *inputs,
                               vox_backward_fn backward, vox_node **node);
/* Keeps `t` alive until the node's backward has run. Returns its index in node->saved. */
int vox_node_save(vox_node *node, vox_tensor *t);
/* Whether input i receives a gradient. */
bool vox_node_needs_grad(const vox_node *node, int i);
void vox_node_release(vox_node *node);

/* ---- user API ---- */
/* Backpropagates from `root`. grad_root NULL means ones (root must then be a scalar). Leaves that require
 * grad get their ->grad allocated or accumulated into. The graph is freed as it is walked. */
vox_status vox_backward(vox_tensor *root, vox_tensor *grad_root);
/* Sets every ->grad of `params` to NULL (freeing them). */
void vox_zero_grad(vox_tensor *const *params, int n);

/* Activation checkpointing: runs fn without recording, keeping only `inputs`; backward re-runs fn with
 * recording on and backpropagates through it. fn must be deterministic (use explicit RNG offsets). */
typedef vox_status (*vox_checkpoint_fn)(void *ctx, vox_tensor *const *inputs, vox_tensor **out);
vox_status vox_checkpoint(vox_checkpoint_fn fn, void *ctx, int n_inputs, vox_tensor *const *inputs,
                          vox_tensor **out);

/* Number of nodes alive (tests use it to prove graphs are freed). */
long vox_autograd_live_nodes(void);

#endif
