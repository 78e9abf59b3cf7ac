/* apply.c — differential writes with in-flight tracking (see apply.h). */
#include "apply.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "kube_client.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "strmap.h"

/* One object the controller writes, keyed by a string. */
struct entry {
  char *key;
  struct gpc_apply *owner;
  char *policy; /* issuer of the last write */
  enum apply_kind kind;
  bool in_flight;
  uint64_t req_id;
  /* Echo suppression for label/status/finalizer patches and deletes. */
  char *sent_body; /* serialized body of the last write (NULL when it failed) */
  char *sent_rv;   /* the cached resourceVersion it was sent against */
  char *resp_rv;   /* resourceVersion our successful write produced */
  bool echo_seen;  /* the cache has shown resp_rv */
  bool last_ok;
  uint64_t done_ms;
  /* Server-side apply memory. */
  struct apply_object_memory mem;
  char *pending_hash; /* hash of the apply in flight */
  bool deleted;       /* uncached kinds: a delete succeeded since the last apply */
  bool probed;        /* uncached kinds: looked for an existing copy once */
  bool exists;        /* uncached kinds: applied or found by the probe, not deleted since */
  json_t *ref;        /* uncached kinds: {apiVersion, kind, metadata{name, namespace}} */
  /* Failed writes (apply.h): consecutive failures, the earliest next write,
   * the render-hash that failed ("" for other writes), the failure. */
  unsigned failures;
  uint64_t retry_at_ms;
  char *fail_sig;
  long fail_code;
  char *fail_msg;
  char *what;       /* "apply daemonsets.apps ns/name" of the last write sent */
  uint64_t touched; /* the reconcile (epoch) that last asked to write it */
  char **waiters;
  size_t n_waiters, cap_waiters;
};

struct gpc_apply {
  struct apply_config cfg;
  struct strmap *entries; /* key -> struct entry */
  unsigned in_flight;
  size_t n_failing; /* entries with failures > 0 */
  uint64_t epoch;   /* apply_begin_reconcile count */
  uint64_t rng;     /* backoff jitter */
};

#define KIND_VERB_(e, name, verb) [e] = verb,
static const char *const kind_names[] = {APPLY_KIND_MAP(GPC_X_NAME)};
static const char *const kind_verbs[] = {APPLY_KIND_MAP(KIND_VERB_)};
#define N_KINDS (sizeof kind_names / sizeof kind_names[0])

const char *apply_kind_name(enum apply_kind k) {
  return (unsigned)k < N_KINDS ? kind_names[k] : "?";
}

/* ---- pure parts ------------------------------------------------------ */

bool apply_gvr_for(const char *api_version, const char *kind, struct apply_gvr *out) {
  static const struct {
    const char *api_version, *kind;
    struct apply_gvr gvr;
  } table[] = {
      {"apps/v1", "DaemonSet", {"apps", "v1", "daemonsets", true}},
      {"v1", "Service", {"", "v1", "services", true}},
      {"v1", "ConfigMap", {"", "v1", "configmaps", true}},
      {"v1", "Pod", {"", "v1", "pods", true}}, /* driver upgrades: delete only */
      {"v1", "ServiceAccount", {"", "v1", "serviceaccounts", true}},
      {"node.k8s.io/v1", "RuntimeClass", {"node.k8s.io", "v1", "runtimeclasses", false}},
      {"monitoring.coreos.com/v1",
       "ServiceMonitor",
       {"monitoring.coreos.com", "v1", "servicemonitors", true}},
  };
  if (!api_version || !kind) return false;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(table[i].api_version, api_version) == 0 && strcmp(table[i].kind, kind) == 0) {
      *out = table[i].gvr;
      return true;
    }
  return false;
}

