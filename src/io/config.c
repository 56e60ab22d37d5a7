/* YAML to vox_config trees with file:line on every node (libyaml events), deep merge for `extends`,
 * dotted-path overrides, ${...} references, typed getters and a key schema check with helpful errors. */
#include "io/config.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_EXTENDS_DEPTH 16
#define MAX_ANCHORS 256

static char *dup_str(const char *s) { return s ? strdup(s) : NULL; }

static vox_config *node_new(vox_config_kind kind, const char *file, int line) {
  vox_config *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = kind;
  n->file = dup_str(file);
  n->line = line;
  return n;
}

void vox_config_free(vox_config *c) {
  if (!c) return;
  for (int i = 0; i < c->n_items; i++) vox_config_free(c->items[i]);
  free(c->items);
  free(c->key);
  free(c->scalar);
  free(c->file);
  free(c);
}

static vox_status node_append(vox_config *parent, vox_config *child) {
  if (parent->n_items == parent->cap_items) {
    int cap = parent->cap_items ? parent->cap_items * 2 : 8;
    vox_config **items = realloc(parent->items, (size_t)cap * sizeof *items);
    if (!items) return vox_errorf(VOX_ERR_NOMEM, "config: out of memory");
    parent->items = items;
    parent->cap_items = cap;
  }
  parent->items[parent->n_items++] = child;
  child->parent = parent;
  return VOX_OK;
}

vox_status vox_config_clone(const vox_config *c, vox_config **out) {
  vox_config *n = node_new(c->kind, c->file, c->line);
  if (!n) return vox_errorf(VOX_ERR_NOMEM, "config: out of memory");
  n->key = dup_str(c->key);
  n->scalar = dup_str(c->scalar);
  n->quoted = c->quoted;
  for (int i = 0; i < c->n_items; i++) {
    vox_config *child = NULL;
    vox_status st = vox_config_clone(c->items[i], &child);
    if (st == VOX_OK) st = node_append(n, child);
    if (st != VOX_OK) {
      vox_config_free(child);
      vox_config_free(n);
      return st;
    }
  }
  *out = n;
  return VOX_OK;
}

static vox_config *map_find(const vox_config *map, const char *key) {
  for (int i = 0; i < map->n_items; i++)
    if (map->items[i]->key && !strcmp(map->items[i]->key, key)) return map->items[i];
  return NULL;
}

static void map_remove(vox_config *map, vox_config *child) {
  for (int i = 0; i < map->n_items; i++)
    if (map->items[i] == child) {
      memmove(map->items + i, map->items + i + 1, sizeof(vox_config *) * (size_t)(map->n_items - i - 1));
      map->n_items--;
      vox_config_free(child);
      return;
    }
}

/* ---- parsing ---------------------------------------------------------------------------------------------- */

typedef struct parser_state {
  yaml_parser_t parser;
  const char *name;
  struct {
    char *name;
    vox_config *node;
  } anchors[MAX_ANCHORS];
  int n_anchors;
} parser_state;

static vox_status yaml_fail(parser_state *p) {
  return vox_errorf(VOX_ERR_PARSE, "%s:%zu:%zu: YAML error: %s%s%s", p->name, p->parser.problem_mark.line + 1,
                    p->parser.problem_mark.column + 1, p->parser.problem ? p->parser.problem : "malformed",
                    p->parser.context ? " " : "", p->parser.context ? p->parser.context : "");
}

static vox_status remember_anchor(parser_state *p, const yaml_char_t *anchor, vox_config *node) {
  if (!anchor) return VOX_OK;
  if (p->n_anchors == MAX_ANCHORS) return vox_errorf(VOX_ERR_PARSE, "%s: more than %d anchors", p->name, MAX_ANCHORS);
  p->anchors[p->n_anchors].name = strdup((const char *)anchor);
  p->anchors[p->n_anchors].node = node;
  p->n_anchors++;
  return VOX_OK;
}

