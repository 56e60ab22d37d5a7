/* The autograd tape: node recording, reverse-topological backward with gradient accumulation, the no-grad
 * mode and activation checkpointing. Each node frees its saved tensors and edges as soon as it has run. */
#include "core/autograd.h"

#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/kernel_params.h"

static _Thread_local int no_grad_depth = 0;
static atomic_long live_nodes = 0;

bool vox_grad_enabled(void) { return no_grad_depth == 0; }
void vox_no_grad_begin(void) { no_grad_depth++; }
void vox_no_grad_end(void) {
  if (no_grad_depth > 0) no_grad_depth--;
}
long vox_autograd_live_nodes(void) { return atomic_load(&live_nodes); }

static bool tensor_wants_grad(const vox_tensor *t) { return t && t->requires_grad; }

/* Drops what a node holds for backward: saved tensors, edges and the pending gradient. */
static void node_clear(vox_node *n) {
  for (int i = 0; i < n->n_saved; i++) vox_tensor_release(n->saved[i]);
  n->n_saved = 0;
  for (int i = 0; i < n->n_inputs; i++) {
    if (n->inputs[i].node) vox_node_release(n->inputs[i].node);
    vox_tensor_release(n->inputs[i].leaf);
    n->inputs[i].node = NULL;
    n->inputs[i].leaf = NULL;
  }
  vox_tensor_release(n->grad);
  n->grad = NULL;
}

void vox_node_release(vox_node *n) {
  if (!n || atomic_fetch_sub(&n->refcount, 1) != 1) return;
  node_clear(n);
  free(n);
  atomic_fetch_sub(&live_nodes, 1);
}

vox_status vox_autograd_record(const char *op, vox_tensor *out, int n_inputs, vox_tensor *const *inputs,
                               vox_backward_fn backward, vox_node **node) {
  *node = NULL;
  if (!vox_grad_enabled()) return VOX_OK;
  bool any = false;
  for (int i = 0; i < n_inputs; i++) any |= tensor_wants_grad(inputs[i]);
  if (!any) return VOX_OK;
  if (n_inputs > VOX_NODE_MAX_INPUTS)
    return vox_errorf(VOX_ERR_INVALID, "%s: %d inputs exceed the autograd limit %d", op, n_inputs,
                      VOX_NODE_MAX_INPUTS);
  vox_node *n = calloc(1, sizeof *n);
  if (!n) return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory recording autograd node", op);
  atomic_init(&n->refcount, 1);
  atomic_fetch_add(&live_nodes, 1);
  n->op = op;
  n->backward = backward;
  n->n_inputs = n_inputs;
  for (int i = 0; i < n_inputs; i++) {
    vox_tensor *x = inputs[i];
    vox_edge *e = &n->inputs[i];
    if (!x) continue;
    e->ndim = x->ndim;
    memcpy(e->shape, x->shape, sizeof e->shape);
    e->dtype = x->dtype;
    if (!x->requires_grad) continue;
    if (x->node) {
      e->node = x->node;
      atomic_fetch_add(&x->node->refcount, 1);
    } else {
      e->leaf = vox_tensor_retain(x);
    }
  }
  n->out_ndim = out->ndim;
  memcpy(n->out_shape, out->shape, sizeof n->out_shape);
  n->out_dtype = out->dtype;
  n->out_device = out->device;
  if (out->node) vox_node_release(out->node);
  out->node = n;
  out->requires_grad = true;
  *node = n;
  return VOX_OK;
}

int vox_node_save(vox_node *node, vox_tensor *t) {
  node->saved[node->n_saved] = vox_tensor_retain(t);
  return node->n_saved++;
}

bool vox_node_needs_grad(const vox_node *node, int i) {
  return i < node->n_inputs && (node->inputs[i].node || node->inputs[i].leaf);
}

void vox_zero_grad(vox_tensor *const *params, int n) {
  for (int i = 0; i < n; i++) vox_tensor_drop(&params[i]->grad);
}