enum apply_decision apply_decide_object(struct apply_object_memory *m, const char *desired_hash,
                                        const struct gpc_daemonset *cached, bool cache_covers,
                                        uint64_t now_ms) {
  bool ours = m->hash && strcmp(m->hash, desired_hash) == 0;
  if (!cache_covers) return ours ? APPLY_DECIDE_SKIP : APPLY_DECIDE_SEND;
  if (cached) {
    bool same_hash = strcmp(cached->render_hash, desired_hash) == 0;
    if (!same_hash) return APPLY_DECIDE_SEND; /* stale, or someone edited the annotation */
    if (!ours) {
      /* Already there (we applied it before a restart): adopt it. */
      free(m->hash);
      m->hash = gpc_strdup(desired_hash);
      m->generation = cached->generation;
      m->seen = true;
      return APPLY_DECIDE_SKIP;
    }
    if (cached->generation >= m->generation) m->seen = true;
    /* Another writer changed the spec after our apply. */
    if (m->seen && m->generation > 0 && cached->generation > m->generation)
      return APPLY_DECIDE_SEND;
    return APPLY_DECIDE_SKIP;
  }
  /* Not in the cache. */
  if (!ours) return APPLY_DECIDE_SEND;
  if (m->seen) return APPLY_DECIDE_SEND; /* it was there, someone deleted it */
  /* Applied but the watch has not shown it yet: wait, within reason. */
  return now_ms - m->applied_at_ms >= APPLY_UNSEEN_RETRY_MS ? APPLY_DECIDE_SEND : APPLY_DECIDE_SKIP;
}

enum apply_decision apply_decide_retry(unsigned failures, uint64_t retry_at_ms,
                                       const char *failed_sig, const char *sig, uint64_t now_ms) {
  if (!failures || now_ms >= retry_at_ms) return APPLY_DECIDE_SEND;
  if (sig && strcmp(sig, failed_sig ? failed_sig : "") != 0) return APPLY_DECIDE_SEND;
  return APPLY_DECIDE_SKIP;
}

bool apply_failure_is_refusal(enum apply_kind kind, long http_code) {
  if (http_code < 400 || http_code >= 500) return false;
  switch (http_code) {
  case 408: /* timeout */
  case 409: /* conflict: someone else moved the object, the cache catches up */
  case 410:
  case 429: /* throttled, or an eviction a PodDisruptionBudget holds */
    return false;
  case 404:
    return kind != APPLY_KIND_NODE_LABELS;
  default:
    return true;
  }
}

/* ---- the entry table ------------------------------------------------- */

static struct entry *lookup(struct gpc_apply *a, const char *key, bool create) {
  struct entry *e = strmap_get(a->entries, key);
  if (e) {
    if (create) e->touched = a->epoch; /* a write of it is being decided */
    return e;
  }
  if (!create) return NULL;
  e = gpc_calloc(1, sizeof *e);
  e->touched = a->epoch;
  e->key = gpc_strdup(key);
  e->owner = a;
  strmap_put(a->entries, e->key, e);
  return e;
}

static void entry_free(struct entry *e) {
  free(e->key);
  free(e->policy);
  free(e->sent_body);
  free(e->sent_rv);
  free(e->resp_rv);
  free(e->mem.hash);
  free(e->pending_hash);
  free(e->fail_sig);
  free(e->fail_msg);
  free(e->what);
  json_decref(e->ref);
  for (size_t i = 0; i < e->n_waiters; i++)
    free(e->waiters[i]);
  free(e->waiters);
  free(e);
}

struct gpc_apply *apply_new(const struct apply_config *cfg) {
  struct gpc_apply *a = gpc_calloc(1, sizeof *a);
  a->cfg = *cfg;
  a->entries = strmap_new();
  a->rng = backoff_seed();
  return a;
}

void apply_free(struct gpc_apply *a) {
  if (!a) return;
  struct strmap_iter it;
  void *v;
  strmap_iter_init(&it, a->entries);
  while (strmap_next(&it, NULL, &v)) {
    struct entry *e = v;
    if (e->in_flight && a->cfg.client) kube_client_cancel(a->cfg.client, e->req_id);
    entry_free(e);
  }
  strmap_free(a->entries, NULL, NULL);
  free(a);
}

void apply_observed(struct gpc_apply *a, const char *key, const char *rv) {
  struct entry *e = lookup(a, key, false);
  if (e && e->resp_rv && rv && strcmp(e->resp_rv, rv) == 0) e->echo_seen = true;
}

unsigned apply_in_flight(const struct gpc_apply *a) {
  return a->in_flight;
}

bool apply_policy_busy(const struct gpc_apply *a, const char *policy) {
  struct strmap_iter it;
  void *v;
  strmap_iter_init(&it, a->entries);
  while (strmap_next(&it, NULL, &v)) {
    const struct entry *e = v;
    if (e->in_flight && e->policy && strcmp(e->policy, policy) == 0) return true;
  }
  return false;
}