static vox_status parse_node(parser_state *p, yaml_event_t *ev, vox_config **out);

static vox_status parse_collection(parser_state *p, vox_config *node, bool is_map) {
  yaml_event_type_t end = is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p->parser, &ev)) return yaml_fail(p);
    if (ev.type == end) {
      yaml_event_delete(&ev);
      return VOX_OK;
    }
    char *key = NULL;
    int key_line = (int)ev.start_mark.line + 1;
    if (is_map) {
      if (ev.type != YAML_SCALAR_EVENT) {
        yaml_event_delete(&ev);
        return vox_errorf(VOX_ERR_PARSE, "%s:%d: mapping keys must be plain scalars", p->name, key_line);
      }
      key = strdup((const char *)ev.data.scalar.value);
      yaml_event_delete(&ev);
      if (!yaml_parser_parse(&p->parser, &ev)) {
        free(key);
        return yaml_fail(p);
      }
    }
    vox_config *child = NULL;
    vox_status st = parse_node(p, &ev, &child);
    yaml_event_delete(&ev);
    if (st != VOX_OK) {
      free(key);
      return st;
    }
    if (is_map) {
      if (!strcmp(key, "<<") && child->kind == VOX_CONFIG_MAP) { /* YAML merge key: copy entries not set */
        free(key);
        for (int i = 0; i < child->n_items; i++)
          if (!map_find(node, child->items[i]->key)) {
            vox_config *copy = NULL;
            VOX_TRY(vox_config_clone(child->items[i], &copy));
            VOX_TRY(node_append(node, copy));
          }
        vox_config_free(child);
        continue;
      }
      vox_config *dup = map_find(node, key);
      if (dup) {
        vox_status e = vox_errorf(VOX_ERR_PARSE, "%s:%d: duplicate key '%s' (first at line %d)", p->name, key_line,
                                  key, dup->line);
        free(key);
        vox_config_free(child);
        return e;
      }
      free(child->key);
      child->key = key;
      child->line = key_line;
    }
    VOX_TRY(node_append(node, child));
  }
}