/* dst += g, taking ownership of g when dst is empty. Gradients are accumulated in the dtype of g. */
static vox_status accumulate(vox_tensor **dst, vox_tensor *g) {
  if (!*dst) {
    *dst = g;
    return VOX_OK;
  }
  /* Out of place: a backward may hand the same tensor to several inputs. */
  vox_tensor *sum = NULL;
  vox_status st = vox_tensor_empty_like(*dst, &sum);
  if (st == VOX_OK) {
    vox_binary_params p = {.op = VOX_BIN_ADD};
    vox_kernel_args a = {.n_in = 2, .n_out = 1, .in = {*dst, g}, .out = {sum}, .params = &p};
    st = vox_kernel_run("accumulate grad", VOX_K_BINARY, &a);
  }
  vox_tensor_release(g);
  if (st != VOX_OK) {
    vox_tensor_release(sum);
    return st;
  }
  vox_tensor_release(*dst);
  *dst = sum;
  return VOX_OK;
}

/* A leaf's ->grad is read and updated in place by optimizers and clipping, so the first gradient it receives
 * must be contiguous and not shared with any other tensor (backward functions may return views of grad_out
 * or the same tensor for several inputs). Replaces *g by an exclusive contiguous copy when needed. */
static vox_status own_leaf_grad(vox_tensor **g) {
  vox_tensor *t = *g;
  if (vox_tensor_is_contiguous(t) && t->offset == 0 && atomic_load(&t->refcount) == 1 &&
      atomic_load(&t->storage->refcount) == 1)
    return VOX_OK;
  vox_tensor *c = NULL;
  vox_status st = vox_tensor_clone(t, &c);
  vox_tensor_release(t);
  *g = c;
  return st;
}

typedef struct node_list {
  vox_node **items;
  int count, cap;
} node_list;

static vox_status list_push(node_list *l, vox_node *n) {
  if (l->count == l->cap) {
    int cap = l->cap ? l->cap * 2 : 64;
    vox_node **items = realloc(l->items, (size_t)cap * sizeof *items);
    if (!items) return vox_errorf(VOX_ERR_NOMEM, "backward: out of memory");
    l->items = items;
    l->cap = cap;
  }
  l->items[l->count++] = n;
  return VOX_OK;
}

/* Post-order DFS (iterative, graphs can be deep) giving a topological order; counts consumers per node. */
static vox_status topo_sort(vox_node *root, node_list *order) {
  node_list stack = {0};
  vox_status st = list_push(&stack, root);
  root->pending = -1; /* -1 marks "on the stack / visited"; consumer counts are rebuilt below */
  /* First pass: collect reachable nodes. */
  while (st == VOX_OK && stack.count) {
    vox_node *n = stack.items[--stack.count];
    st = list_push(order, n);
    for (int i = 0; i < n->n_inputs && st == VOX_OK; i++) {
      vox_node *c = n->inputs[i].node;
      if (c && c->pending != -1) {
        c->pending = -1;
        st = list_push(&stack, c);
      }
    }
  }
  free(stack.items);
  if (st != VOX_OK) return st;
  /* Consumer counts, then Kahn's algorithm from the root. */
  for (int i = 0; i < order->count; i++) order->items[i]->pending = 0;
  for (int i = 0; i < order->count; i++)
    for (int j = 0; j < order->items[i]->n_inputs; j++)
      if (order->items[i]->inputs[j].node) order->items[i]->inputs[j].node->pending++;
  node_list sorted = {0};
  node_list ready = {0};
  st = list_push(&ready, root);
  while (st == VOX_OK && ready.count) {
    vox_node *n = ready.items[--ready.count];
    st = list_push(&sorted, n);
    for (int j = 0; j < n->n_inputs && st == VOX_OK; j++) {
      vox_node *c = n->inputs[j].node;
      if (c && --c->pending == 0) st = list_push(&ready, c);
    }
  }
  free(ready.items);
  free(order->items);
  *order = sorted;
  return st;
}