void apply_begin_reconcile(struct gpc_apply *a) {
  a->epoch++;
}

static void clear_failure(struct gpc_apply *a, struct entry *e) {
  if (!e->failures) return;
  e->failures = 0;
  a->n_failing--;
  free(e->fail_sig);
  e->fail_sig = NULL;
  free(e->fail_msg);
  e->fail_msg = NULL;
  e->fail_code = 0;
}

static int cmp_failure(const void *x, const void *y) {
  const struct apply_failure *a = x, *b = y;
  return strcmp(a->key, b->key);
}

size_t apply_policy_failures(const struct gpc_apply *a, const char *policy, apply_failure_cb fn,
                             void *ud) {
  if (!a->n_failing) return 0;
  struct apply_failure *v = NULL;
  size_t n = 0, cap = 0;
  struct strmap_iter it;
  void *val;
  strmap_iter_init(&it, a->entries);
  while (strmap_next(&it, NULL, &val)) {
    const struct entry *e = val;
    if (!e->failures || e->touched != a->epoch || !e->policy || strcmp(e->policy, policy) != 0)
      continue;
    gpc_grow((void **)&v, &cap, n + 1, sizeof *v);
    v[n++] = (struct apply_failure){
        .key = e->key,
        .policy = e->policy,
        .kind = e->kind,
        .http_code = e->fail_code,
        .message = e->fail_msg ? e->fail_msg : e->key,
        .failures = e->failures,
        .retry_at_ms = e->retry_at_ms,
        .in_flight = e->in_flight,
    };
  }
  if (n > 1) qsort(v, n, sizeof *v, cmp_failure);
  for (size_t i = 0; fn && i < n; i++)
    fn(&v[i], ud);
  free(v);
  return n;
}

void apply_forget(struct gpc_apply *a, const char *key) {
  struct entry *e = strmap_get(a->entries, key);
  if (!e || e->in_flight) return; /* in flight: its completion still needs it */
  strmap_del(a->entries, key);
  if (e->failures) a->n_failing--;
  entry_free(e);
}

size_t apply_entries(const struct gpc_apply *a) {
  return strmap_size(a->entries);
}

void apply_forget_policy(struct gpc_apply *a, const char *policy) {
  struct strmap_iter it;
  void *v;
  strmap_iter_init(&it, a->entries);
  while (strmap_next(&it, NULL, &v)) {
    struct entry *e = v;
    if (!e->in_flight && e->policy && strcmp(e->policy, policy) == 0 &&
        e->kind != APPLY_KIND_NODE_LABELS) {
      strmap_iter_del(&it);
      if (e->failures) a->n_failing--;
      entry_free(e);
    }
  }
}

static void add_waiter(struct entry *e, const char *policy) {
  for (size_t i = 0; i < e->n_waiters; i++)
    if (strcmp(e->waiters[i], policy) == 0) return;
  gpc_grow((void **)&e->waiters, &e->cap_waiters, e->n_waiters + 1, sizeof *e->waiters);
  e->waiters[e->n_waiters++] = gpc_strdup(policy);
}

/* ---- sending ---------------------------------------------------------- */

/* metadata.generation and .resourceVersion of a write's response. */
static int64_t response_meta(const struct kube_response *r, char **rv) {
  json_t *j = r->body && r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
  json_t *md = json_object_get(j, "metadata");
  json_t *g = json_object_get(md, "generation");
  int64_t gen = json_is_integer(g) ? (int64_t)json_integer_value(g) : 0;
  const char *v = json_string_value(json_object_get(md, "resourceVersion"));
  *rv = v ? gpc_strdup(v) : NULL;
  json_decref(j);
  return gen;
}

/* Adopts the object a probe found when it carries the hash we would apply. */
static void probe_done(struct entry *e, const struct kube_response *r) {
  e->probed = true;
  if (r->rc == GPC_OK) e->exists = true; /* ours or not yet, it is there to delete */
  if (r->rc != GPC_OK || !r->body || !e->pending_hash) return;
  json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
  const char *h = json_string_value(json_object_get(
      json_object_get(json_object_get(j, "metadata"), "annotations"), GPC_ANNOTATION_RENDER_HASH));
  if (h && strcmp(h, e->pending_hash) == 0) {
    free(e->mem.hash);
    e->mem.hash = gpc_strdup(h);
    e->mem.seen = true;
  }
  json_decref(j);
}