static vox_status parse_node(parser_state *p, yaml_event_t *ev, vox_config **out) {
  int line = (int)ev->start_mark.line + 1;
  switch (ev->type) {
    case YAML_SCALAR_EVENT: {
      const char *v = (const char *)ev->data.scalar.value;
      bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
      bool is_null = plain && (!*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL"));
      vox_config *n = node_new(is_null ? VOX_CONFIG_NULL : VOX_CONFIG_SCALAR, p->name, line);
      if (!n) return vox_errorf(VOX_ERR_NOMEM, "config: out of memory");
      if (!is_null) n->scalar = strdup(v);
      n->quoted = !plain;
      *out = n;
      return remember_anchor(p, ev->data.scalar.anchor, n);
    }
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT: {
      bool is_map = ev->type == YAML_MAPPING_START_EVENT;
      vox_config *n = node_new(is_map ? VOX_CONFIG_MAP : VOX_CONFIG_SEQ, p->name, line);
      if (!n) return vox_errorf(VOX_ERR_NOMEM, "config: out of memory");
      const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
      vox_status st = parse_collection(p, n, is_map);
      if (st == VOX_OK) st = remember_anchor(p, anchor, n);
      if (st != VOX_OK) {
        vox_config_free(n);
        return st;
      }
      *out = n;
      return VOX_OK;
    }
    case YAML_ALIAS_EVENT: {
      for (int i = p->n_anchors - 1; i >= 0; i--)
        if (!strcmp(p->anchors[i].name, (const char *)ev->data.alias.anchor)) return vox_config_clone(p->anchors[i].node, out);
      return vox_errorf(VOX_ERR_PARSE, "%s:%d: unknown alias *%s", p->name, line, ev->data.alias.anchor);
    }
    default:
      return vox_errorf(VOX_ERR_PARSE, "%s:%d: unexpected YAML event", p->name, line);
  }
}

static vox_status parse_with(parser_state *p, vox_config **out) {
  vox_status st = VOX_OK;
  vox_config *root = NULL;
  yaml_event_t ev;
  bool done = false;
  while (!done && st == VOX_OK) {
    if (!yaml_parser_parse(&p->parser, &ev)) {
      st = yaml_fail(p);
      break;
    }
    switch (ev.type) {
      case YAML_STREAM_START_EVENT:
      case YAML_DOCUMENT_START_EVENT:
      case YAML_DOCUMENT_END_EVENT:
        break;
      case YAML_STREAM_END_EVENT:
        done = true;
        break;
      default:
        if (root) st = vox_errorf(VOX_ERR_PARSE, "%s:%zu: only one YAML document is allowed", p->name, ev.start_mark.line + 1);
        else st = parse_node(p, &ev, &root);
    }
    yaml_event_delete(&ev);
  }
  for (int i = 0; i < p->n_anchors; i++) free(p->anchors[i].name);
  yaml_parser_delete(&p->parser);
  if (st == VOX_OK && !root) root = node_new(VOX_CONFIG_MAP, p->name, 1);
  if (st == VOX_OK && root->kind != VOX_CONFIG_MAP) {
    st = vox_errorf(VOX_ERR_PARSE, "%s:%d: the top level must be a mapping of keys", p->name, root->line);
  }
  if (st != VOX_OK) {
    vox_config_free(root);
    return st;
  }
  *out = root;
  return VOX_OK;
}

vox_status vox_config_parse_string(const char *text, const char *name, vox_config **out) {
  parser_state p = {.name = name};
  if (!yaml_parser_initialize(&p.parser)) return vox_errorf(VOX_ERR_NOMEM, "config: cannot start the YAML parser");
  yaml_parser_set_input_string(&p.parser, (const unsigned char *)text, strlen(text));
  return parse_with(&p, out);
}

vox_status vox_config_parse_file(const char *path, vox_config **out) {
  FILE *f = fopen(path, "rb");
  if (!f) return vox_errorf(VOX_ERR_IO, "%s: cannot open config: %s", path, strerror(errno));
  parser_state p = {.name = path};
  if (!yaml_parser_initialize(&p.parser)) {
    fclose(f);
    return vox_errorf(VOX_ERR_NOMEM, "config: cannot start the YAML parser");
  }
  yaml_parser_set_input_file(&p.parser, f);
  vox_status st = parse_with(&p, out);
  fclose(f);
  return st;
}

/* ---- merge, extends, overrides ---------------------------------------------------------------------------- */

vox_status vox_config_merge(vox_config *base, vox_config *over) {
  if (base->kind != VOX_CONFIG_MAP || over->kind != VOX_CONFIG_MAP) {
    /* Replace base's content with over's, keeping base's key and place in its parent. */
    for (int i = 0; i < base->n_items; i++) vox_config_free(base->items[i]);
    free(base->items);
    free(base->scalar);
    free(base->file);
    base->kind = over->kind;
    base->scalar = over->scalar;
    base->quoted = over->quoted;
    base->file = over->file;
    base->line = over->line;
    base->items = over->items;
    base->n_items = over->n_items;
    base->cap_items = over->cap_items;
    for (int i = 0; i < base->n_items; i++) base->items[i]->parent = base;
    free(over->key);
    free(over);
    return VOX_OK;
  }
  for (int i = 0; i < over->n_items; i++) {
    vox_config *o = over->items[i];
    vox_config *b = map_find(base, o->key);
    if (b) {
      VOX_TRY(vox_config_merge(b, o));
    } else {
      VOX_TRY(node_append(base, o));
    }
  }
  free(over->items);
  free(over->key);
  free(over->scalar);
  free(over->file);
  free(over);
  return VOX_OK;
}

static vox_status load_with_extends(const char *path, int depth, vox_config **out) {
  if (depth > MAX_EXTENDS_DEPTH)
    return vox_errorf(VOX_ERR_PARSE, "%s: `extends` nested deeper than %d (a cycle?)", path, MAX_EXTENDS_DEPTH);
  vox_config *self = NULL;
  VOX_TRY(vox_config_parse_file(path, &self));
  vox_config *ext = map_find(self, "extends");
  if (!ext) {
    *out = self;
    return VOX_OK;
  }
  char dir_buf[PATH_MAX];
  snprintf(dir_buf, sizeof dir_buf, "%s", path);
  const char *dir = dirname(dir_buf);
  vox_config *merged = node_new(VOX_CONFIG_MAP, path, 1);
  vox_status st = merged ? VOX_OK : vox_errorf(VOX_ERR_NOMEM, "config: out of memory");
  int n = ext->kind == VOX_CONFIG_SEQ ? ext->n_items : 1;
  for (int i = 0; i < n && st == VOX_OK; i++) {
    vox_config *item = ext->kind == VOX_CONFIG_SEQ ? ext->items[i] : ext;
    if (item->kind != VOX_CONFIG_SCALAR) {
      st = vox_errorf(VOX_ERR_PARSE, "%s:%d: `extends` takes a file name or a list of file names", path, item->line);
      break;
    }
    char child_path[PATH_MAX];
    if (item->scalar[0] == '/') snprintf(child_path, sizeof child_path, "%s", item->scalar);
    else snprintf(child_path, sizeof child_path, "%s/%s", dir, item->scalar);
    vox_config *parent = NULL;
    st = load_with_extends(child_path, depth + 1, &parent);
    if (st != VOX_OK) st = vox_error_context(st, "%s:%d: in extends: ", path, item->line);
    else st = vox_config_merge(merged, parent);
  }
  if (st == VOX_OK) {
    map_remove(self, ext);
    st = vox_config_merge(merged, self);
    self = NULL;
  }
  vox_config_free(self);
  if (st != VOX_OK) {
    vox_config_free(merged);
    return st;
  }
  *out = merged;
  return VOX_OK;
}

static bool is_index(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s)) return false;
  return true;
}

