/* reconcile.c — executes one policy's plan (see reconcile.h). */
#include "reconcile.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "apply.h"
#include "controller_upgrade.h"
#include "event_recorder.h"
#include "events.h"
#include "informer.h"
#include "log.h"
#include "loop.h"
#include "model.h"
#include "plan.h"
#include "policy.h"
#include "policy_cache.h"
#include "decode.h"
#include "render.h"
#include "status.h"
#include "status_diff.h"
#include "strmap.h"
#include "upgrade_run.h"
#include "workqueue.h"

#define COMP "controller" /* log component, one for every file of the controller */

/* Count-only status writes of one policy are at least this far apart,
 * plus STATUS_MS_PER_NODE per matched node: during a rollout the counts
 * change with every pod, and a big fleet rolls out for minutes (budget B4
 * counts these writes too). Condition changes are written at once. */
#define STATUS_MIN_INTERVAL_MS 5000u
#define STATUS_MS_PER_NODE 10u
/* A write failing for a transient reason (no response, 409, 429, 5xx)
 * shows in the policy's status once it failed this many times in a row;
 * a refusal (403, 404, 422, admission denied ...) at once. */
#define APPLY_FAILURES_SHOWN 3u

static void snapshot_take(struct controller *c, struct snapshot *s) {
  memset(s, 0, sizeof *s);
  struct informer_iter it;
  const char *key;
  const void *obj;
  informer_iter_init(&it, c->inf[INF_NODE]);
  while (informer_next(&it, &key, &obj)) {
    gpc_grow((void **)&s->nodes, &s->cap_nodes, s->n_nodes + 1, sizeof *s->nodes);
    s->nodes[s->n_nodes++] = obj;
  }
  informer_iter_init(&it, c->inf[INF_DS]);
  while (informer_next(&it, &key, &obj)) {
    gpc_grow((void **)&s->ds, &s->cap_ds, s->n_ds + 1, sizeof *s->ds);
    s->ds[s->n_ds++] = obj;
  }
  informer_iter_init(&it, c->inf[INF_POD]);
  while (informer_next(&it, &key, &obj)) {
    gpc_grow((void **)&s->pods, &s->cap_pods, s->n_pods + 1, sizeof *s->pods);
    s->pods[s->n_pods++] = obj;
  }
}

static void snapshot_release(struct snapshot *s) {
  free(s->nodes);
  free(s->ds);
  free(s->pods);
}

/* Writes `status` when it differs from the cached one: at once when a
 * condition changes, otherwise (counts during a rollout) at most once per
 * STATUS_MIN_INTERVAL_MS, with a later reconcile scheduled instead. */
static void write_status(struct controller *c, const char *name, const json_t *obj,
                         json_t *status) {
  const json_t *prev = json_object_get(obj, "status");
  if (prev && status_equal(prev, status)) return;
  struct policy_state *s = strmap_get(c->policies, name);
  uint64_t now = gpc_loop_now_ms();
  json_t *matched = json_object_get(json_object_get(status, "nodes"), "matched");
  uint64_t interval =
      STATUS_MIN_INTERVAL_MS +
      STATUS_MS_PER_NODE * (uint64_t)(json_is_integer(matched) && json_integer_value(matched) > 0
                                          ? json_integer_value(matched)
                                          : 0);
  if (s && s->last_status_ms && now - s->last_status_ms < interval &&
      !status_diff_transition(prev, status)) {
    workqueue_add_after(c->queue, name, s->last_status_ms + interval - now);
    return;
  }
  struct gpc_error err = {0};
  const char *rv = decode_str(obj, "metadata", "resourceVersion", PJ_END);
  enum apply_result r = apply_status(c->apply, name, rv, status, &err);
  if (r == APPLY_ERROR)
    log_error(COMP, "status write", KV_S("policy", name), KV_S("error", err.msg));
  if (r != APPLY_SENT) return;
  if (s) s->last_status_ms = now;
  event_recorder_status_events(c, obj, prev, status);
}

static const struct gpc_daemonset *cached_ds(struct controller *c, const json_t *obj) {
  const json_t *md = json_object_get(obj, "metadata");
  const char *ns = decode_str(md, "namespace", PJ_END), *name = decode_str(md, "name", PJ_END);
  if (!ns || !name) return NULL;
  char *key = gpc_asprintf("%s/%s", ns, name);
  const struct gpc_daemonset *d = informer_get(c->inf[INF_DS], key);
  free(key);
  return d;
}

