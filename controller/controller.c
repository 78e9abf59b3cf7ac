/* controller.c — informers → workqueue → reconcile (see controller.h).
 *
 * Lifecycle and wiring only; the concerns live beside it, sharing
 * controller_internal.h: policy_cache (decoded policies), watch_map
 * (informers and their events → workqueue keys), reconcile (one policy's
 * plan executed), controller_upgrade (driver upgrade wiring),
 * event_recorder (Event writes), heap_trim (malloc_trim timer). */
#include "controller.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "apply.h"
#include "controller_internal.h"
#include "event_recorder.h"
#include "events.h"
#include "heap_trim.h"
#include "informer.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "policy_cache.h"
#include "reconcile.h"
#include "strmap.h"
#include "watch_map.h"
#include "workqueue.h"

#define COMP "controller" /* log component, one for every file of the controller */

#define RETRY_MIN_MS 500u

static void process_queue(struct workqueue *q, void *ud) {
  struct controller *c = ud;
  const char *key;
  while (!c->stopped && (key = workqueue_get(q)) != NULL) {
    if (!c->all_synced || !c->leader) {
      /* Nothing is decided on a partial cache; on sync/leadership every
       * policy is queued again. */
      workqueue_done(q, key);
      continue;
    }
    uint64_t t0 = gpc_loop_now_ms();
    heap_trim_schedule(c);
    uint64_t retry_at = 0;
    bool ok = reconcile(c, key, &retry_at);
    double secs = (double)(gpc_loop_now_ms() - t0) / 1000.0;
    c->stats.reconciles++;
    if (!ok) c->stats.reconcile_errors++;
    if (c->obs.reconciled) c->obs.reconciled(key, ok ? "success" : "error", secs, c->obs.ud);
    log_debug(COMP, "reconciled", KV_S("policy", key), KV_D("seconds", secs));
    if (ok) workqueue_forget(q, key);
    char *k = gpc_strdup(key);
    workqueue_done(q, k);
    if (!ok || retry_at) {
      /* Again when apply lets the failing (or PDB-held) write go: its
       * backoff, per object; a write in flight requeues the policy when it
       * completes, the cap is a safety net. */
      uint64_t now = gpc_loop_now_ms();
      uint64_t wait = retry_at ? (retry_at > now ? retry_at - now : 0) : APPLY_RETRY_CAP_MS;
      if (wait < RETRY_MIN_MS) wait = RETRY_MIN_MS; /* never a hot loop */
      workqueue_add_retry_after(q, k, wait);
    }
    free(k);
  }
}

/* ---- lifecycle -------------------------------------------------------- */

struct controller *controller_new(const struct controller_config *cfg, struct gpc_error *err) {
  if (!cfg->loop || !cfg->client || !cfg->templates || !cfg->namespace) {
    gpc_fail(err, GPC_E_INVAL, "controller: loop, client, templates and namespace are required");
    return NULL;
  }
  struct controller *c = gpc_calloc(1, sizeof *c);
  c->cfg = *cfg;
  c->namespace = gpc_strdup(cfg->namespace);
  c->cfg.namespace = c->namespace;
  c->leader = true;
  c->policies = strmap_new();
  c->queue = workqueue_new(cfg->loop, 100, 60000, process_queue, c);
  c->events = events_new(GPC_FIELD_MANAGER, cfg->identity);
  struct apply_config ac = {
      .client = cfg->client, .done = watch_map_apply_done, .ud = c, .sent = watch_map_apply_sent};
  c->apply = apply_new(&ac);

  c->label_keys = watch_map_label_keys_new();
  for (int i = 0; i < INF_COUNT; i++) {
    c->inf[i] = watch_map_make_informer(c, i, err);
    if (!c->inf[i]) {
      controller_free(c);
      return NULL;
    }
  }
  return c;
}

int controller_start(struct controller *c, struct gpc_error *err) {
  (void)err;
  /* Policies first: their selectors decide which node labels to keep, so
   * nodes are listed once, with the right filter. */
  informer_start(c->inf[INF_POLICY]);
  c->started = true;
  return GPC_OK;
}

void controller_stop(struct controller *c) {
  if (c->stopped) return;
  c->stopped = true;
  for (int i = 0; i < INF_COUNT; i++)
    if (c->inf[i]) informer_stop(c->inf[i]);
  if (c->work_inf) informer_stop(c->work_inf);
  event_recorder_stop(c);
  heap_trim_stop(c);
  watch_map_stop(c);
}

void controller_free(struct controller *c) {
  if (!c) return;
  controller_stop(c);
  apply_free(c->apply);
  /* Event writes still in flight: their callbacks must never run now. */
  event_recorder_cancel(c);
  for (int i = 0; i < INF_COUNT; i++)
    if (c->inf[i]) informer_free(c->inf[i]);
  if (c->work_inf) informer_free(c->work_inf);
  workqueue_free(c->queue);
  events_free(c->events);
  strmap_free(c->policies, policy_cache_state_free, NULL);
  strmap_free(c->label_keys, NULL, NULL);
  free(c->namespace);
  free(c);
}

void controller_set_leader(struct controller *c, bool leader) {
  bool was = c->leader;
  c->leader = leader;
  if (leader && !was && c->all_synced) watch_map_enqueue_all(c);
}

bool controller_is_leader(const struct controller *c) {
  return c->leader;
}

bool controller_synced(const struct controller *c) {
  return c->all_synced;
}

unsigned controller_in_flight(const struct controller *c) {
  return apply_in_flight(c->apply) + c->events_in_flight;
}

void controller_set_observer(struct controller *c, const struct controller_observer *o) {
  c->obs = o ? *o : (struct controller_observer){0};
}

void controller_get_stats(const struct controller *c, struct controller_stats *out) {
  *out = c->stats;
  struct workqueue_stats ws;
  workqueue_get_stats(c->queue, &ws);
  out->queue_depth = (unsigned)ws.depth;
  out->queue_adds = ws.adds;
  out->queue_retries = ws.retries;
  out->writes_in_flight = apply_in_flight(c->apply);
}