/* A list item addressed by index ("stages.0") or by its `name` key ("stages.sft"), or NULL. */
static vox_config *seq_item(const vox_config *seq, const char *tok) {
  if (is_index(tok)) return atoi(tok) < seq->n_items ? seq->items[atoi(tok)] : NULL;
  for (int i = 0; i < seq->n_items; i++) {
    const vox_config *it = seq->items[i];
    const vox_config *name = it->kind == VOX_CONFIG_MAP ? map_find(it, "name") : NULL;
    if (name && name->kind == VOX_CONFIG_SCALAR && strcmp(name->scalar, tok) == 0) return seq->items[i];
  }
  return NULL;
}

vox_config *vox_config_get(const vox_config *c, const char *path) {
  if (!c) return NULL;
  if (!path || !*path) return (vox_config *)c;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", path);
  const vox_config *cur = c;
  for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
    if (cur->kind == VOX_CONFIG_MAP) cur = map_find(cur, tok);
    else if (cur->kind == VOX_CONFIG_SEQ) cur = seq_item(cur, tok);
    else return NULL;
    if (!cur) return NULL;
  }
  return (vox_config *)cur;
}

vox_status vox_config_apply_override(vox_config *root, const char *assignment) {
  bool add = assignment[0] == '+', del = assignment[0] == '~';
  const char *spec = add || del ? assignment + 1 : assignment;
  const char *eq = strchr(spec, '=');
  if (del ? eq != NULL : !eq)
    return vox_errorf(VOX_ERR_PARSE, "override '%s': expected key.path=value, +key.path=value or ~key.path", assignment);
  char path[512];
  size_t plen = del ? strlen(spec) : (size_t)(eq - spec);
  if (plen == 0 || plen >= sizeof path) return vox_errorf(VOX_ERR_PARSE, "override '%s': empty or too long key", assignment);
  memcpy(path, spec, plen);
  path[plen] = '\0';
  /* Parse the value as YAML so lists, maps and numbers keep their types: "lr=1e-4", "dims=[1,2]". */
  vox_config *value = NULL;
  if (!del) {
    char *doc = malloc(strlen(eq + 1) + 8);
    if (!doc) return vox_errorf(VOX_ERR_NOMEM, "config: out of memory");
    sprintf(doc, "v: %s", eq + 1);
    vox_status st = vox_config_parse_string(doc, "<override>", &value);
    free(doc);
    if (st != VOX_OK) return vox_error_context(st, "override '%s': ", assignment);
    vox_config *v = value->items[0];
    value->n_items = 0;
    vox_config_free(value);
    value = v;
  }
  vox_config *cur = root;
  char *save = NULL;
  char *tok = strtok_r(path, ".", &save);
  while (tok) {
    char *next = strtok_r(NULL, ".", &save);
    /* a list item by index or name ("stages.0.steps=6", "stages.sft.lora.rank=16"): step into it (or replace it
     * when it is the last key) */
    if (cur->kind == VOX_CONFIG_SEQ && seq_item(cur, tok) && (next || (!add && !del))) {
      cur = seq_item(cur, tok);
      if (!next) return vox_config_merge(cur, value);
      tok = next;
      continue;
    }
    if (cur->kind != VOX_CONFIG_MAP) {
      vox_config_free(value);
      return vox_errorf(VOX_ERR_INVALID, "override '%s': '%s' is inside a value that is not a mapping", assignment, tok);
    }
    vox_config *child = map_find(cur, tok);
    if (!next) {
      if (del) {
        if (!child) return vox_errorf(VOX_ERR_NOT_FOUND, "override '%s': no key to delete", assignment);
        map_remove(cur, child);
        return VOX_OK;
      }
      if (add && child) {
        vox_config_free(value);
        return vox_errorf(VOX_ERR_INVALID, "override '%s': key exists already (drop the +)", assignment);
      }
      if (!add && !child) {
        vox_config_free(value);
        return vox_errorf(VOX_ERR_NOT_FOUND, "override '%s': no such key (use +%s to add one)", assignment, spec);
      }
      free(value->key);
      value->key = strdup(tok);
      if (child) return vox_config_merge(child, value);
      return node_append(cur, value);
    }
    if (!child) {
      if (!add) {
        vox_config_free(value);
        return vox_errorf(VOX_ERR_NOT_FOUND, "override '%s': no key '%s' (use + to add)", assignment, tok);
      }
      child = node_new(VOX_CONFIG_MAP, "<override>", 0);
      child->key = strdup(tok);
      VOX_TRY(node_append(cur, child));
    }
    cur = child;
    tok = next;
  }
  vox_config_free(value);
  return VOX_OK;
}

