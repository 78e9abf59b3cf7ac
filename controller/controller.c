/* controller.c — informers → workqueue → reconcile (see controller.h). */
#include "controller.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "apply.h"
#include "events.h"
#include "informer.h"
#include "kube_client.h"
#include "log.h"
#include "loop.h"
#include "model.h"
#include "plan.h"
#include "policy.h"
#include "project.h"
#include "render.h"
#include "status.h"
#include "status_diff.h"
#include "strmap.h"
#include "upgrade.h"
#include "upgrade_run.h"
#include "workqueue.h"

#define COMP "controller"
#define MANAGED_SELECTOR GPC_LABEL_MANAGED_BY "=" GPC_MANAGED_BY
/* Count-only status writes of one policy are at least this far apart,
 * plus STATUS_MS_PER_NODE per matched node: during a rollout the counts
 * change with every pod, and a big fleet rolls out for minutes (budget B4
 * counts these writes too). Condition changes are written at once. */
#define STATUS_MIN_INTERVAL_MS 5000u
#define STATUS_MS_PER_NODE 10u
/* Node label patches in flight at most: more only queue up in the client
 * (each transfer holds curl buffers) while a slow API server works through
 * them, and a patch sent later carries every unlock due by then. */
#define MAX_NODE_WRITES_IN_FLIGHT 64u
/* A write failing for a transient reason (no response, 409, 429, 5xx)
 * shows in the policy's status once it failed this many times in a row;
 * a refusal (403, 404, 422, admission denied ...) at once. */
#define APPLY_FAILURES_SHOWN 3u
#define RETRY_MIN_MS 500u

enum { INF_POLICY = 0, INF_NODE, INF_DS, INF_POD, INF_COUNT };

/* What the controller remembers per policy between reconciles. */
struct policy_state {
  char *rv;                   /* resourceVersion `decoded` came from */
  struct gpc_policy *decoded; /* NULL when invalid */
  char *decode_error;         /* set when invalid */
  uint64_t last_status_ms;    /* when the last status write was sent */
  unsigned stages_announced;  /* StageUnlocked sent, bit per operand, for announced_gen */
  int64_t announced_gen;
};

struct controller {
  struct controller_config cfg;
  char *namespace;
  struct informer *inf[INF_COUNT];
  struct workqueue *queue;
  struct gpc_apply *apply;
  struct gpc_events *events;
  struct strmap *policies; /* name -> struct policy_state */
  struct controller_observer obs;
  struct controller_stats stats;
  bool leader;
  bool started, stopped;
  bool all_synced;
  uint64_t events_timer;
  unsigned events_in_flight;
  struct event_call *event_calls; /* Event writes in flight */
  uint64_t trim_timer;            /* pending heap trim, 0 when none */
  bool writes_throttled;          /* a reconcile held node patches back */
  /* Node label keys kept in projections (besides gpupolicy.dev/...): GPU
   * detection plus every key a policy's nodeSelector reads. Value: (void *)1. */
  struct strmap *label_keys;
  bool dependents_started; /* node/DaemonSet/pod informers (after policies synced) */
  uint64_t relist_timer;   /* pending node informer restart for new label keys */
  bool keys_added;
  uint64_t reconciles_at_trim;
  /* Driver upgrades: every pod of every namespace (projected to what an
   * eviction needs), started the first time a policy asks for autoUpgrade
   * so clusters that never do pay nothing for it. */
  struct informer *work_inf;
};

/* ---- policy decode cache -------------------------------------------- */