static void on_done(struct kube_client *c, const struct kube_response *r, void *ud) {
  (void)c;
  struct entry *e = ud;
  struct gpc_apply *a = e->owner;
  int rc = r->rc;
  /* What this write was, for the backoff: a generated object's hash. */
  char *sig = gpc_strdup(e->kind == APPLY_KIND_OBJECT && e->pending_hash ? e->pending_hash : "");
  if (e->kind == APPLY_KIND_PROBE) {
    probe_done(e, r);
    rc = GPC_OK; /* a failed look only means we apply */
  }
  /* Deleting (evicting) what is already gone is success. */
  if ((e->kind == APPLY_KIND_DELETE || e->kind == APPLY_KIND_EVICT) && r->http_code == 404)
    rc = GPC_OK;
  e->in_flight = false;
  e->req_id = 0;
  a->in_flight--;
  e->last_ok = rc == GPC_OK;
  e->done_ms = gpc_loop_now_ms();
  free(e->resp_rv);
  e->resp_rv = NULL;
  e->echo_seen = false;
  int64_t generation = 0;
  if (rc != GPC_OK) {
    free(e->sent_body);
    e->sent_body = NULL;
  } else if (e->kind != APPLY_KIND_DELETE && e->kind != APPLY_KIND_PROBE) {
    generation = response_meta(r, &e->resp_rv);
  }
  if (e->kind == APPLY_KIND_OBJECT && rc == GPC_OK) {
    free(e->mem.hash);
    e->mem.hash = e->pending_hash;
    e->pending_hash = NULL;
    e->mem.generation = generation;
    e->mem.seen = false;
    e->mem.applied_at_ms = e->done_ms;
    e->deleted = false;
    e->exists = true;
  } else if ((e->kind == APPLY_KIND_DELETE || e->kind == APPLY_KIND_EVICT) && rc == GPC_OK) {
    e->deleted = true;
    e->exists = false;
    free(e->mem.hash);
    e->mem.hash = NULL;
    e->mem.seen = false;
  }
  free(e->pending_hash);
  e->pending_hash = NULL;
  const char *msg = rc == GPC_OK                                             ? NULL
                    : r->status && r->status->message && *r->status->message ? r->status->message
                    : r->error                                               ? r->error
                                                                             : gpc_strerror(rc);
  bool recovered = false;
  uint64_t retry_in = 0;
  if (e->kind != APPLY_KIND_PROBE && rc != GPC_OK) {
    if (e->failures++ == 0) a->n_failing++;
    retry_in = backoff_delay_ms(APPLY_RETRY_BASE_MS, APPLY_RETRY_CAP_MS, e->failures - 1,
                                backoff_rand(&a->rng));
    e->retry_at_ms = e->done_ms + retry_in;
    free(e->fail_sig);
    e->fail_sig = sig;
    sig = NULL;
    e->fail_code = r->http_code;
    free(e->fail_msg);
    const char *reason = r->status && r->status->reason ? r->status->reason : "";
    if (r->http_code)
      e->fail_msg = gpc_asprintf("%s: %ld%s%s: %s", e->what ? e->what : e->key, r->http_code,
                                 *reason ? " " : "", reason, msg);
    else
      e->fail_msg = gpc_asprintf("%s: %s", e->what ? e->what : e->key, msg);
    /* Once per backoff step: the write is not sent again before retry_in. */
    log_warn("apply", "write failed", KV_S("kind", apply_kind_name(e->kind)), KV_S("key", e->key),
             KV_I("code", r->http_code), KV_S("error", msg), KV_I("failures", e->failures),
             KV_I("retry_in_ms", retry_in));
  } else if (e->kind != APPLY_KIND_PROBE && e->failures) {
    log_info("apply", "write succeeded after failures", KV_S("kind", apply_kind_name(e->kind)),
             KV_S("key", e->key), KV_I("failures", e->failures));
    clear_failure(a, e);
    recovered = true;
  }
  free(sig);
  struct apply_completion comp = {
      .kind = e->kind,
      .policy = e->policy,
      .key = e->key,
      .rc = rc,
      .http_code = r->http_code,
      .message = msg,
      .waiters = (const char *const *)e->waiters,
      .n_waiters = e->n_waiters,
      .failures = rc != GPC_OK ? e->failures : 0,
      .retry_in_ms = retry_in,
      .recovered = recovered,
  };
  a->cfg.done(&comp, a->cfg.ud);
  for (size_t i = 0; i < e->n_waiters; i++)
    free(e->waiters[i]);
  e->n_waiters = 0;
}