/* ${a.b} anywhere in a scalar is replaced by the scalar at that absolute path; a scalar that is exactly one
 * reference to a map or list takes a copy of it. */
static vox_status resolve_node(vox_config *root, vox_config *n, int depth) {
  char b1[256], b2[64];
  if (depth > 32) return vox_errorf(VOX_ERR_PARSE, "%s: ${...} references nest too deep (a cycle?)", vox_config_where(n, b2, sizeof b2));
  if (n->kind == VOX_CONFIG_SCALAR && strstr(n->scalar, "${")) {
    char out[4096];
    size_t o = 0;
    const char *s = n->scalar;
    while (*s) {
      const char *start = strstr(s, "${");
      if (!start) {
        o += (size_t)snprintf(out + o, sizeof out - o, "%s", s);
        break;
      }
      const char *end = strchr(start, '}');
      if (!end)
        return vox_errorf(VOX_ERR_PARSE, "%s: key %s: unterminated ${ in '%s'", vox_config_where(n, b2, sizeof b2),
                          vox_config_path(n, b1, sizeof b1), n->scalar);
      o += (size_t)snprintf(out + o, sizeof out - o, "%.*s", (int)(start - s), s);
      char ref[256];
      snprintf(ref, sizeof ref, "%.*s", (int)(end - start - 2), start + 2);
      vox_config *target = vox_config_get(root, ref);
      if (!target)
        return vox_errorf(VOX_ERR_NOT_FOUND, "%s: key %s: ${%s} names no key", vox_config_where(n, b2, sizeof b2),
                          vox_config_path(n, b1, sizeof b1), ref);
      VOX_TRY(resolve_node(root, target, depth + 1));
      if (target->kind != VOX_CONFIG_SCALAR) {
        if (start == n->scalar && end[1] == '\0') { /* whole value is a reference to a subtree */
          vox_config *copy = NULL;
          VOX_TRY(vox_config_clone(target, &copy));
          free(copy->key);
          copy->key = NULL;
          return vox_config_merge(n, copy);
        }
        return vox_errorf(VOX_ERR_PARSE, "%s: key %s: ${%s} is not a scalar and cannot be part of a string",
                          vox_config_where(n, b2, sizeof b2), vox_config_path(n, b1, sizeof b1), ref);
      }
      o += (size_t)snprintf(out + o, sizeof out - o, "%s", target->scalar);
      s = end + 1;
    }
    free(n->scalar);
    n->scalar = strdup(out);
  }
  for (int i = 0; i < n->n_items; i++) VOX_TRY(resolve_node(root, n->items[i], depth));
  return VOX_OK;
}