static vox_status run_node(vox_node *n) {
  vox_tensor *grad_in[VOX_NODE_MAX_INPUTS] = {0};
  vox_status st = VOX_OK;
  if (!n->grad) goto done; /* no gradient reached this node (e.g. only through non-differentiable paths) */
  st = n->backward(n, n->grad, grad_in);
  if (st != VOX_OK) {
    st = vox_error_context(st, "backward of %s: ", n->op);
    goto done;
  }
  for (int i = 0; i < n->n_inputs; i++) {
    vox_edge *e = &n->inputs[i];
    vox_tensor *g = grad_in[i];
    grad_in[i] = NULL;
    if (!g) continue;
    if (!e->node && !e->leaf) {
      vox_tensor_release(g);
      continue;
    }
    if (g->ndim != e->ndim || memcmp(g->shape, e->shape, sizeof(int64_t) * (size_t)e->ndim)) {
      char b1[96];
      vox_tensor_describe(g, b1, sizeof b1);
      vox_tensor_release(g);
      st = vox_errorf(VOX_ERR_SHAPE, "backward of %s: gradient %s for input %d has the wrong shape", n->op, b1, i);
      goto done;
    }
    if (e->node) {
      st = accumulate(&e->node->grad, g);
    } else {
      st = own_leaf_grad(&g);
      if (st == VOX_OK) st = accumulate(&e->leaf->grad, g);
    }
    if (st != VOX_OK) goto done;
  }
done:
  for (int i = 0; i < n->n_inputs; i++) vox_tensor_release(grad_in[i]);
  return st;
}

vox_status vox_backward(vox_tensor *root, vox_tensor *grad_root) {
  char b1[96];
  if (!root->requires_grad)
    return vox_errorf(VOX_ERR_STATE, "backward: %s does not require grad", vox_tensor_describe(root, b1, sizeof b1));
  vox_tensor *g0 = NULL;
  if (grad_root) {
    if (!vox_tensor_same_shape(grad_root, root))
      return vox_errorf(VOX_ERR_SHAPE, "backward: gradient shape differs from %s",
                        vox_tensor_describe(root, b1, sizeof b1));
    g0 = vox_tensor_retain(grad_root);
  } else {
    if (vox_tensor_numel(root) != 1)
      return vox_errorf(VOX_ERR_SHAPE, "backward: implicit gradient needs a scalar, got %s",
                        vox_tensor_describe(root, b1, sizeof b1));
    VOX_TRY(vox_tensor_full(root->dtype, root->device, root->ndim, root->shape, 1.0, &g0));
  }
  if (!root->node) { /* a leaf */
    vox_status st = own_leaf_grad(&g0);
    if (st == VOX_OK) st = accumulate(&root->grad, g0);
    if (st == VOX_OK && root->grad_hook) root->grad_hook(root, root->grad_hook_ctx);
    return st;
  }
  if (root->node->done) {
    vox_tensor_release(g0);
    return vox_errorf(VOX_ERR_STATE, "backward: the graph of %s was already freed by an earlier backward",
                      vox_tensor_describe(root, b1, sizeof b1));
  }

  node_list order = {0};
  vox_status st = topo_sort(root->node, &order);
  /* Hold every node for the walk: running a node releases its input edges, and an intermediate node whose
   * tensor the caller already dropped would otherwise be freed before its own turn comes. */
  for (int i = 0; i < order.count; i++) atomic_fetch_add(&order.items[i]->refcount, 1);
  /* A leaf's "gradient ready" hook fires after the last node that feeds it: mark those edges. */
  if (st == VOX_OK) {
    node_list seen = {0};
    for (int i = order.count - 1; i >= 0 && st == VOX_OK; i--)
      for (int j = 0; j < order.items[i]->n_inputs; j++) {
        vox_edge *e = &order.items[i]->inputs[j];
        if (!e->leaf || !e->leaf->grad_hook) continue;
        bool known = false;
        for (int k = 0; k < seen.count && !known; k++) known = (void *)seen.items[k] == (void *)e->leaf;
        if (!known) {
          e->last_use = true;
          st = list_push(&seen, (vox_node *)(void *)e->leaf);
        }
      }
    free(seen.items);
  }
  if (st == VOX_OK) st = accumulate(&root->node->grad, g0);
  else vox_tensor_release(g0);

  vox_no_grad_begin();
  for (int i = 0; i < order.count && st == VOX_OK; i++) {
    vox_node *n = order.items[i];
    st = run_node(n);
    for (int j = 0; j < n->n_inputs && st == VOX_OK; j++)
      if (n->inputs[j].last_use) n->inputs[j].leaf->grad_hook(n->inputs[j].leaf, n->inputs[j].leaf->grad_hook_ctx);
    node_clear(n);
    n->done = true;
  }
  vox_no_grad_end();
  /* On failure, free the rest of the graph too so a retry starts clean. */
  for (int i = 0; i < order.count; i++)
    if (!order.items[i]->done) {
      node_clear(order.items[i]);
      order.items[i]->done = true;
    }
  for (int i = 0; i < order.count; i++) vox_node_release(order.items[i]);
  free(order.items);
  return st;
}