static void policy_state_free(void *v, void *ud) {
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
static struct policy_state *policy_state_for(struct controller *c, const char *name,
                                             const json_t *obj) {
  struct policy_state *s = strmap_get(c->policies, name);
  if (!s) {
    s = gpc_calloc(1, sizeof *s);
    strmap_put(c->policies, name, s);
  }
  const char *rv = project_str(obj, "metadata", "resourceVersion", PJ_END);
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

/* Every valid, cached policy (borrowed pointers into the decode cache). */
struct policy_list {
  const struct gpc_policy **v;
  size_t n, cap;
};

static void collect_policies(struct controller *c, struct policy_list *out) {
  memset(out, 0, sizeof *out);
  struct informer_iter it;
  const char *key;
  const void *obj;
  informer_iter_init(&it, c->inf[INF_POLICY]);
  while (informer_next(&it, &key, &obj)) {
    const char *name = project_str(obj, "metadata", "name", PJ_END);
    if (!name) continue;
    struct policy_state *s = policy_state_for(c, name, obj);
    if (!s->decoded) continue;
    gpc_grow((void **)&out->v, &out->cap, out->n + 1, sizeof *out->v);
    out->v[out->n++] = s->decoded;
  }
}

/* ---- event mapping --------------------------------------------------- */

static void enqueue(struct controller *c, const char *policy) {
  if (policy && *policy && !c->stopped) workqueue_add(c->queue, policy);
}

static void enqueue_all(struct controller *c) {
  struct informer_iter it;
  const char *key;
  const void *obj;
  informer_iter_init(&it, c->inf[INF_POLICY]);
  while (informer_next(&it, &key, &obj))
    enqueue(c, project_str(obj, "metadata", "name", PJ_END));
}

/* A node concerns the policy named by its label and every policy whose
 * node selection matches it (it may be about to claim or lose it). */
static void enqueue_for_node(struct controller *c, const struct gpc_node *n) {
  enqueue(c, gpc_labels_get(&n->labels, GPC_LABEL_POLICY));
  struct informer_iter it;
  const char *key;
  const void *obj;
  informer_iter_init(&it, c->inf[INF_POLICY]);
  while (informer_next(&it, &key, &obj)) {
    const char *name = project_str(obj, "metadata", "name", PJ_END);
    if (!name) continue;
    struct policy_state *s = policy_state_for(c, name, obj);
    if (s->decoded && plan_node_matches(s->decoded, n)) enqueue(c, name);
  }
}

static struct informer *make_informer(struct controller *c, int i, struct gpc_error *err);

/* A policy selecting on a label key the node projections dropped: list the
 * nodes again with the wider filter (rare: a new selector key). */
static void on_relist_timer(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)id;
  struct controller *c = ud;
  c->relist_timer = 0;
  if (c->stopped) return;
  struct gpc_error err = {0};
  struct informer *fresh = make_informer(c, INF_NODE, &err);
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
  project_selector_keys(policy, add_label_key, c);
  if (c->keys_added && c->dependents_started && !c->relist_timer && !c->stopped)
    c->relist_timer = gpc_loop_add_timer(c->cfg.loop, 0, on_relist_timer, c);
}

static void on_policy_add(struct informer *inf, const char *key, const void *obj, void *ud) {
  note_selector_keys(ud, obj);
  (void)inf;
  (void)key;
  (void)obj;
  /* A new policy can take nodes from (or yield them to) the others. */
  enqueue_all(ud);
}

static void observed(struct controller *c, const char *kind, const char *name, const char *rv);

static void on_policy_update(struct informer *inf, const char *key, const void *old,
                             const void *cur, void *ud) {
  (void)inf;
  (void)key;
  const char *name = project_str(cur, "metadata", "name", PJ_END);
  const char *rv = project_str(cur, "metadata", "resourceVersion", PJ_END);
  observed(ud, "status", name, rv);
  observed(ud, "policy", name, rv);
  note_selector_keys(ud, cur);
  if (project_policy_changed(old, cur)) enqueue_all(ud);
}

static void on_policy_delete(struct informer *inf, const char *key, const void *old, void *ud) {
  (void)inf;
  (void)key;
  struct controller *c = ud;
  const char *name = project_str(old, "metadata", "name", PJ_END);
  enqueue_all(c);
  enqueue(c, name); /* cleans up labels if the finalizer was bypassed */
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
  if (!project_node_changed(old, cur)) return;
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
  enqueue(ud, ((const struct gpc_daemonset *)obj)->policy);
}

static void on_ds_update(struct informer *inf, const char *key, const void *old, const void *cur,
                         void *ud) {
  (void)inf;
  (void)key;
  if (!project_daemonset_changed(old, cur)) return;
  enqueue(ud, ((const struct gpc_daemonset *)old)->policy);
  enqueue(ud, ((const struct gpc_daemonset *)cur)->policy);
}

static void on_ds_delete(struct informer *inf, const char *key, const void *old, void *ud) {
  (void)inf;
  (void)key;
  enqueue(ud, ((const struct gpc_daemonset *)old)->policy);
}

static void on_pod_add(struct informer *inf, const char *key, const void *obj, void *ud) {
  (void)inf;
  (void)key;
  enqueue(ud, ((const struct gpc_pod *)obj)->policy);
}

static void on_pod_update(struct informer *inf, const char *key, const void *old, const void *cur,
                          void *ud) {
  (void)inf;
  (void)key;
  if (!project_pod_changed(old, cur)) return;
  enqueue(ud, ((const struct gpc_pod *)old)->policy);
  enqueue(ud, ((const struct gpc_pod *)cur)->policy);
}

static void on_pod_delete(struct informer *inf, const char *key, const void *old, void *ud) {
  (void)inf;
  (void)key;
  enqueue(ud, ((const struct gpc_pod *)old)->policy);
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
  enqueue_all(c);
}

/* ---- projections for the informers ----------------------------------- */

static void *proj_policy(const json_t *obj, void *ud) {
  (void)ud;
  return json_incref((json_t *)obj);
}
static void free_policy(void *p, void *ud) {
  (void)ud;
  json_decref(p);
}
/* GPU detection labels (design.md §4), always kept. */
static const char *const detection_labels[] = {
    "feature.node.kubernetes.io/pci-10de.present",
    "feature.node.kubernetes.io/pci-0302_10de.present",
    "feature.node.kubernetes.io/pci-0300_10de.present",
    "nvidia.com/gpu.present",
    "cloud.google.com/gke-accelerator",
    "kubernetes.azure.com/accelerator",
    "k8s.amazonaws.com/accelerator",
};

static bool keep_label(const char *key, void *ud) {
  struct controller *c = ud;
  return strncmp(key, GPC_LABEL_PREFIX, strlen(GPC_LABEL_PREFIX)) == 0 ||
         strmap_get(c->label_keys, key) != NULL;
}

static void *proj_node(const json_t *obj, void *ud) {
  return project_node_new_filtered(obj, keep_label, ud);
}
static void free_node(void *p, void *ud) {
  (void)ud;
  project_node_free(p);
}
static void *proj_ds(const json_t *obj, void *ud) {
  (void)ud;
  return project_daemonset_new(obj);
}
static void free_ds(void *p, void *ud) {
  (void)ud;
  project_daemonset_free(p);
}
static void *proj_pod(const json_t *obj, void *ud) {
  (void)ud;
  return project_pod_new(obj);
}
static void free_pod(void *p, void *ud) {
  (void)ud;
  project_pod_free(p);
}

/* ---- events ----------------------------------------------------------- */

/* One Event write in flight (its kind and name decide what a 404 means). */
struct event_call {
  struct controller *c;
  struct event_call *next;
  enum events_write_kind kind;
  char *name;
  uint64_t id;
};

static void event_call_unlink(struct controller *c, struct event_call *k) {
  for (struct event_call **pp = &c->event_calls; *pp; pp = &(*pp)->next)
    if (*pp == k) {
      *pp = k->next;
      break;
    }
  free(k->name);
  free(k);
}

static void send_event(struct controller *c, struct events_write *w);

static void on_event_written(struct kube_client *kc, const struct kube_response *r, void *ud) {
  (void)kc;
  struct event_call *k = ud;
  struct controller *c = k->c;
  c->events_in_flight--;
  if (r->rc != GPC_OK && k->kind == EVENTS_PATCH && r->http_code == 404 && !c->stopped) {
    /* The Event expired or was deleted: create it anew, as client-go's
     * recorder does, instead of dropping the occurrence. */
    struct events_write w;
    if (events_recreate(c->events, k->name, &w)) {
      log_debug(COMP, "event gone, creating it again", KV_S("event", k->name));
      send_event(c, &w);
    }
    events_write_release(&w);
  } else if (r->rc != GPC_OK) {
    log_debug(COMP, "event write failed", KV_I("code", r->http_code),
              KV_S("error", r->error ? r->error : ""));
  }
  event_call_unlink(c, k);
}

static void send_event(struct controller *c, struct events_write *w) {
  if (w->kind == EVENTS_NONE) return;
  char *body = json_dumps(w->body, JSON_COMPACT);
  struct kube_request req = {
      .verb = w->kind == EVENTS_CREATE ? KUBE_CREATE : KUBE_PATCH,
      .version = "v1",
      .resource = "events",
      .namespace = EVENTS_NAMESPACE,
      .name = w->kind == EVENTS_CREATE ? NULL : w->name,
      .body = body,
      .body_len = strlen(body),
      .patch_type = KUBE_PATCH_MERGE,
  };
  struct gpc_error err = {0};
  struct event_call *k = gpc_calloc(1, sizeof *k);
  k->c = c;
  k->kind = w->kind;
  k->name = gpc_strdup(w->name ? w->name : "");
  if ((k->id = kube_client_submit(c->cfg.client, &req, on_event_written, NULL, k, &err))) {
    c->events_in_flight++;
    c->stats.events_written++;
    k->next = c->event_calls;
    c->event_calls = k;
  } else {
    free(k->name);
    free(k);
  }
  free(body);
}

static void schedule_event_flush(struct controller *c);

static void on_events_timer(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)id;
  struct controller *c = ud;
  c->events_timer = 0;
  struct events_write w;
  while (c->leader && events_next_flush(c->events, gpc_loop_now_ms(), time(NULL), &w)) {
    send_event(c, &w);
    events_write_release(&w);
  }
  schedule_event_flush(c);
}