vox_status vox_config_resolve_refs(vox_config *root) { return resolve_node(root, root, 0); }

vox_status vox_config_load(const char *path, int n_overrides, char *const *overrides, vox_config **out) {
  vox_config *root = NULL;
  VOX_TRY(load_with_extends(path, 0, &root));
  vox_status st = VOX_OK;
  for (int i = 0; i < n_overrides && st == VOX_OK; i++) st = vox_config_apply_override(root, overrides[i]);
  if (st == VOX_OK) st = vox_config_resolve_refs(root);
  if (st != VOX_OK) {
    vox_config_free(root);
    return st;
  }
  *out = root;
  return VOX_OK;
}

/* ---- typed reads ------------------------------------------------------------------------------------------ */

const char *vox_config_path(const vox_config *c, char *buf, int cap) {
  const char *parts[64];
  char idx[64][16];
  int n = 0;
  for (const vox_config *p = c; p && p->parent && n < 64; p = p->parent, n++) {
    if (p->key) parts[n] = p->key;
    else {
      int i = 0;
      while (i < p->parent->n_items && p->parent->items[i] != p) i++;
      snprintf(idx[n], sizeof idx[n], "%d", i);
      parts[n] = idx[n];
    }
  }
  int o = 0;
  buf[0] = '\0';
  for (int i = n - 1; i >= 0 && o < cap; i--) o += snprintf(buf + o, (size_t)(cap - o), i == n - 1 ? "%s" : ".%s", parts[i]);
  if (n == 0) snprintf(buf, (size_t)cap, "(top level)");
  return buf;
}

const char *vox_config_where(const vox_config *c, char *buf, int cap) {
  snprintf(buf, (size_t)cap, "%s:%d", c->file ? c->file : "?", c->line);
  return buf;
}

static vox_status type_error(const vox_config *n, const char *expected) {
  char b1[256], b2[256];
  return vox_errorf(VOX_ERR_PARSE, "%s: key %s: expected %s, got %s%s%s", vox_config_where(n, b2, sizeof b2),
                    vox_config_path(n, b1, sizeof b1), expected,
                    n->kind == VOX_CONFIG_MAP ? "a mapping" : n->kind == VOX_CONFIG_SEQ ? "a list" : n->kind == VOX_CONFIG_NULL ? "null" : "'",
                    n->kind == VOX_CONFIG_SCALAR ? n->scalar : "", n->kind == VOX_CONFIG_SCALAR ? "'" : "");
}

