/* model.c — label arena and lifecycle of the projected model structs. */
#include "model.h"

#include <string.h>

#include "alloc.h"

void gpc_labels_set_json(struct gpc_labels *l, const json_t *obj) {
  gpc_labels_release(l);
  if (!json_is_object(obj)) return;
  const char *k;
  json_t *v;
  size_t need = 0;
  json_object_foreach((json_t *)obj, k, v) {
    if (json_is_string(v)) need += strlen(k) + 1 + json_string_length(v) + 1;
  }
  if (need == 0) return;
  l->buf = gpc_malloc(need);
  json_object_foreach((json_t *)obj, k, v) {
    if (!json_is_string(v)) continue;
    size_t kl = strlen(k) + 1, vl = json_string_length(v) + 1;
    memcpy(l->buf + l->len, k, kl);
    memcpy(l->buf + l->len + kl, json_string_value(v), vl);
    l->len += (uint32_t)(kl + vl);
    l->count++;
  }
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
  const char *k, *v;
  for (uint32_t p = 0; gpc_labels_next(l, &p, &k, &v);)
    if (strcmp(k, key) == 0) return v;
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
  n->gpu_allocatable = -1;
}

void gpc_node_release(struct gpc_node *n) {
  free(n->name);
  free(n->uid);
  free(n->resource_version);
  free(n->creation_timestamp);
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
  memset(p, 0, sizeof(*p));
}