static void schedule_event_flush(struct controller *c) {
  uint64_t at = events_next_flush_at(c->events);
  if (at == 0 || c->events_timer || c->stopped) return;
  uint64_t now = gpc_loop_now_ms();
  c->events_timer = gpc_loop_add_timer(c->cfg.loop, at > now ? at - now : 0, on_events_timer, c);
}

static void record_event(struct controller *c, const json_t *obj, const char *type,
                         const char *reason, const char *message) {
  struct events_object about = {
      .name = project_str(obj, "metadata", "name", PJ_END),
      .uid = project_str(obj, "metadata", "uid", PJ_END),
      .resource_version = project_str(obj, "metadata", "resourceVersion", PJ_END),
  };
  if (!about.name) return;
  struct events_write w;
  events_record(c->events, &about, type, reason, message, gpc_loop_now_ms(), time(NULL), &w);
  send_event(c, &w);
  events_write_release(&w);
  schedule_event_flush(c);
}

struct emit_ctx {
  struct controller *c;
  const json_t *obj;
};

static void emit_event(const char *type, const char *reason, const char *message, void *ud) {
  struct emit_ctx *e = ud;
  record_event(e->c, e->obj, type, reason, message);
}

/* Events for the transitions between two statuses: never one per reconcile. */
static void status_events(struct controller *c, const json_t *obj, const json_t *prev,
                          const json_t *cur) {
  struct emit_ctx e = {c, obj};
  status_diff_events(prev, cur, emit_event, &e);
}