static bool send_node_patches(struct controller *c, const char *policy, const struct gpc_plan *pl,
                              unsigned *unlocks) {
  bool all_quiet = true;
  for (size_t i = 0; i < pl->n_patches; i++) {
    const struct gpc_node_patch *np = &pl->patches[i];
    if (apply_in_flight(c->apply) >= MAX_NODE_WRITES_IN_FLIGHT) {
      /* The rest goes out when the writes in flight drain (on_apply_done). */
      c->writes_throttled = true;
      return false;
    }
    const struct gpc_node *n = informer_get(c->inf[INF_NODE], np->node);
    struct gpc_error err = {0};
    enum apply_result r = apply_node_labels(c->apply, policy, np->node,
                                            n ? n->resource_version : "", np->patch, &err);
    if (r != APPLY_UNCHANGED) all_quiet = false;
    if (r == APPLY_ERROR)
      log_error(COMP, "node patch", KV_S("node", np->node), KV_S("error", err.msg));
    if (r == APPLY_SENT && unlocks)
      for (int op = 0; op < GPC_OP_COUNT; op++)
        if (np->unlocks & (1u << op)) unlocks[op]++;
  }
  return all_quiet;
}

/* One StageUnlocked per operand per generation: the first node to unlock
 * it announces the stage; later nodes are in the status counts. */
static void stage_events(struct controller *c, const json_t *obj, const unsigned *unlocks) {
  const char *name = decode_str(obj, "metadata", "name", PJ_END);
  struct policy_state *s = name ? strmap_get(c->policies, name) : NULL;
  if (!s || !s->decoded) return;
  unsigned announce = plan_stages_to_announce(&s->stages, s->decoded->generation, unlocks);
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    if (!(announce & (1u << op))) continue;
    char *msg =
        gpc_asprintf("%s unlocked on its first %u node(s)", gpc_operand_name(op), unlocks[op]);
    event_recorder_record(c, obj, "Normal", EVENT_STAGE_UNLOCKED, msg);
    free(msg);
  }
}

static int plan_for(struct controller *c, const struct gpc_policy *p, struct snapshot *snap,
                    struct gpc_plan *pl, struct gpc_error *err) {
  struct policy_list pols;
  policy_cache_collect(c, &pols);
  json_t *known = json_array(); /* what no cache shows: apply's memory */
  apply_known_objects(c->apply, p->name, known);
  struct gpc_plan_input in = {
      .policy = p,
      .policies = pols.v,
      .n_policies = pols.n,
      .nodes = snap->nodes,
      .n_nodes = snap->n_nodes,
      .daemonsets = snap->ds,
      .n_daemonsets = snap->n_ds,
      .pods = snap->pods,
      .n_pods = snap->n_pods,
      .templates = c->cfg.templates,
      .namespace = c->namespace,
      .now = (int64_t)time(NULL),
      .pod_grace_s = c->cfg.pod_grace_s,
      .known = known,
  };
  int rc = plan_compute(&in, pl, err);
  free(pols.v);
  json_decref(known);
  /* A pod's grace period ends with no event to tell: look again then. */
  if (rc == GPC_OK && pl->recheck_at > in.now)
    workqueue_add_after(c->queue, p->name, (uint64_t)(pl->recheck_at - in.now) * 1000 + 100);
  return rc;
}

/* Sends the plan's deletes. Returns true when none is pending: a cached
 * DaemonSet always is (it is done when the cache loses it), an uncached
 * object unless apply had nothing to do for it (APPLY_UNCHANGED). */
static bool send_deletes(struct controller *c, const char *name, const struct gpc_plan *pl) {
  bool done = true;
  for (size_t i = 0; i < pl->n_deletes; i++) {
    const struct gpc_plan_delete *d = &pl->deletes[i];
    struct gpc_error err = {0};
    enum apply_result r = apply_delete(c->apply, name, d->ref, d->cached, d->cached, &err);
    const json_t *md = json_object_get(d->ref, "metadata");
    if (r == APPLY_SENT)
      log_info(COMP, "deleting object no longer desired", KV_S("policy", name),
               KV_S("kind", json_string_value(json_object_get(d->ref, "kind"))),
               KV_S("name", json_string_value(json_object_get(md, "name"))));
    else if (r == APPLY_ERROR)
      log_error(COMP, "delete", KV_S("policy", name), KV_S("error", err.msg));
    if (d->cached || r != APPLY_UNCHANGED) done = false;
  }
  return done;
}

