/* policy_cache.c — decoded policies per name (see policy_cache.h). */
#include "policy_cache.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "informer.h"
#include "policy.h"
#include "decode.h"
#include "strmap.h"

void policy_cache_state_free(void *v, void *ud) {
  (void)ud;
  struct policy_state *s = v;
  if (!s) return;
  free(s->rv);
  policy_free(s->decoded);
  free(s->decode_error);
  free(s);
}

/* The decoded form of a cached policy object, refreshed when its
 * resourceVersion moved. */
struct policy_state *policy_cache_state_for(struct controller *c, const char *name,
                                            const json_t *obj) {
  struct policy_state *s = strmap_get(c->policies, name);
  if (!s) {
    s = gpc_calloc(1, sizeof *s);
    strmap_put(c->policies, name, s);
  }
  const char *rv = decode_str(obj, "metadata", "resourceVersion", PJ_END);
  if (!rv) rv = "";
  if (s->rv && strcmp(s->rv, rv) == 0) return s;
  free(s->rv);
  s->rv = gpc_strdup(rv);
  policy_free(s->decoded);
  s->decoded = NULL;
  free(s->decode_error);
  s->decode_error = NULL;
  struct gpc_error err = {0};
  if (policy_from_json(obj, &s->decoded, &err) != GPC_OK) {
    s->decoded = NULL;
    s->decode_error = gpc_strdup(err.msg);
  }
  return s;
}

void policy_cache_collect(struct controller *c, struct policy_list *out) {
  memset(out, 0, sizeof *out);
  struct informer_iter it;
  const char *key;
  const void *obj;
  informer_iter_init(&it, c->inf[INF_POLICY]);
  while (informer_next(&it, &key, &obj)) {
    const char *name = decode_str(obj, "metadata", "name", PJ_END);
    if (!name) continue;
    struct policy_state *s = policy_cache_state_for(c, name, obj);
    if (!s->decoded) continue;
    gpc_grow((void **)&out->v, &out->cap, out->n + 1, sizeof *out->v);
    out->v[out->n++] = s->decoded;
  }
}