/* ---- apply completions ------------------------------------------------ */

static void on_apply_done(const struct apply_completion *comp, void *ud) {
  struct controller *c = ud;
  if (c->writes_throttled && apply_in_flight(c->apply) <= MAX_NODE_WRITES_IN_FLIGHT / 2) {
    c->writes_throttled = false;
    enqueue_all(c);
  }
  for (size_t i = 0; i < comp->n_waiters; i++)
    enqueue(c, comp->waiters[i]);
  if (comp->kind == APPLY_KIND_PROBE) return; /* the waiters (issuer included) were queued */
  if (comp->rc == GPC_OK) {
    /* Deletes finish a cleanup step the watch may not report to us as a
     * change of the policy: look again. A write that failed before and
     * went through now changes what the status says. */
    if (comp->kind == APPLY_KIND_DELETE || comp->recovered) enqueue(c, comp->policy);
    return;
  }
  if (c->stopped) return;
  /* Reconcile now: it counts the error, shows it in the status when it is
   * a refusal, and requeues the policy for when apply lets the object be
   * written again (the backoff is apply's, per object). */
  enqueue(c, comp->policy);
}

static void count_write(struct controller *c, enum apply_kind k, const char *key, void *ud);

static void on_apply_sent(enum apply_kind kind, const char *key, void *ud) {
  count_write(ud, kind, key, ud);
}