/* Deletion: labels off, objects gone, then the finalizer. */
static void reconcile_deleting(struct controller *c, const char *name, const json_t *obj,
                               const struct gpc_policy *p, struct snapshot *snap) {
  struct gpc_plan pl;
  struct gpc_error err = {0};
  if (plan_for(c, p, snap, &pl, &err) != GPC_OK) {
    log_error(COMP, "plan", KV_S("policy", name), KV_S("error", err.msg));
    return;
  }
  bool done = send_node_patches(c, name, &pl, NULL);
  /* An upgrade in progress is abandoned: our cordons lifted, our upgrade
   * labels removed, before the finalizer goes. */
  struct upgrade_run_in ui = {
      .apply = c->apply,
      .policy = p,
      .plan = &pl,
      .nodes = snap->nodes,
      .n_nodes = snap->n_nodes,
      .ds = snap->ds,
      .n_ds = snap->n_ds,
      .pods = snap->pods,
      .n_pods = snap->n_pods,
      .now = (int64_t)time(NULL),
      .abort = true,
  };
  struct upgrade_run_out uo;
  upgrade_run(&ui, &uo);
  if (uo.left) done = false;
  if (uo.stale) workqueue_add_after(c->queue, name, 1000);
  upgrade_run_release(&uo);
  if (pl.cleanup_left) done = false;
  if (!send_deletes(c, name, &pl)) done = false;
  plan_release(&pl);
  if (!done || apply_policy_busy(c->apply, name)) return;
  json_t *fins = plan_finalizers_drop(decode_get(obj, "metadata", "finalizers", PJ_END));
  log_info(COMP, "cleanup done, dropping finalizer", KV_S("policy", name));
  apply_finalizers(c->apply, name, decode_str(obj, "metadata", "resourceVersion", PJ_END), fins,
                   &err);
  json_decref(fins);
}

/* A policy that is gone from the cache (finalizer bypassed): take our labels
 * off the nodes that still name it. */
static void reconcile_gone(struct controller *c, const char *name, struct snapshot *snap) {
  struct gpc_plan pl;
  plan_gone(name, snap->nodes, snap->n_nodes, &pl);
  for (size_t i = 0; i < pl.n_patches; i++) {
    const struct gpc_node_patch *np = &pl.patches[i];
    const struct gpc_node *n = informer_get(c->inf[INF_NODE], np->node);
    struct gpc_error err = {0};
    apply_node_labels(c->apply, name, np->node, n ? n->resource_version : "", np->patch, &err);
  }
  plan_release(&pl);
  struct policy_state *s = strmap_del(c->policies, name);
  policy_cache_state_free(s, NULL);
  events_forget(c->events, name);
  apply_forget_policy(c->apply, name);
  if (c->obs.forgotten) c->obs.forgotten(name, c->obs.ud);
}

static bool ensure_finalizer(struct controller *c, const char *name, const json_t *obj,
                             const struct gpc_policy *p) {
  json_t *fins = plan_finalizers_add(p, decode_get(obj, "metadata", "finalizers", PJ_END));
  if (!fins) return true;
  struct gpc_error err = {0};
  apply_finalizers(c->apply, name, decode_str(obj, "metadata", "resourceVersion", PJ_END), fins,
                   &err);
  json_decref(fins);
  return false;
}

static void apply_objects(struct controller *c, const char *name, const struct gpc_plan *pl) {
  uint64_t now = gpc_loop_now_ms();
  size_t i;
  json_t *o;
  json_array_foreach(pl->objects, i, o) {
    struct gpc_error err = {0};
    bool ds = plan_is_daemonset(o);
    const struct gpc_daemonset *cached = ds ? cached_ds(c, o) : NULL;
    if (apply_object(c->apply, name, o, cached, ds, now, &err) == APPLY_ERROR)
      log_error(COMP, "apply", KV_S("policy", name), KV_S("error", err.msg));
  }
  /* What the plan no longer wants: DaemonSets of a disabled operand, a
   * Service or ServiceMonitor disabled with it. Failing applies of objects
   * no longer wanted have nothing left to retry or report. */
  apply_forget_undesired(c->apply, name, pl->objects);
  send_deletes(c, name, pl);
}

