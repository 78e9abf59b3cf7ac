/* controller_upgrade.c — the workload cache and upgrade_run() wiring (see
 * controller_upgrade.h). */
#include "controller_upgrade.h"

#include <stdlib.h>
#include <time.h>

#include "alloc.h"
#include "event_recorder.h"
#include "informer.h"
#include "log.h"
#include "plan.h"
#include "policy.h"
#include "policy_cache.h"
#include "status.h"
#include "upgrade.h"
#include "upgrade_run.h"
#include "watch_map.h"
#include "workqueue.h"

#define COMP "controller" /* log component, one for every file of the controller */

static void *proj_work(const json_t *obj, void *ud) {
  (void)ud;
  return upgrade_workload_new(obj);
}
static void free_work(void *p, void *ud) {
  (void)ud;
  upgrade_workload_free(p);
}

/* A pod matters to the policy owning its node. */
static void enqueue_work(struct controller *c, const struct gpc_workload *w) {
  if (!*w->node) return;
  const struct gpc_node *n = informer_get(c->inf[INF_NODE], w->node);
  if (n) watch_map_enqueue(c, gpc_labels_get(&n->labels, GPC_LABEL_POLICY));
}
static void on_work_add(struct informer *inf, const char *key, const void *obj, void *ud) {
  (void)inf;
  (void)key;
  enqueue_work(ud, obj);
}
static void on_work_update(struct informer *inf, const char *key, const void *old, const void *cur,
                           void *ud) {
  (void)inf;
  (void)key;
  if (!upgrade_workload_changed(old, cur)) return;
  enqueue_work(ud, old);
  enqueue_work(ud, cur);
}
static void on_work_delete(struct informer *inf, const char *key, const void *old, void *ud) {
  (void)inf;
  (void)key;
  enqueue_work(ud, old);
}
static void on_work_synced(struct informer *inf, void *ud) {
  (void)inf;
  watch_map_enqueue_all(ud);
}

/* True once the workload cache has listed; starts it on first use. */
static bool work_cache_ready(struct controller *c) {
  if (c->work_inf) return informer_synced(c->work_inf);
  struct informer_config ic = {
      .version = "v1",
      .resource = "pods",
      .project = proj_work,
      .free_proj = free_work,
      .on_add = on_work_add,
      .on_update = on_work_update,
      .on_delete = on_work_delete,
      .on_synced = on_work_synced,
      .ud = c,
      .page_size = INFORMER_PAGE_LIMIT,
  };
  if (c->cfg.watch_timeout_s > 0) {
    ic.watch_min_s = c->cfg.watch_timeout_s;
    ic.watch_max_s = c->cfg.watch_timeout_s + 1;
  }
  struct gpc_error err = {0};
  c->work_inf = informer_new(c->cfg.client, c->cfg.loop, &ic, &err);
  if (!c->work_inf) {
    log_error(COMP, "workload informer", KV_S("error", err.msg));
    return false;
  }
  log_info(COMP, "starting the workload pod cache (driver upgrades)");
  informer_start(c->work_inf);
  return false;
}

void controller_upgrade_release_idle(struct controller *c) {
  if (!c->work_inf) return;
  struct policy_list pols;
  policy_cache_collect(c, &pols);
  bool wanted = false;
  for (size_t i = 0; i < pols.n && !wanted; i++)
    wanted = !pols.v[i]->deleting && pols.v[i]->driver_upgrade.auto_upgrade;
  free(pols.v);
  if (wanted) return;
  log_info(COMP, "stopping the workload pod cache (no policy upgrades drivers)");
  informer_free(c->work_inf);
  c->work_inf = NULL;
}

void controller_upgrade_reconcile(struct controller *c, const json_t *obj,
                                  const struct gpc_policy *p, const struct gpc_plan *pl,
                                  struct snapshot *snap, json_t *st, const json_t *prev,
                                  int64_t generation) {
  bool synced = p->driver_upgrade.auto_upgrade && work_cache_ready(c);
  const struct gpc_workload **work = NULL;
  size_t n_work = 0, cap = 0;
  if (synced) {
    struct informer_iter it;
    const char *key;
    const void *w;
    informer_iter_init(&it, c->work_inf);
    while (informer_next(&it, &key, &w)) {
      gpc_grow((void **)&work, &cap, n_work + 1, sizeof *work);
      work[n_work++] = w;
    }
  }
  struct event_about e = {c, obj};
  int64_t now = (int64_t)time(NULL);
  struct upgrade_run_in in = {
      .apply = c->apply,
      .policy = p,
      .plan = pl,
      .nodes = snap->nodes,
      .n_nodes = snap->n_nodes,
      .ds = snap->ds,
      .n_ds = snap->n_ds,
      .pods = snap->pods,
      .n_pods = snap->n_pods,
      .work = (const struct gpc_workload *const *)work,
      .n_work = n_work,
      .work_synced = synced,
      .now = now,
      .event = event_recorder_emit,
      .ud = &e,
  };
  struct upgrade_run_out out;
  upgrade_run(&in, &out);
  free(work);
  if (out.active) {
    status_set_driver_upgrade(st, prev, generation, out.status, out.halted, out.in_progress,
                              out.message, time(NULL));
  } else if (p->driver_upgrade.auto_upgrade && json_object_get(prev, "driverUpgrade")) {
    /* Waiting for the caches or the driver DaemonSets: keep what was shown. */
    json_object_set(st, "driverUpgrade", json_object_get(prev, "driverUpgrade"));
  }
  if (c->obs.upgrading && (out.active || !p->driver_upgrade.auto_upgrade))
    c->obs.upgrading(p->name, out.active ? out.counts : NULL, GPC_UPG_COUNT, c->obs.ud);
  if (out.recheck_at > now)
    workqueue_add_after(c->queue, p->name, (uint64_t)(out.recheck_at - now) * 1000 + 100);
  /* A step held back until our last node write shows in the cache: the
   * write's own watch event may have come before its response. */
  if (out.stale) workqueue_add_after(c->queue, p->name, 1000);
  upgrade_run_release(&out);
}