static void count_write(struct controller *c, enum apply_kind k, const char *key, void *ud) {
  (void)ud;
  if ((unsigned)k < sizeof c->stats.writes / sizeof c->stats.writes[0]) c->stats.writes[k]++;
  log_debug(COMP, "write", KV_S("kind", apply_kind_name(k)), KV_S("key", key));
}

/* ---- reconcile -------------------------------------------------------- */

/* Collects pointer arrays over the projected caches for plan(). */
struct snapshot {
  const struct gpc_node **nodes;
  size_t n_nodes, cap_nodes;
  const struct gpc_daemonset **ds;
  size_t n_ds, cap_ds;
  const struct gpc_pod **pods;
  size_t n_pods, cap_pods;
};

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
  const char *rv = project_str(obj, "metadata", "resourceVersion", PJ_END);
  enum apply_result r = apply_status(c->apply, name, rv, status, &err);
  if (r == APPLY_ERROR)
    log_error(COMP, "status write", KV_S("policy", name), KV_S("error", err.msg));
  if (r != APPLY_SENT) return;
  if (s) s->last_status_ms = now;
  status_events(c, obj, prev, status);
}

static const struct gpc_daemonset *cached_ds(struct controller *c, const json_t *obj) {
  const json_t *md = json_object_get(obj, "metadata");
  const char *ns = project_str(md, "namespace", PJ_END), *name = project_str(md, "name", PJ_END);
  if (!ns || !name) return NULL;
  char *key = gpc_asprintf("%s/%s", ns, name);
  const struct gpc_daemonset *d = informer_get(c->inf[INF_DS], key);
  free(key);
  return d;
}

static bool is_daemonset(const json_t *obj) {
  const char *kind = project_str(obj, "kind", PJ_END);
  return kind && strcmp(kind, "DaemonSet") == 0;
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
    if (r == APPLY_SENT && unlocks) {
      const json_t *labels = project_get(np->patch, "metadata", "labels", PJ_END);
      const char *k;
      const json_t *v;
      json_object_foreach((json_t *)labels, k, v) {
        int op = strncmp(k, GPC_LABEL_PREFIX, strlen(GPC_LABEL_PREFIX)) == 0
                     ? gpc_operand_from_name(k + strlen(GPC_LABEL_PREFIX))
                     : -1;
        if (op >= 0 && json_is_string(v) && strcmp(json_string_value(v), "true") == 0)
          unlocks[op]++;
      }
    }
  }
  return all_quiet;
}

/* One StageUnlocked per operand per generation: the first node to unlock
 * it announces the stage; later nodes are in the status counts. */
static void stage_events(struct controller *c, const json_t *obj, const unsigned *unlocks) {
  const char *name = project_str(obj, "metadata", "name", PJ_END);
  struct policy_state *s = name ? strmap_get(c->policies, name) : NULL;
  if (!s || !s->decoded) return;
  if (s->announced_gen != s->decoded->generation) {
    s->announced_gen = s->decoded->generation;
    s->stages_announced = 0;
  }
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    if (!unlocks[op] || (s->stages_announced & (1u << op))) continue;
    s->stages_announced |= 1u << op;
    char *msg =
        gpc_asprintf("%s unlocked on its first %u node(s)", gpc_operand_name(op), unlocks[op]);
    record_event(c, obj, "Normal", EVENT_STAGE_UNLOCKED, msg);
    free(msg);
  }
}

/* ---- driver upgrades (design.md §10) ---------------------------------- */

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
  if (n) enqueue(c, gpc_labels_get(&n->labels, GPC_LABEL_POLICY));
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
  enqueue_all(ud);
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

static void upgrade_event(const char *type, const char *reason, const char *message, void *ud) {
  struct emit_ctx *e = ud;
  record_event(e->c, e->obj, type, reason, message);
}