/* "apply servicemonitors.monitoring.coreos.com gpu-operands/gpus-dcgm-exporter",
 * "patch nodes gpu-1", "patch clustergpupolicies.gpupolicy.dev/status gpus". */
static char *describe(enum apply_kind kind, const struct kube_request *req) {
  const char *verb = (unsigned)kind < N_KINDS ? kind_verbs[kind] : "write";
  bool group = req->group && *req->group;
  return gpc_asprintf("%s %s%s%s%s%s %s%s%s", verb, req->resource ? req->resource : "?",
                      group ? "." : "", group ? req->group : "", req->subresource ? "/" : "",
                      req->subresource ? req->subresource : "",
                      req->namespace ? req->namespace : "", req->namespace ? "/" : "",
                      req->name ? req->name : "");
}

/* Submits `req` for entry `e`. Returns APPLY_SENT or APPLY_ERROR. */
static enum apply_result submit(struct gpc_apply *a, struct entry *e, enum apply_kind kind,
                                const char *policy, const struct kube_request *req,
                                struct gpc_error *err) {
  uint64_t id = kube_client_submit(a->cfg.client, req, on_done, NULL, e, err);
  if (id == 0) return APPLY_ERROR;
  if (kind != APPLY_KIND_PROBE) {
    free(e->what);
    e->what = describe(kind, req);
  }
  e->kind = kind;
  free(e->policy);
  e->policy = gpc_strdup(policy);
  e->in_flight = true;
  e->req_id = id;
  a->in_flight++;
  if (a->cfg.sent && kind != APPLY_KIND_PROBE) a->cfg.sent(kind, e->key, a->cfg.ud);
  return APPLY_SENT;
}

/* Common gate: busy when in flight (the policy becomes a waiter). */
static bool busy(struct entry *e, const char *policy) {
  if (!e->in_flight) return false;
  add_waiter(e, policy);
  return true;
}

static char *object_key(const json_t *obj, struct apply_gvr *gvr, const char **name,
                        const char **ns, struct gpc_error *err) {
  const char *av = json_string_value(json_object_get(obj, "apiVersion"));
  const char *kind = json_string_value(json_object_get(obj, "kind"));
  const json_t *md = json_object_get(obj, "metadata");
  *name = json_string_value(json_object_get(md, "name"));
  *ns = json_string_value(json_object_get(md, "namespace"));
  if (!apply_gvr_for(av, kind, gvr) || !*name || (gvr->namespaced && !*ns)) {
    gpc_fail(err, GPC_E_INVAL, "cannot write object %s/%s \"%s\"", av ? av : "?", kind ? kind : "?",
             *name ? *name : "?");
    return NULL;
  }
  if (!gvr->namespaced) *ns = NULL;
  return gpc_asprintf("%s/%s/%s/%s", av, kind, *ns ? *ns : "", *name);
}

/* The bookkeeping entry of a generated object, for a write about to be
 * decided: APPLY_SENT means "go ahead" (e set); APPLY_ERROR for an object
 * without apiVersion/kind/name; APPLY_BUSY when a write for it is in flight
 * (the policy is requeued when that write completes). */
static enum apply_result claim_object(struct gpc_apply *a, const char *policy, const json_t *obj,
                                      struct apply_gvr *gvr, const char **name, const char **ns,
                                      struct entry **e, struct gpc_error *err) {
  char *key = object_key(obj, gvr, name, ns, err);
  if (!key) return APPLY_ERROR;
  *e = lookup(a, key, true);
  free(key);
  return busy(*e, policy) ? APPLY_BUSY : APPLY_SENT;
}