static vox_status missing_error(const vox_config *c, const char *path) {
  char b1[256], b2[256];
  return vox_errorf(VOX_ERR_NOT_FOUND, "%s: missing required key %s%s%s", vox_config_where(c, b2, sizeof b2),
                    c->parent ? vox_config_path(c, b1, sizeof b1) : "", c->parent ? "." : "", path);
}

vox_status vox_config_int(const vox_config *c, const char *path, int64_t dflt, int64_t *out) {
  vox_config *n = vox_config_get(c, path);
  if (!n || n->kind == VOX_CONFIG_NULL) {
    *out = dflt;
    return VOX_OK;
  }
  if (n->kind != VOX_CONFIG_SCALAR || n->quoted) return type_error(n, "an integer");
  char *end;
  errno = 0;
  long long v = strtoll(n->scalar, &end, 0);
  if (errno || *end || end == n->scalar) return type_error(n, "an integer");
  *out = v;
  return VOX_OK;
}

vox_status vox_config_float(const vox_config *c, const char *path, double dflt, double *out) {
  vox_config *n = vox_config_get(c, path);
  if (!n || n->kind == VOX_CONFIG_NULL) {
    *out = dflt;
    return VOX_OK;
  }
  if (n->kind != VOX_CONFIG_SCALAR || n->quoted) return type_error(n, "a number");
  char *end;
  errno = 0;
  double v = strtod(n->scalar, &end);
  if (errno || *end || end == n->scalar) return type_error(n, "a number");
  *out = v;
  return VOX_OK;
}

vox_status vox_config_bool(const vox_config *c, const char *path, bool dflt, bool *out) {
  vox_config *n = vox_config_get(c, path);
  if (!n || n->kind == VOX_CONFIG_NULL) {
    *out = dflt;
    return VOX_OK;
  }
  if (n->kind == VOX_CONFIG_SCALAR && !n->quoted) {
    const char *s = n->scalar;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "yes") || !strcmp(s, "on")) {
      *out = true;
      return VOX_OK;
    }
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "no") || !strcmp(s, "off")) {
      *out = false;
      return VOX_OK;
    }
  }
  return type_error(n, "true or false");
}

vox_status vox_config_string(const vox_config *c, const char *path, const char *dflt, const char **out) {
  vox_config *n = vox_config_get(c, path);
  if (!n || n->kind == VOX_CONFIG_NULL) {
    *out = dflt;
    return VOX_OK;
  }
  if (n->kind != VOX_CONFIG_SCALAR) return type_error(n, "a string");
  *out = n->scalar;
  return VOX_OK;
}

vox_status vox_config_int_req(const vox_config *c, const char *path, int64_t *out) {
  vox_config *n = vox_config_get(c, path);
  if (!n || n->kind == VOX_CONFIG_NULL) return missing_error(c, path);
  return vox_config_int(c, path, 0, out);
}
vox_status vox_config_float_req(const vox_config *c, const char *path, double *out) {
  vox_config *n = vox_config_get(c, path);
  if (!n || n->kind == VOX_CONFIG_NULL) return missing_error(c, path);
  return vox_config_float(c, path, 0, out);
}
vox_status vox_config_string_req(const vox_config *c, const char *path, const char **out) {
  vox_config *n = vox_config_get(c, path);
  if (!n || n->kind == VOX_CONFIG_NULL) return missing_error(c, path);
  return vox_config_string(c, path, NULL, out);
}

