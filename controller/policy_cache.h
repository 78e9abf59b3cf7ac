/* policy_cache.h — the controller's decode cache of ClusterGPUPolicy objects.
 *
 * Decoding a policy (policy_from_json) is kept per name and redone only when
 * the object's resourceVersion moves. The cache lives in c->policies (name ->
 * struct policy_state); entries are dropped by reconcile_gone() through
 * policy_cache_state_free(). Internal to the controller (controller_internal.h).
 */
#ifndef GPC_POLICY_CACHE_H
#define GPC_POLICY_CACHE_H

#include <jansson.h>
#include <stddef.h>

#include "controller_internal.h"

/* strmap_free_cb for c->policies: frees one struct policy_state (NULL ok). */
void policy_cache_state_free(void *v, void *ud);

/* The entry for policy `name` whose cached object is `obj` (borrowed),
 * created or refreshed when its resourceVersion moved. Never NULL: an
 * invalid policy has decoded == NULL and decode_error set. The entry is
 * owned by the cache. */
struct policy_state *policy_cache_state_for(struct controller *c, const char *name,
                                            const json_t *obj);

/* Every valid, cached policy (borrowed pointers into the decode cache). */
struct policy_list {
  const struct gpc_policy **v;
  size_t n, cap;
};

/* Fills `out` with every cached policy that decodes; the caller frees
 * out->v (the policies themselves stay the cache's). */
void policy_cache_collect(struct controller *c, struct policy_list *out);

#endif