enum apply_result apply_object(struct gpc_apply *a, const char *policy, const json_t *obj,
                               const struct gpc_daemonset *cached, bool cache_covers,
                               uint64_t now_ms, struct gpc_error *err) {
  struct apply_gvr gvr;
  const char *name, *ns;
  struct entry *e;
  enum apply_result pre = claim_object(a, policy, obj, &gvr, &name, &ns, &e, err);
  if (pre != APPLY_SENT) return pre;
  const char *hash = json_string_value(
      json_object_get(json_object_get(json_object_get(obj, "metadata"), "annotations"),
                      GPC_ANNOTATION_RENDER_HASH));
  if (!hash) hash = "";
  if (!e->policy) e->policy = gpc_strdup(policy);
  if (!cache_covers && !e->ref)
    e->ref = json_pack("{s:s, s:s, s:{s:s, s:s?}}", "apiVersion",
                       json_string_value(json_object_get(obj, "apiVersion")), "kind",
                       json_string_value(json_object_get(obj, "kind")), "metadata", "name", name,
                       "namespace", ns);
  if (!cache_covers && !e->mem.hash && !e->probed) {
    struct kube_request get = {
        .verb = KUBE_GET,
        .group = gvr.group,
        .version = gvr.version,
        .resource = gvr.plural,
        .namespace = ns,
        .name = name,
    };
    free(e->pending_hash);
    e->pending_hash = gpc_strdup(hash);
    if (submit(a, e, APPLY_KIND_PROBE, policy, &get, err) != APPLY_SENT) return APPLY_ERROR;
    add_waiter(e, policy);
    return APPLY_BUSY;
  }
  if (apply_decide_object(&e->mem, hash, cached, cache_covers, now_ms) == APPLY_DECIDE_SKIP) {
    clear_failure(a, e); /* as desired after all (someone else wrote it) */
    return APPLY_UNCHANGED;
  }
  if (apply_decide_retry(e->failures, e->retry_at_ms, e->fail_sig, hash, gpc_loop_now_ms()) ==
      APPLY_DECIDE_SKIP)
    return APPLY_BACKOFF;
  char *body = json_dumps(obj, JSON_COMPACT);
  struct kube_request req = {
      .verb = KUBE_PATCH,
      .group = gvr.group,
      .version = gvr.version,
      .resource = gvr.plural,
      .namespace = ns,
      .name = name,
      .field_manager = GPC_FIELD_MANAGER,
      .force = true,
      .body = body,
      .body_len = strlen(body),
      .patch_type = KUBE_PATCH_APPLY,
  };
  free(e->pending_hash);
  e->pending_hash = gpc_strdup(hash);
  enum apply_result res = submit(a, e, APPLY_KIND_OBJECT, policy, &req, err);
  free(body);
  return res;
}

/* Patch with echo suppression: skip when the same body was written
 * successfully against the same cached resourceVersion. */
static enum apply_result patch_echo(struct gpc_apply *a, const char *key, enum apply_kind kind,
                                    const char *policy, const char *cached_rv, json_t *body_json,
                                    struct kube_request *req, struct gpc_error *err) {
  struct entry *e = lookup(a, key, true);
  if (busy(e, policy)) return APPLY_BUSY;
  char *body = json_dumps(body_json, JSON_COMPACT | JSON_SORT_KEYS);
  if (e->last_ok && e->sent_body && e->sent_rv && strcmp(e->sent_body, body) == 0) {
    /* The cache predates our write: either nothing moved since we sent it,
     * or later events (heartbeats) arrived but not yet the one our write
     * produced. Once that one was seen, the same body is needed again only
     * because someone reverted it. */
    bool unchanged = strcmp(e->sent_rv, cached_rv ? cached_rv : "") == 0;
    bool waiting = !e->echo_seen && gpc_loop_now_ms() - e->done_ms < APPLY_UNSEEN_RETRY_MS;
    if (unchanged || waiting) {
      free(body);
      return APPLY_UNCHANGED;
    }
  }
  if (apply_decide_retry(e->failures, e->retry_at_ms, e->fail_sig, NULL, gpc_loop_now_ms()) ==
      APPLY_DECIDE_SKIP) {
    free(body);
    return APPLY_BACKOFF;
  }
  req->body = body;
  req->body_len = strlen(body);
  enum apply_result res = submit(a, e, kind, policy, req, err);
  if (res == APPLY_SENT) {
    free(e->sent_body);
    e->sent_body = body;
    free(e->sent_rv);
    e->sent_rv = gpc_strdup(cached_rv ? cached_rv : "");
  } else {
    free(body);
  }
  return res;
}