/* Levenshtein distance, for "did you mean" suggestions. */
static int edit_distance(const char *a, const char *b) {
  int la = (int)strlen(a), lb = (int)strlen(b);
  if (la > 63 || lb > 63) return 99;
  int d[64][64];
  for (int i = 0; i <= la; i++) d[i][0] = i;
  for (int j = 0; j <= lb; j++) d[0][j] = j;
  for (int i = 1; i <= la; i++)
    for (int j = 1; j <= lb; j++) {
      int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
  return d[la][lb];
}

vox_status vox_config_check_keys(const vox_config *c, const char *const *allowed) {
  char b1[256], b2[256];
  if (c->kind != VOX_CONFIG_MAP) return type_error(c, "a mapping");
  for (int i = 0; i < c->n_items; i++) {
    const char *key = c->items[i]->key;
    bool ok = false;
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int k = 0; allowed[k]; k++) {
      if (!strcmp(allowed[k], key)) ok = true;
      int d = edit_distance(key, allowed[k]);
      if (d < best_d) {
        best_d = d;
        best = allowed[k];
      }
    }
    if (!ok)
    {
      char hint[128] = "";
      if (best && best_d <= 3) snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
      return vox_errorf(VOX_ERR_PARSE, "%s: unknown key %s%s", vox_config_where(c->items[i], b2, sizeof b2),
                        vox_config_path(c->items[i], b1, sizeof b1), hint);
    }
  }
  return VOX_OK;
}

/* ---- emit ------------------------------------------------------------------------------------------------- */

typedef struct strbuf {
  char *data;
  size_t len, cap;
} strbuf;

static vox_status sb_add(strbuf *b, const char *s) {
  size_t n = strlen(s);
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->cap + n + 1) * 2;
    char *d = realloc(b->data, cap);
    if (!d) return vox_errorf(VOX_ERR_NOMEM, "config: out of memory");
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n + 1);
  b->len += n;
  return VOX_OK;
}

static bool needs_quotes(const char *s) {
  if (!*s) return true;
  if (strpbrk(s, ":#{}[],&*!|>'\"%@`\n") || isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1]))
    return true;
  return s[0] == '-' && (s[1] == ' ' || !s[1]);
}

static vox_status emit_scalar(strbuf *b, const vox_config *n) {
  if (n->kind == VOX_CONFIG_NULL) return sb_add(b, "null");
  if (!n->quoted && !needs_quotes(n->scalar)) return sb_add(b, n->scalar);
  VOX_TRY(sb_add(b, "\""));
  for (const char *s = n->scalar; *s; s++) {
    char esc[8] = {*s, 0};
    if (*s == '"' || *s == '\\') snprintf(esc, sizeof esc, "\\%c", *s);
    else if (*s == '\n') snprintf(esc, sizeof esc, "\\n");
    VOX_TRY(sb_add(b, esc));
  }
  return sb_add(b, "\"");
}

static vox_status emit(strbuf *b, const vox_config *n, int indent) {
  char pad[128];
  snprintf(pad, sizeof pad, "%*s", indent, "");
  for (int i = 0; i < n->n_items; i++) {
    const vox_config *c = n->items[i];
    VOX_TRY(sb_add(b, pad));
    if (n->kind == VOX_CONFIG_MAP) {
      VOX_TRY(sb_add(b, c->key));
      VOX_TRY(sb_add(b, ":"));
    } else {
      VOX_TRY(sb_add(b, "-"));
    }
    if ((c->kind == VOX_CONFIG_MAP || c->kind == VOX_CONFIG_SEQ) && c->n_items > 0) {
      VOX_TRY(sb_add(b, "\n"));
      VOX_TRY(emit(b, c, indent + 2));
    } else {
      VOX_TRY(sb_add(b, " "));
      if (c->kind == VOX_CONFIG_MAP) VOX_TRY(sb_add(b, "{}"));
      else if (c->kind == VOX_CONFIG_SEQ) VOX_TRY(sb_add(b, "[]"));
      else VOX_TRY(emit_scalar(b, c));
      VOX_TRY(sb_add(b, "\n"));
    }
  }
  return VOX_OK;
}

vox_status vox_config_to_yaml(const vox_config *c, char **out) {
  strbuf b = {0};
  vox_status st = sb_add(&b, "");
  if (st == VOX_OK) st = emit(&b, c, 0);
  if (st != VOX_OK) {
    free(b.data);
    return st;
  }
  *out = b.data;
  return VOX_OK;
}
