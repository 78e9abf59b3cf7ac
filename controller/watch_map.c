/* watch_map.c — informer events and apply completions -> workqueue keys
 * (see watch_map.h). */
#include "watch_map.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gpu_labels.h"
#include "informer.h"
#include "log.h"
#include "loop.h"
#include "model.h"
#include "plan.h"
#include "policy.h"
#include "policy_cache.h"
#include "decode.h"
#include "strmap.h"
#include "workqueue.h"

#define COMP "controller" /* log component, one for every file of the controller */

#define MANAGED_SELECTOR GPC_LABEL_MANAGED_BY "=" GPC_MANAGED_BY

void watch_map_enqueue(struct controller *c, const char *policy) {
  if (policy && *policy && !c->stopped) workqueue_add(c->queue, policy);
}

void watch_map_enqueue_all(struct controller *c) {
  struct informer_iter it;
  const char *key;
  const void *obj;
  informer_iter_init(&it, c->inf[INF_POLICY]);
  while (informer_next(&it, &key, &obj))
    watch_map_enqueue(c, decode_str(obj, "metadata", "name", PJ_END));
}

/* A node concerns the policy named by its label and every policy whose
 * node selection matches it (it may be about to claim or lose it). */
static void enqueue_for_node(struct controller *c, const struct gpc_node *n) {
  watch_map_enqueue(c, gpc_labels_get(&n->labels, GPC_LABEL_POLICY));
  struct policy_list pols;
  policy_cache_collect(c, &pols);
  for (size_t i = 0; i < pols.n; i++)
    if (plan_node_matches(pols.v[i], n)) watch_map_enqueue(c, pols.v[i]->name);
  free(pols.v);
}

/* A policy selecting on a label key the node projections dropped: list the
 * nodes again with the wider filter (rare: a new selector key). */
static void on_relist_timer(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)id;
  struct controller *c = ud;
  c->relist_timer = 0;
  if (c->stopped) return;
  struct gpc_error err = {0};
  struct informer *fresh = watch_map_make_informer(c, INF_NODE, &err);
  if (!fresh) {
    log_error(COMP, "node informer", KV_S("error", err.msg));
    return;
  }
  log_info(COMP, "node selector keys changed, listing nodes again",
           KV_I("keys", strmap_size(c->label_keys)));
  informer_free(c->inf[INF_NODE]);
  c->inf[INF_NODE] = fresh;
  c->all_synced = false;
  informer_start(fresh);
}

static void add_label_key(const char *key, void *ud) {
  struct controller *c = ud;
  if (strncmp(key, GPC_LABEL_PREFIX, strlen(GPC_LABEL_PREFIX)) == 0 ||
      strmap_get(c->label_keys, key))
    return;
  strmap_put(c->label_keys, key, (void *)1);
  c->keys_added = true;
}

static void note_selector_keys(struct controller *c, const json_t *policy) {
  c->keys_added = false;
  decode_selector_keys(policy, add_label_key, c);
  if (c->keys_added && c->dependents_started && !c->relist_timer && !c->stopped)
    c->relist_timer = gpc_loop_add_timer(c->cfg.loop, 0, on_relist_timer, c);
}

static void on_policy_add(struct informer *inf, const char *key, const void *obj, void *ud) {
  note_selector_keys(ud, obj);
  (void)inf;
  (void)key;
  (void)obj;
  /* A new policy can take nodes from (or yield them to) the others. */
  watch_map_enqueue_all(ud);
}

static void observed(struct controller *c, const char *kind, const char *name, const char *rv);

static void on_policy_update(struct informer *inf, const char *key, const void *old,
                             const void *cur, void *ud) {
  (void)inf;
  (void)key;
  const char *name = decode_str(cur, "metadata", "name", PJ_END);
  const char *rv = decode_str(cur, "metadata", "resourceVersion", PJ_END);
  observed(ud, "status", name, rv);
  observed(ud, "policy", name, rv);
  note_selector_keys(ud, cur);
  if (decode_policy_changed(old, cur)) watch_map_enqueue_all(ud);
}

static void on_policy_delete(struct informer *inf, const char *key, const void *old, void *ud) {
  (void)inf;
  (void)key;
  struct controller *c = ud;
  const char *name = decode_str(old, "metadata", "name", PJ_END);
  watch_map_enqueue_all(c);
  watch_map_enqueue(c, name); /* cleans up labels if the finalizer was bypassed */
}