enum apply_result apply_node_labels(struct gpc_apply *a, const char *policy, const char *node,
                                    const char *cached_rv, const json_t *patch,
                                    struct gpc_error *err) {
  char *key = gpc_asprintf("node/%s", node);
  struct kube_request req = {
      .verb = KUBE_PATCH,
      .version = "v1",
      .resource = "nodes",
      .name = node,
      .patch_type = KUBE_PATCH_MERGE,
  };
  enum apply_result res =
      patch_echo(a, key, APPLY_KIND_NODE_LABELS, policy, cached_rv, (json_t *)patch, &req, err);
  free(key);
  return res;
}

enum apply_result apply_status(struct gpc_apply *a, const char *policy, const char *cached_rv,
                               const json_t *status, struct gpc_error *err) {
  char *key = gpc_asprintf("status/%s", policy);
  json_t *body = json_pack("{s:O}", "status", status);
  struct kube_request req = {
      .verb = KUBE_PATCH,
      .group = GPC_POLICY_GROUP,
      .version = GPC_POLICY_VERSION,
      .resource = GPC_POLICY_PLURAL,
      .name = policy,
      .subresource = "status",
      .patch_type = KUBE_PATCH_MERGE,
  };
  enum apply_result res = patch_echo(a, key, APPLY_KIND_STATUS, policy, cached_rv, body, &req, err);
  json_decref(body);
  free(key);
  return res;
}

enum apply_result apply_finalizers(struct gpc_apply *a, const char *policy, const char *cached_rv,
                                   const json_t *finalizers, struct gpc_error *err) {
  char *key = gpc_asprintf("policy/%s", policy);
  json_t *body = json_pack("{s:{s:O, s:s}}", "metadata", "finalizers", finalizers,
                           "resourceVersion", cached_rv ? cached_rv : "");
  struct kube_request req = {
      .verb = KUBE_PATCH,
      .group = GPC_POLICY_GROUP,
      .version = GPC_POLICY_VERSION,
      .resource = GPC_POLICY_PLURAL,
      .name = policy,
      .patch_type = KUBE_PATCH_MERGE,
  };
  enum apply_result res =
      patch_echo(a, key, APPLY_KIND_FINALIZER, policy, cached_rv, body, &req, err);
  json_decref(body);
  free(key);
  return res;
}

enum apply_result apply_delete(struct gpc_apply *a, const char *policy, const json_t *obj,
                               bool present, bool cache_covers, struct gpc_error *err) {
  struct apply_gvr gvr;
  const char *name, *ns;
  struct entry *e;
  enum apply_result pre = claim_object(a, policy, obj, &gvr, &name, &ns, &e, err);
  if (pre != APPLY_SENT) return pre;
  if (cache_covers) {
    if (!present) {
      clear_failure(a, e); /* gone after all */
      return APPLY_UNCHANGED;
    }
    /* Deleted already; the watch has not shown it yet. */
    if (e->deleted && gpc_loop_now_ms() - e->done_ms < APPLY_UNSEEN_RETRY_MS)
      return APPLY_UNCHANGED;
  } else if (e->deleted) {
    return APPLY_UNCHANGED;
  }
  if (apply_decide_retry(e->failures, e->retry_at_ms, e->fail_sig, NULL, gpc_loop_now_ms()) ==
      APPLY_DECIDE_SKIP)
    return APPLY_BACKOFF;
  struct kube_request req = {
      .verb = KUBE_DELETE,
      .group = gvr.group,
      .version = gvr.version,
      .resource = gvr.plural,
      .namespace = ns,
      .name = name,
      .propagation_policy = "Background",
  };
  return submit(a, e, APPLY_KIND_DELETE, policy, &req, err);
}

