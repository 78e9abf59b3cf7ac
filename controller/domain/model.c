/* model.c — label arena and lifecycle of the projected model structs. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* Layout of one allocation: the pairs "k\0v\0" sorted by key (len bytes),
 * then, 4-byte aligned, `count` uint32 offsets of the keys for binary
 * search. Sorted storage also makes equality independent of the order the
 * API server happened to send. */
static uint32_t *offsets(const struct gpc_labels *l) {
  return (uint32_t *)(void *)(l->buf + ((l->len + 3u) & ~3u));
}

struct kv {
  const char *k;
  const json_t *v;
};

static int cmp_kv(const void *a, const void *b) {
  return strcmp(((const struct kv *)a)->k, ((const struct kv *)b)->k);
}

void gpc_labels_set_json(struct gpc_labels *l, const json_t *obj) {
  gpc_labels_release(l);
  if (!json_is_object(obj)) return;
  const char *k;
  json_t *v;
  size_t need = 0, n = 0;
  struct kv *pairs = gpc_malloc((json_object_size(obj) + 1) * sizeof(*pairs));
  json_object_foreach((json_t *)obj, k, v) {
    if (!json_is_string(v)) continue;
    need += strlen(k) + 1 + json_string_length(v) + 1;
    pairs[n++] = (struct kv){k, v};
  }
  if (n == 0) {
    free(pairs);
    return;
  }
  qsort(pairs, n, sizeof(*pairs), cmp_kv);
  l->buf = gpc_malloc(((need + 3u) & ~(size_t)3u) + n * sizeof(uint32_t));
  l->count = (uint32_t)n;
  l->len = (uint32_t)need;
  uint32_t *off = offsets(l), pos = 0;
  for (size_t i = 0; i < n; i++) {
    size_t kl = strlen(pairs[i].k) + 1, vl = json_string_length(pairs[i].v) + 1;
    off[i] = pos;
    memcpy(l->buf + pos, pairs[i].k, kl);
    memcpy(l->buf + pos + kl, json_string_value(pairs[i].v), vl);
    pos += (uint32_t)(kl + vl);
  }
  free(pairs);
}

bool gpc_labels_next(const struct gpc_labels *l, uint32_t *pos, const char **key,
                     const char **value) {
  if (!l->buf || *pos >= l->len) return false;
  *key = l->buf + *pos;
  *value = *key + strlen(*key) + 1;
  *pos = (uint32_t)(*value + strlen(*value) + 1 - l->buf);
  return true;
}

const char *gpc_labels_get(const struct gpc_labels *l, const char *key) {
  if (!l->buf) return NULL;
  const uint32_t *off = offsets(l);
  size_t lo = 0, hi = l->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const char *k = l->buf + off[mid];
    int c = strcmp(k, key);
    if (c == 0) return k + strlen(k) + 1;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

const char *gpc_labels_lookup(const void *labels, const char *key) {
  return gpc_labels_get(labels, key);
}

bool gpc_labels_equal(const struct gpc_labels *a, const struct gpc_labels *b) {
  if (a->count != b->count || a->len != b->len) return false;
  return a->len == 0 || memcmp(a->buf, b->buf, a->len) == 0;
}

json_t *gpc_labels_to_json(const struct gpc_labels *l) {
  json_t *o = json_object();
  const char *k, *v;
  for (uint32_t p = 0; gpc_labels_next(l, &p, &k, &v);)
    json_object_set_new(o, k, json_string(v));
  return o;
}

void gpc_labels_release(struct gpc_labels *l) {
  free(l->buf);
  memset(l, 0, sizeof(*l));
}

static char *empty(void) {
  return gpc_strdup("");
}

void gpc_node_init(struct gpc_node *n) {
  memset(n, 0, sizeof(*n));
  n->name = empty();
  n->uid = empty();
  n->resource_version = empty();
  n->creation_timestamp = empty();
  n->down_message = empty();
  n->upg_target = empty();
  n->upg_reason = empty();
  n->driver_pod = empty();
  n->gpu_allocatable = -1;
}

void gpc_node_clear_taints(struct gpc_node *n) {
  for (size_t i = 0; i < n->n_taints; i++) {
    free(n->taints[i].key);
    free(n->taints[i].value);
  }
  free(n->taints);
  n->taints = NULL;
  n->n_taints = 0;
}

void gpc_node_release(struct gpc_node *n) {
  free(n->name);
  free(n->uid);
  free(n->resource_version);
  free(n->creation_timestamp);
  free(n->down_message);
  free(n->upg_target);
  free(n->upg_reason);
  free(n->driver_pod);
  gpc_node_clear_taints(n);
  gpc_labels_release(&n->labels);
  memset(n, 0, sizeof(*n));
}

void gpc_daemonset_init(struct gpc_daemonset *d) {
  memset(d, 0, sizeof(*d));
  d->name = empty();
  d->namespace = empty();
  d->policy = empty();
  d->render_hash = empty();
  d->operand = -1;
}

void gpc_daemonset_release(struct gpc_daemonset *d) {
  free(d->name);
  free(d->namespace);
  free(d->policy);
  free(d->render_hash);
  memset(d, 0, sizeof(*d));
}

void gpc_pod_init(struct gpc_pod *p) {
  memset(p, 0, sizeof(*p));
  p->name = empty();
  p->namespace = empty();
  p->node_name = empty();
  p->policy = empty();
  p->phase = empty();
  p->reason = empty();
  p->message = empty();
  p->owner = empty();
  p->operand = -1;
}

void gpc_pod_release(struct gpc_pod *p) {
  free(p->name);
  free(p->namespace);
  free(p->node_name);
  free(p->policy);
  free(p->phase);
  free(p->reason);
  free(p->message);
  free(p->owner);
  memset(p, 0, sizeof(*p));
}