static void on_node_add(struct informer *inf, const char *key, const void *obj, void *ud) {
  (void)inf;
  (void)key;
  enqueue_for_node(ud, obj);
}

/* Lets apply recognise the echo of its own write to `kind/name`. */
static void observed(struct controller *c, const char *kind, const char *name, const char *rv) {
  if (!name || !rv) return;
  char *key = gpc_asprintf("%s/%s", kind, name);
  apply_observed(c->apply, key, rv);
  free(key);
}

static void on_node_update(struct informer *inf, const char *key, const void *old, const void *cur,
                           void *ud) {
  (void)inf;
  (void)key;
  const struct gpc_node *n = cur;
  observed(ud, "node", n->name, n->resource_version);
  if (!decode_node_changed(old, cur)) return;
  enqueue_for_node(ud, old);
  enqueue_for_node(ud, cur);
}

static void on_node_delete(struct informer *inf, const char *key, const void *old, void *ud) {
  (void)inf;
  (void)key;
  struct controller *c = ud;
  const struct gpc_node *n = old;
  enqueue_for_node(c, n);
  /* What we wrote to a node that is gone is of no use: nodes come and go. */
  char *k = gpc_asprintf("node/%s", n->name);
  apply_forget(c->apply, k);
  free(k);
}

static void on_ds_add(struct informer *inf, const char *key, const void *obj, void *ud) {
  (void)inf;
  (void)key;
  watch_map_enqueue(ud, ((const struct gpc_daemonset *)obj)->policy);
}

static void on_ds_update(struct informer *inf, const char *key, const void *old, const void *cur,
                         void *ud) {
  (void)inf;
  (void)key;
  if (!decode_daemonset_changed(old, cur)) return;
  watch_map_enqueue(ud, ((const struct gpc_daemonset *)old)->policy);
  watch_map_enqueue(ud, ((const struct gpc_daemonset *)cur)->policy);
}

static void on_ds_delete(struct informer *inf, const char *key, const void *old, void *ud) {
  (void)inf;
  (void)key;
  watch_map_enqueue(ud, ((const struct gpc_daemonset *)old)->policy);
}

static void on_pod_add(struct informer *inf, const char *key, const void *obj, void *ud) {
  (void)inf;
  (void)key;
  watch_map_enqueue(ud, ((const struct gpc_pod *)obj)->policy);
}

static void on_pod_update(struct informer *inf, const char *key, const void *old, const void *cur,
                          void *ud) {
  (void)inf;
  (void)key;
  if (!decode_pod_changed(old, cur)) return;
  watch_map_enqueue(ud, ((const struct gpc_pod *)old)->policy);
  watch_map_enqueue(ud, ((const struct gpc_pod *)cur)->policy);
}

static void on_pod_delete(struct informer *inf, const char *key, const void *old, void *ud) {
  (void)inf;
  (void)key;
  watch_map_enqueue(ud, ((const struct gpc_pod *)old)->policy);
}

static void on_synced(struct informer *inf, void *ud) {
  struct controller *c = ud;
  if (inf == c->inf[INF_POLICY] && !c->dependents_started && !c->stopped) {
    c->dependents_started = true;
    for (int i = INF_NODE; i < INF_COUNT; i++)
      informer_start(c->inf[i]);
  }
  for (int i = 0; i < INF_COUNT; i++)
    if (!informer_synced(c->inf[i])) return;
  if (!c->all_synced) log_info(COMP, "caches synced");
  c->all_synced = true;
  watch_map_enqueue_all(c);
}

/* ---- projections for the informers ---------------------------------- */

static void *proj_policy(const json_t *obj, void *ud) {
  (void)ud;
  return json_incref((json_t *)obj);
}
static void free_policy(void *p, void *ud) {
  (void)ud;
  json_decref(p);
}
static bool keep_label(const char *key, void *ud) {
  struct controller *c = ud;
  return strncmp(key, GPC_LABEL_PREFIX, strlen(GPC_LABEL_PREFIX)) == 0 ||
         strmap_get(c->label_keys, key) != NULL;
}

static void *proj_node(const json_t *obj, void *ud) {
  return decode_node_new_filtered(obj, keep_label, ud);
}
static void free_node(void *p, void *ud) {
  (void)ud;
  decode_node_free(p);
}
static void *proj_ds(const json_t *obj, void *ud) {
  (void)ud;
  return decode_daemonset_new(obj);
}
static void free_ds(void *p, void *ud) {
  (void)ud;
  decode_daemonset_free(p);
}
static void *proj_pod(const json_t *obj, void *ud) {
  (void)ud;
  return decode_pod_new(obj);
}
static void free_pod(void *p, void *ud) {
  (void)ud;
  decode_pod_free(p);
}