/* Runs the upgrade steps of policy `p` and puts their status into `st`. */
static void upgrade_reconcile(struct controller *c, const json_t *obj, const struct gpc_policy *p,
                              const struct gpc_plan *pl, struct snapshot *snap, json_t *st,
                              const json_t *prev, int64_t generation) {
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
  struct emit_ctx e = {c, obj};
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
      .event = upgrade_event,
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

static int plan_for(struct controller *c, const struct gpc_policy *p, struct snapshot *snap,
                    struct gpc_plan *pl, struct gpc_error *err) {
  struct policy_list pols;
  collect_policies(c, &pols);
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
  };
  int rc = plan_compute(&in, pl, err);
  free(pols.v);
  /* A pod's grace period ends with no event to tell: look again then. */
  if (rc == GPC_OK && pl->recheck_at > in.now)
    workqueue_add_after(c->queue, p->name, (uint64_t)(pl->recheck_at - in.now) * 1000 + 100);
  return rc;
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
  plan_release(&pl);
  for (size_t i = 0; i < snap->n_nodes; i++) {
    const char *owner = gpc_labels_get(&snap->nodes[i]->labels, GPC_LABEL_POLICY);
    if (owner && strcmp(owner, name) == 0) done = false;
  }
  for (size_t i = 0; i < snap->n_ds; i++) {
    const struct gpc_daemonset *d = snap->ds[i];
    if (strcmp(d->policy, name) != 0) continue;
    json_t *ref = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "apps/v1", "kind",
                            "DaemonSet", "metadata", "name", d->name, "namespace", d->namespace);
    apply_delete(c->apply, name, ref, true, true, &err);
    json_decref(ref);
    done = false;
  }
  /* Generated objects that are not cached (Services, ServiceMonitors);
   * ownerReferences would collect them too, but delete explicitly. */
  json_t *objs = NULL;
  struct gpc_render_opts ro = {.namespace = c->namespace, .include_shared = false};
  if (render_policy(p, c->cfg.templates, &ro, &objs, &err) == GPC_OK) {
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o) {
      if (is_daemonset(o)) continue;
      if (apply_delete(c->apply, name, o, false, false, &err) != APPLY_UNCHANGED) done = false;
    }
  }
  json_decref(objs);
  if (!done || apply_policy_busy(c->apply, name)) return;
  json_t *fins = json_array();
  const json_t *cur = project_get(obj, "metadata", "finalizers", PJ_END);
  size_t i;
  const json_t *f;
  json_array_foreach(cur, i, f) {
    if (!json_is_string(f) || strcmp(json_string_value(f), GPC_POLICY_FINALIZER) != 0)
      json_array_append(fins, (json_t *)f);
  }
  log_info(COMP, "cleanup done, dropping finalizer", KV_S("policy", name));
  apply_finalizers(c->apply, name, project_str(obj, "metadata", "resourceVersion", PJ_END), fins,
                   &err);
  json_decref(fins);
}

/* A policy that is gone from the cache (finalizer bypassed): take our labels
 * off the nodes that still name it. */
static void reconcile_gone(struct controller *c, const char *name, struct snapshot *snap) {
  for (size_t i = 0; i < snap->n_nodes; i++) {
    const struct gpc_node *n = snap->nodes[i];
    const char *owner = gpc_labels_get(&n->labels, GPC_LABEL_POLICY);
    if (!owner || strcmp(owner, name) != 0) continue;
    json_t *labels = json_object();
    json_object_set_new(labels, GPC_LABEL_POLICY, json_null());
    for (int op = 0; op < GPC_OP_COUNT; op++) {
      char k[96];
      snprintf(k, sizeof k, GPC_LABEL_PREFIX "%s", gpc_operand_name(op));
      const char *v = gpc_labels_get(&n->labels, k);
      if (v && strcmp(v, "true") == 0) json_object_set_new(labels, k, json_null());
    }
    json_t *patch = json_pack("{s:{s:o}}", "metadata", "labels", labels);
    struct gpc_error err = {0};
    apply_node_labels(c->apply, name, n->name, n->resource_version, patch, &err);
    json_decref(patch);
  }
  struct policy_state *s = strmap_del(c->policies, name);
  policy_state_free(s, NULL);
  events_forget(c->events, name);
  apply_forget_policy(c->apply, name);
  if (c->obs.forgotten) c->obs.forgotten(name, c->obs.ud);
}

static bool ensure_finalizer(struct controller *c, const char *name, const json_t *obj,
                             const struct gpc_policy *p) {
  if (p->has_finalizer) return true;
  json_t *fins = json_array();
  const json_t *cur = project_get(obj, "metadata", "finalizers", PJ_END);
  size_t i;
  const json_t *f;
  json_array_foreach(cur, i, f) json_array_append(fins, (json_t *)f);
  json_array_append_new(fins, json_string(GPC_POLICY_FINALIZER));
  struct gpc_error err = {0};
  apply_finalizers(c->apply, name, project_str(obj, "metadata", "resourceVersion", PJ_END), fins,
                   &err);
  json_decref(fins);
  return false;
}

