/* watch_map.h — what puts policy names into the controller's workqueue
 * (internal to the controller).
 *
 * Owns the informer configurations (resource, label selector, projection,
 * event callbacks) and the mapping of their events to the policies to
 * reconcile: a node to its owner label and every policy whose selection
 * matches it, a DaemonSet or pod to its gpupolicy.dev/policy label, a policy
 * change to every policy. Also the node label keys the node projections keep
 * (c->label_keys: GPU detection plus every key a nodeSelector reads), and the
 * node re-list when a policy selects on a key not kept yet. Apply
 * completions map to their policy and waiters here too.
 *
 * Nothing here fails except watch_map_make_informer(), which returns NULL
 * with `err` set (informer_new's error).
 */
#ifndef GPC_WATCH_MAP_H
#define GPC_WATCH_MAP_H

#include "apply.h"
#include "controller_internal.h"
#include "errors.h"

/* Queues `policy` (borrowed; NULL or "" is ignored) unless stopped. */
void watch_map_enqueue(struct controller *c, const char *policy);
/* Queues every cached policy. */
void watch_map_enqueue_all(struct controller *c);

/* A new informer (INF_POLICY ... INF_POD) with the controller's callbacks,
 * not started; the caller owns it (informer_free). NULL on error. */
struct informer *watch_map_make_informer(struct controller *c, int i, struct gpc_error *err);
/* A new map of the label keys node projections always keep (GPU
 * detection); the caller owns it (strmap_free with no destructor). */
struct strmap *watch_map_label_keys_new(void);
/* Cancels a pending node re-list (controller_stop). */
void watch_map_stop(struct controller *c);

/* apply_config callbacks (ud: the controller). */
void watch_map_apply_done(const struct apply_completion *comp, void *ud);
void watch_map_apply_sent(enum apply_kind kind, const char *key, void *ud);

#endif