/* ---- apply completions ---------------------------------------------- */

void watch_map_apply_done(const struct apply_completion *comp, void *ud) {
  struct controller *c = ud;
  if (c->writes_throttled && apply_in_flight(c->apply) <= MAX_NODE_WRITES_IN_FLIGHT / 2) {
    c->writes_throttled = false;
    watch_map_enqueue_all(c);
  }
  for (size_t i = 0; i < comp->n_waiters; i++)
    watch_map_enqueue(c, comp->waiters[i]);
  if (comp->kind == APPLY_KIND_PROBE) return; /* the waiters (issuer included) were queued */
  if (comp->rc == GPC_OK) {
    /* Deletes finish a cleanup step the watch may not report to us as a
     * change of the policy: look again. A write that failed before and
     * went through now changes what the status says. */
    if (comp->kind == APPLY_KIND_DELETE || comp->recovered) watch_map_enqueue(c, comp->policy);
    return;
  }
  if (c->stopped) return;
  /* Reconcile now: it counts the error, shows it in the status when it is
   * a refusal, and requeues the policy for when apply lets the object be
   * written again (the backoff is apply's, per object). */
  watch_map_enqueue(c, comp->policy);
}

static void count_write(struct controller *c, enum apply_kind k, const char *key, void *ud);

void watch_map_apply_sent(enum apply_kind kind, const char *key, void *ud) {
  count_write(ud, kind, key, ud);
}

static void count_write(struct controller *c, enum apply_kind k, const char *key, void *ud) {
  (void)ud;
  if ((unsigned)k < sizeof c->stats.writes / sizeof c->stats.writes[0]) c->stats.writes[k]++;
  log_debug(COMP, "write", KV_S("kind", apply_kind_name(k)), KV_S("key", key));
}

struct informer *watch_map_make_informer(struct controller *c, int i, struct gpc_error *err) {
  struct {
    const char *group, *version, *resource, *ns, *selector;
    informer_project_cb project;
    informer_free_cb free_proj;
    informer_add_cb add;
    informer_update_cb update;
    informer_delete_cb del;
  } defs[INF_COUNT] = {
      {GPC_POLICY_GROUP, GPC_POLICY_VERSION, GPC_POLICY_PLURAL, NULL, NULL, proj_policy,
       free_policy, on_policy_add, on_policy_update, on_policy_delete},
      {"", "v1", "nodes", NULL, NULL, proj_node, free_node, on_node_add, on_node_update,
       on_node_delete},
      {"apps", "v1", "daemonsets", c->namespace, MANAGED_SELECTOR, proj_ds, free_ds, on_ds_add,
       on_ds_update, on_ds_delete},
      {"", "v1", "pods", c->namespace, MANAGED_SELECTOR, proj_pod, free_pod, on_pod_add,
       on_pod_update, on_pod_delete},
  };
  struct informer_config ic = {
      .group = defs[i].group,
      .version = defs[i].version,
      .resource = defs[i].resource,
      .namespace = defs[i].ns,
      .label_selector = defs[i].selector,
      .project = defs[i].project,
      .free_proj = defs[i].free_proj,
      .on_add = defs[i].add,
      .on_update = defs[i].update,
      .on_delete = defs[i].del,
      .on_synced = on_synced,
      .ud = c,
      /* LIST pages are decoded item by item, so the page size does not
       * show in peak RSS (B2 measured in docs/client.md). */
      .page_size = INFORMER_PAGE_LIMIT,
  };
  if (c->cfg.watch_timeout_s > 0) {
    ic.watch_min_s = c->cfg.watch_timeout_s;
    ic.watch_max_s = c->cfg.watch_timeout_s + 1;
  }
  return informer_new(c->cfg.client, c->cfg.loop, &ic, err);
}

struct strmap *watch_map_label_keys_new(void) {
  static const char *const detection[] = {GPC_GPU_PRESENT_LABELS, GPC_GPU_CLOUD_LABELS};
  struct strmap *m = strmap_new();
  for (size_t i = 0; i < sizeof detection / sizeof detection[0]; i++)
    strmap_put(m, detection[i], (void *)1);
  return m;
}

void watch_map_stop(struct controller *c) {
  if (c->relist_timer) gpc_loop_cancel_timer(c->cfg.loop, c->relist_timer);
  c->relist_timer = 0;
}