/* Keys of the objects in `desired`, as apply files them. */
static struct strmap *wanted_keys(const json_t *desired) {
  struct strmap *wanted = strmap_new();
  size_t i;
  const json_t *o;
  json_array_foreach(desired, i, o) {
    struct apply_gvr gvr;
    const char *name, *ns;
    struct gpc_error ignored = {0};
    char *key = object_key(o, &gvr, &name, &ns, &ignored);
    if (key) strmap_put(wanted, key, (void *)1);
    free(key);
  }
  return wanted;
}

static int cmp_entry_key(const void *x, const void *y) {
  return strcmp((*(struct entry *const *)x)->key, (*(struct entry *const *)y)->key);
}

void apply_known_objects(const struct gpc_apply *a, const char *policy, json_t *out) {
  struct entry **found = NULL;
  size_t n = 0, cap = 0;
  struct strmap_iter it;
  void *val;
  strmap_iter_init(&it, a->entries);
  while (strmap_next(&it, NULL, &val)) {
    struct entry *e = val;
    if (!e->ref || !e->policy || strcmp(e->policy, policy) != 0) continue;
    if (!e->exists && !e->in_flight) continue;
    gpc_grow((void **)&found, &cap, n + 1, sizeof *found);
    found[n++] = e;
  }
  /* The table's order is its hash's: sort, so the deletes go in one order. */
  if (n) qsort(found, n, sizeof *found, cmp_entry_key);
  for (size_t i = 0; i < n; i++)
    json_array_append(out, found[i]->ref);
  free(found);
}

void apply_forget_undesired(struct gpc_apply *a, const char *policy, const json_t *desired) {
  struct strmap *wanted = wanted_keys(desired);
  struct strmap_iter it;
  void *val;
  strmap_iter_init(&it, a->entries);
  while (strmap_next(&it, NULL, &val)) {
    struct entry *e = val;
    if (!e->ref || !e->policy || strcmp(e->policy, policy) != 0) continue;
    if (!e->in_flight && e->kind == APPLY_KIND_OBJECT && !strmap_get(wanted, e->key))
      clear_failure(a, e);
  }
  strmap_free(wanted, NULL, NULL);
}

enum apply_result apply_evict(struct gpc_apply *a, const char *policy, const char *ns,
                              const char *name, struct gpc_error *err) {
  char *key = gpc_asprintf("evict/%s/%s", ns, name);
  struct entry *e = lookup(a, key, true);
  free(key);
  if (busy(e, policy)) return APPLY_BUSY;
  /* Evicted already; the watch has not shown the pod Terminating yet. */
  if (e->deleted && e->last_ok && gpc_loop_now_ms() - e->done_ms < APPLY_UNSEEN_RETRY_MS)
    return APPLY_UNCHANGED;
  if (apply_decide_retry(e->failures, e->retry_at_ms, e->fail_sig, NULL, gpc_loop_now_ms()) ==
      APPLY_DECIDE_SKIP)
    return APPLY_BACKOFF;
  json_t *body = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "policy/v1", "kind",
                           "Eviction", "metadata", "name", name, "namespace", ns);
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  struct kube_request req = {
      .verb = KUBE_CREATE,
      .version = "v1",
      .resource = "pods",
      .namespace = ns,
      .name = name,
      .subresource = "eviction",
      .body = text,
      .body_len = strlen(text),
  };
  e->deleted = false;
  enum apply_result res = submit(a, e, APPLY_KIND_EVICT, policy, &req, err);
  free(text);
  return res;
}

/* Parses a resourceVersion that is a plain decimal integer; false else. */
static bool rv_number(const char *s, unsigned long long *out) {
  if (!s || !*s) return false;
  char *end = NULL;
  *out = strtoull(s, &end, 10);
  return *end == '\0' && isdigit((unsigned char)*s);
}

bool apply_echo_pending(const struct gpc_apply *a, const char *key, const char *cached_rv) {
  struct entry *e = lookup((struct gpc_apply *)a, key, false);
  if (!e) return false;
  if (e->in_flight) return true;
  if (!e->last_ok || !e->resp_rv || e->echo_seen) return false;
  if (gpc_loop_now_ms() - e->done_ms >= APPLY_UNSEEN_RETRY_MS) return false;
  unsigned long long cached, written;
  if (rv_number(cached_rv, &cached) && rv_number(e->resp_rv, &written)) return cached < written;
  return !(cached_rv && strcmp(cached_rv, e->resp_rv) == 0);
}