/* The failing writes of a reconcile, for its status and its requeue. */
struct failures {
  size_t errors;     /* failing writes that make the reconcile an error */
  size_t shown;      /* failures the status reports */
  char *first;       /* message of the first of them (key order) */
  bool waiting;      /* some failing write waits for its backoff (not in flight) */
  uint64_t retry_at; /* earliest retry of those */
};

static void note_failure(const struct apply_failure *f, void *ud) {
  struct failures *fs = ud;
  if (!f->in_flight && (!fs->waiting || f->retry_at_ms < fs->retry_at)) {
    fs->waiting = true;
    fs->retry_at = f->retry_at_ms;
  }
  /* An eviction a PodDisruptionBudget holds is the upgrade waiting, not a
   * failing write nor a reconcile error: retried (above), shown in
   * status.driverUpgrade. */
  if (f->kind == APPLY_KIND_EVICT && f->http_code == 429) return;
  fs->errors++;
  if (f->kind == APPLY_KIND_STATUS) return; /* the status cannot say its own write fails */
  if (!apply_failure_is_refusal(f->kind, f->http_code) && f->failures < APPLY_FAILURES_SHOWN)
    return;
  if (fs->shown++ == 0) fs->first = gpc_strdup(f->message);
}

/* "apply ...: 404 NotFound: ...; 2 more writes failing" */
static char *failures_message(const struct failures *fs) {
  if (fs->shown <= 1) return gpc_strdup(fs->first);
  return gpc_asprintf("%s; %zu more write(s) failing", fs->first, fs->shown - 1);
}

bool reconcile(struct controller *c, const char *name, uint64_t *retry_at) {
  const json_t *obj = informer_get(c->inf[INF_POLICY], name);
  struct snapshot snap;
  snapshot_take(c, &snap);
  apply_begin_reconcile(c->apply);
  struct failures fs = {0};
  if (!obj) {
    reconcile_gone(c, name, &snap);
    goto out;
  }
  struct policy_state *s = policy_cache_state_for(c, name, obj);
  const json_t *prev = json_object_get(obj, "status");
  json_t *gen = json_object_get(json_object_get(obj, "metadata"), "generation");
  int64_t generation = json_is_integer(gen) ? json_integer_value(gen) : 0;
  if (!s->decoded) {
    /* Invalid: say so, apply nothing, leave the other policies alone. */
    json_t *st = status_stalled(prev, generation, "InvalidSpec", s->decode_error, time(NULL));
    write_status(c, name, obj, st);
    json_decref(st);
    goto out;
  }
  const struct gpc_policy *p = s->decoded;
  if (p->deleting) {
    if (p->has_finalizer) reconcile_deleting(c, name, obj, p, &snap);
    goto out;
  }
  if (!ensure_finalizer(c, name, obj, p)) goto out;
  struct gpc_plan pl;
  struct gpc_error err = {0};
  if (plan_for(c, p, &snap, &pl, &err) != GPC_OK) {
    json_t *st = status_stalled(prev, generation, "InvalidSpec", err.msg, time(NULL));
    write_status(c, name, obj, st);
    json_decref(st);
    goto out;
  }
  apply_objects(c, name, &pl);
  unsigned unlocks[GPC_OP_COUNT] = {0};
  send_node_patches(c, name, &pl, unlocks);
  stage_events(c, obj, unlocks);
  json_t *st = status_from_plan(&pl, p, prev, time(NULL));
  controller_upgrade_reconcile(c, obj, p, &pl, &snap, st, prev, generation);
  /* A write refused (or failing for long) shows: Ready=False, Stalled=True,
   * ApplyFailed, until a retry goes through. */
  apply_policy_failures(c->apply, name, note_failure, &fs);
  if (fs.shown) {
    char *msg = failures_message(&fs);
    status_set_apply_failed(st, prev, generation, msg, time(NULL));
    free(msg);
  }
  write_status(c, name, obj, st);
  json_decref(st);
  if (c->obs.planned) c->obs.planned(name, &pl, c->obs.ud);
  plan_release(&pl);
out:
  snapshot_release(&snap);
  controller_upgrade_release_idle(c);
  free(fs.first);
  fs = (struct failures){0};
  /* Every write asked for above, the status write included. */
  apply_policy_failures(c->apply, name, note_failure, &fs);
  bool ok = fs.errors == 0;
  *retry_at = fs.waiting ? fs.retry_at : 0;
  free(fs.first);
  return ok;
}