static void apply_objects(struct controller *c, const char *name, const struct gpc_plan *pl,
                          struct snapshot *snap) {
  uint64_t now = gpc_loop_now_ms();
  size_t i;
  json_t *o;
  json_array_foreach(pl->objects, i, o) {
    struct gpc_error err = {0};
    bool ds = is_daemonset(o);
    const struct gpc_daemonset *cached = ds ? cached_ds(c, o) : NULL;
    if (apply_object(c->apply, name, o, cached, ds, now, &err) == APPLY_ERROR)
      log_error(COMP, "apply", KV_S("policy", name), KV_S("error", err.msg));
  }
  /* DaemonSets of this policy that are no longer desired (operand disabled). */
  for (size_t k = 0; k < snap->n_ds; k++) {
    const struct gpc_daemonset *d = snap->ds[k];
    if (strcmp(d->policy, name) != 0) continue;
    bool wanted = false;
    json_array_foreach(pl->objects, i, o) {
      if (is_daemonset(o) && strcmp(project_str(o, "metadata", "name", PJ_END) ?: "", d->name) == 0)
        wanted = true;
    }
    if (wanted) continue;
    json_t *ref = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "apps/v1", "kind",
                            "DaemonSet", "metadata", "name", d->name, "namespace", d->namespace);
    struct gpc_error err = {0};
    apply_delete(c->apply, name, ref, true, true, &err);
    json_decref(ref);
  }
  /* Services and ServiceMonitors of this policy that are no longer desired
   * (dcgm-exporter or its ServiceMonitor disabled): the cache does not show
   * them, apply remembers which exist. */
  struct gpc_error err = {0};
  apply_prune(c->apply, name, pl->objects, &err);
  if (err.code) log_error(COMP, "prune", KV_S("policy", name), KV_S("error", err.msg));
}

/* The failing writes of a reconcile, for its status and its requeue. */
struct failures {
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
  if (f->kind == APPLY_KIND_STATUS) return; /* the status cannot say its own write fails */
  /* An eviction a PodDisruptionBudget holds is the upgrade waiting, not a
   * failing write: retried (above), shown in status.driverUpgrade. */
  if (f->kind == APPLY_KIND_EVICT && f->http_code == 429) return;
  if (!apply_failure_is_refusal(f->kind, f->http_code) && f->failures < APPLY_FAILURES_SHOWN)
    return;
  if (fs->shown++ == 0) fs->first = gpc_strdup(f->message);
}

/* "apply ...: 404 NotFound: ...; 2 more writes failing" */
static char *failures_message(const struct failures *fs) {
  if (fs->shown <= 1) return gpc_strdup(fs->first);
  return gpc_asprintf("%s; %zu more write(s) failing", fs->first, fs->shown - 1);
}

/* One reconcile of policy `name`. Returns false when a write it asked for
 * is failing (a reconcile error, retried when that write may go again:
 * *retry_at, 0 when only writes in flight are failing). */
static bool reconcile(struct controller *c, const char *name, uint64_t *retry_at) {
  const json_t *obj = informer_get(c->inf[INF_POLICY], name);
  struct snapshot snap;
  snapshot_take(c, &snap);
  apply_begin_reconcile(c->apply);
  struct failures fs = {0};
  if (!obj) {
    reconcile_gone(c, name, &snap);
    goto out;
  }
  struct policy_state *s = policy_state_for(c, name, obj);
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
  apply_objects(c, name, &pl, &snap);
  unsigned unlocks[GPC_OP_COUNT] = {0};
  send_node_patches(c, name, &pl, unlocks);
  stage_events(c, obj, unlocks);
  json_t *st = status_from_plan(&pl, p, prev, time(NULL));
  upgrade_reconcile(c, obj, p, &pl, &snap, st, prev, generation);
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
  free(fs.first);
  fs = (struct failures){0};
  /* Every write asked for above, the status write included. */
  bool ok = apply_policy_failures(c->apply, name, note_failure, &fs) == 0;
  *retry_at = fs.waiting ? fs.retry_at : 0;
  free(fs.first);
  return ok;
}