/* ---- activation checkpointing ---------------------------------------------------------------------------- */

typedef struct checkpoint_ctx {
  vox_checkpoint_fn fn;
  void *user_ctx;
} checkpoint_ctx;

static vox_status checkpoint_backward(vox_node *node, vox_tensor *grad_out, vox_tensor **grad_in) {
  checkpoint_ctx *c = (checkpoint_ctx *)node->ctx;
  int n = node->n_inputs;
  vox_tensor *inputs[VOX_NODE_MAX_INPUTS] = {0};
  vox_tensor *out = NULL;
  vox_status st = VOX_OK;
  /* Fresh leaves over the saved inputs, so the recomputed graph ends at them. */
  for (int i = 0; i < n && st == VOX_OK; i++) {
    st = vox_tensor_detach(node->saved[i], &inputs[i]);
    if (st == VOX_OK) inputs[i]->requires_grad = vox_node_needs_grad(node, i);
  }
  if (st == VOX_OK) {
    int depth = no_grad_depth;
    no_grad_depth = 0;
    st = c->fn(c->user_ctx, inputs, &out);
    if (st == VOX_OK && out->requires_grad) st = vox_backward(out, grad_out);
    no_grad_depth = depth;
  }
  for (int i = 0; i < n; i++) {
    if (st == VOX_OK && inputs[i]->grad) {
      grad_in[i] = inputs[i]->grad;
      inputs[i]->grad = NULL;
    }
    vox_tensor_release(inputs[i]);
  }
  vox_tensor_release(out);
  return st;
}

vox_status vox_checkpoint(vox_checkpoint_fn fn, void *ctx, int n_inputs, vox_tensor *const *inputs,
                          vox_tensor **out) {
  *out = NULL;
  if (n_inputs > VOX_NODE_MAX_SAVED)
    return vox_errorf(VOX_ERR_INVALID, "checkpoint: %d inputs exceed %d", n_inputs, VOX_NODE_MAX_SAVED);
  bool record = vox_grad_enabled();
  vox_no_grad_begin();
  vox_status st = fn(ctx, inputs, out);
  vox_no_grad_end();
  if (st != VOX_OK || !record) return st;
  /* The block's parameters are leaves inside fn: the node must exist even when no input requires grad, so
   * record it against a marker input that always does. */
  vox_node *n = calloc(1, sizeof *n);
  if (!n) return vox_errorf(VOX_ERR_NOMEM, "checkpoint: out of memory");
  atomic_init(&n->refcount, 1);
  atomic_fetch_add(&live_nodes, 1);
  n->op = "checkpoint";
  n->backward = checkpoint_backward;
  n->n_inputs = n_inputs;
  for (int i = 0; i < n_inputs; i++) {
    vox_tensor *x = inputs[i];
    vox_edge *e = &n->inputs[i];
    e->ndim = x->ndim;
    memcpy(e->shape, x->shape, sizeof e->shape);
    e->dtype = x->dtype;
    if (x->requires_grad) {
      if (x->node) {
        e->node = x->node;
        atomic_fetch_add(&x->node->refcount, 1);
      } else {
        e->leaf = vox_tensor_retain(x);
      }
    }
    vox_node_save(n, x);
  }
  checkpoint_ctx c = {.fn = fn, .user_ctx = ctx};
  memcpy(n->ctx, &c, sizeof c);
  n->out_ndim = (*out)->ndim;
  memcpy(n->out_shape, (*out)->shape, sizeof n->out_shape);
  (*out)->node = n;
  (*out)->requires_grad = true;
  return VOX_OK;
}