static void schedule_trim(struct controller *c);

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
    schedule_trim(c);
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
    if (!ok) {
      /* Again when apply lets the failing write go (its backoff, per
       * object); a write in flight requeues the policy when it completes,
       * the cap is a safety net. */
      uint64_t now = gpc_loop_now_ms();
      uint64_t wait = retry_at ? (retry_at > now ? retry_at - now : 0) : APPLY_RETRY_CAP_MS;
      if (wait < RETRY_MIN_MS) wait = RETRY_MIN_MS; /* never a hot loop */
      workqueue_add_retry_after(q, k, wait);
    }
    free(k);
  }
}

/* ---- heap trimming ----------------------------------------------------- */

/* Every watch event parses a ~15 KB Node into short-lived JSON while
 * long-lived projections are allocated in between, which leaves the heap
 * full of free holes that glibc never hands back on its own: at 5,000 nodes
 * that tripled RSS during a rollout. While reconciles are happening, give
 * free pages back every TRIM_INTERVAL_MS (a few ms of work). */
#define TRIM_INTERVAL_MS 2000u

static void on_trim_timer(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)id;
  struct controller *c = ud;
  c->trim_timer = 0;
  if (c->stats.reconciles == c->reconciles_at_trim) return; /* idle: nothing churned */
  c->reconciles_at_trim = c->stats.reconciles;
  malloc_trim(0);
  if (log_enabled(LOG_DEBUG, COMP)) {
    struct mallinfo2 mi = mallinfo2();
    log_debug(COMP, "heap trimmed", KV_I("in_use", mi.uordblks), KV_I("free", mi.fordblks),
              KV_I("mmapped", mi.hblkhd));
  }
  if (!c->stopped)
    c->trim_timer = gpc_loop_add_timer(c->cfg.loop, TRIM_INTERVAL_MS, on_trim_timer, c);
}

static void schedule_trim(struct controller *c) {
  if (!c->trim_timer && !c->stopped)
    c->trim_timer = gpc_loop_add_timer(c->cfg.loop, TRIM_INTERVAL_MS, on_trim_timer, c);
}

/* ---- lifecycle -------------------------------------------------------- */

static struct informer *make_informer(struct controller *c, int i, struct gpc_error *err) {
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
      .client = cfg->client, .done = on_apply_done, .ud = c, .sent = on_apply_sent};
  c->apply = apply_new(&ac);

  c->label_keys = strmap_new();
  for (size_t i = 0; i < sizeof detection_labels / sizeof detection_labels[0]; i++)
    strmap_put(c->label_keys, detection_labels[i], (void *)1);
  for (int i = 0; i < INF_COUNT; i++) {
    c->inf[i] = make_informer(c, i, err);
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
  if (c->events_timer) gpc_loop_cancel_timer(c->cfg.loop, c->events_timer);
  c->events_timer = 0;
  if (c->trim_timer) gpc_loop_cancel_timer(c->cfg.loop, c->trim_timer);
  c->trim_timer = 0;
  if (c->relist_timer) gpc_loop_cancel_timer(c->cfg.loop, c->relist_timer);
  c->relist_timer = 0;
}

void controller_free(struct controller *c) {
  if (!c) return;
  controller_stop(c);
  apply_free(c->apply);
  /* Event writes still in flight: their callbacks must never run now. */
  while (c->event_calls) {
    struct event_call *k = c->event_calls;
    c->event_calls = k->next;
    kube_client_cancel(c->cfg.client, k->id);
    free(k->name);
    free(k);
  }
  for (int i = 0; i < INF_COUNT; i++)
    if (c->inf[i]) informer_free(c->inf[i]);
  if (c->work_inf) informer_free(c->work_inf);
  workqueue_free(c->queue);
  events_free(c->events);
  strmap_free(c->policies, policy_state_free, NULL);
  strmap_free(c->label_keys, NULL, NULL);
  free(c->namespace);
  free(c);
}

void controller_set_leader(struct controller *c, bool leader) {
  bool was = c->leader;
  c->leader = leader;
  if (leader && !was && c->all_synced) enqueue_all(c);
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
