/* apply.h — sending only the differences, at most one write in flight per
 * object.
 *
 * Owns: the writes of the reconciler and the memory of what was written:
 *  - generated objects: server-side apply (PATCH application/apply-patch+yaml,
 *    fieldManager=gpu-policy-controller, force=true), sent only when the
 *    desired render-hash differs from the cached object's annotation, the
 *    object is missing, or another writer changed it (the cached generation
 *    moved past what our last apply returned);
 *  - node labels: one merge patch per node per reconcile (plan.h builds it);
 *  - policy /status: a merge patch of .status (the caller compares first);
 *  - the finalizer: a merge patch of metadata.finalizers carrying
 *    metadata.resourceVersion as a precondition (409 when it moved);
 *  - deletes of generated objects (404 counts as done).
 *
 * Echo suppression: after a write succeeds, the informer cache shows the old
 * object until the watch event arrives. A write identical to the last one
 * sent for the same key, while the cache still shows the version it was sent
 * against (same resourceVersion, or for DaemonSets not yet seen with our
 * hash), is skipped: the watch event will trigger the next reconcile anyway.
 *
 * In flight: a write for a key that already has one in flight is not sent
 * (APPLY_BUSY); the policy is remembered as a waiter and named in the
 * completion, so the controller requeues it then.
 *
 * Failed writes back off per object: after the n-th consecutive failure of
 * a key, the next write of it is held (APPLY_BACKOFF) for
 * backoff_delay_ms(APPLY_RETRY_BASE_MS, APPLY_RETRY_CAP_MS, n-1) — jittered,
 * exponential, capped — however often the controller reconciles meanwhile.
 * Only a generated object whose desired render-hash changed (the spec was
 * edited) is tried again at once. The failure (verb, resource, name, code,
 * the server's message) is kept until a write of that key succeeds, so the
 * controller can count the reconcile as an error and show it in the status
 * (apply_policy_failures). Each failure is logged once: one line per
 * backoff step, never one per reconcile.
 *
 * Does not own: deciding what is desired (plan.c, status.c), requeueing the
 * policy (the controller does, from the completion's retry_in_ms).
 *
 * Threading: loop thread only. Strings and JSON passed in are borrowed (the
 * request body is serialized at once).
 */
#ifndef GPC_APPLY_H
#define GPC_APPLY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "model.h"
#include "xmacro.h"

struct kube_client;
struct gpc_apply;

#define GPC_FIELD_MANAGER "gpu-policy-controller"
/* A DaemonSet we applied but the cache has not shown within this time is
 * applied again (the watch may have missed it). */
#define APPLY_UNSEEN_RETRY_MS (30u * 1000u)
/* Per-object backoff of failed writes: 1-2 s after the first failure,
 * doubling to 60-120 s; a write refused for good costs about one request a
 * minute once the backoff is at its cap. */
#define APPLY_RETRY_BASE_MS 2000u
#define APPLY_RETRY_CAP_MS (120u * 1000u)

/* The kinds of write, one row each (xmacro.h): the value, its name in logs
 * ("kind=node-labels") and the verb a failure message starts with.
 * - OBJECT: server-side apply of a generated object.
 * - PROBE: a GET (not a write): before the first apply of a kind the cache
 *   does not cover, look whether the object is already there with our hash
 *   (a restarted controller adopts it instead of writing it again).
 * - EVICT: a pods/eviction create (driver upgrades): a 429 is a
 *   PodDisruptionBudget saying "not now", waited on through the per-object
 *   backoff, never bypassed and never shown as a failing write. */
#define APPLY_KIND_MAP(X)                                                                          \
  X(APPLY_KIND_OBJECT, "apply", "apply")                                                           \
  X(APPLY_KIND_NODE_LABELS, "node-labels", "patch")                                                \
  X(APPLY_KIND_STATUS, "status", "patch")                                                          \
  X(APPLY_KIND_FINALIZER, "finalizer", "patch")                                                    \
  X(APPLY_KIND_DELETE, "delete", "delete")                                                         \
  X(APPLY_KIND_PROBE, "probe", "get")                                                              \
  X(APPLY_KIND_EVICT, "evict", "create")

enum apply_kind { APPLY_KIND_MAP(GPC_X_ENUM) };
/* The kind's name ("node-labels"); "?" when out of range. Static storage. */
const char *apply_kind_name(enum apply_kind k);

enum apply_result {
  APPLY_SENT = 0,  /* a write was queued */
  APPLY_UNCHANGED, /* nothing to write (or echo pending) */
  APPLY_BUSY,      /* a write for this object is in flight; requeue on completion */
  APPLY_ERROR,     /* could not even build the request (err says why) */
  APPLY_BACKOFF,   /* the last write of this object failed; its retry time has not come */
};

/* What a finished write reports. All borrowed for the callback. */
struct apply_completion {
  enum apply_kind kind;
  const char *policy;  /* the policy whose reconcile sent it */
  const char *key;     /* "node/gpu-1", "apps/v1/DaemonSet/ns/name", "status/p", ... */
  int rc;              /* GPC_OK, GPC_E_CONFLICT (409), GPC_E_API, ... */
  long http_code;      /* 0 when no response */
  const char *message; /* the API's message when rc != GPC_OK */
  /* Policies that got APPLY_BUSY for this key while it was in flight. */
  const char *const *waiters;
  size_t n_waiters;
  /* rc != GPC_OK: consecutive failures of this key (1 = first) and when its
   * next write may go (ms from now). */
  unsigned failures;
  uint64_t retry_in_ms;
  /* rc == GPC_OK after failures: the failure is over (status to update). */
  bool recovered;
};
typedef void (*apply_done_cb)(const struct apply_completion *c, void *ud);

/* Observes every write sent (for tests and metrics). */
typedef void (*apply_sent_cb)(enum apply_kind kind, const char *key, void *ud);

struct apply_config {
  struct kube_client *client; /* borrowed, must outlive the apply */
  apply_done_cb done;         /* required */
  void *ud;
  apply_sent_cb sent; /* optional */
};

struct gpc_apply *apply_new(const struct apply_config *cfg);
/* Frees the memory; writes in flight are cancelled (their callbacks never run). */
void apply_free(struct gpc_apply *a);

/* Server-side applies `obj` (a rendered object with the render-hash
 * annotation). For kinds the cache does not cover, the first call for an
 * object this process has not written sends a GET instead and returns
 * APPLY_BUSY; the completion names the policy as a waiter. `cached` is the informer's projection
 * when the object is a DaemonSet in the cache; `cache_covers` says whether objects of this kind are
 * cached at all (DaemonSets: yes, so a NULL `cached` means missing; Services, RuntimeClasses: no,
 * so the memory of the last apply decides). */
enum apply_result apply_object(struct gpc_apply *a, const char *policy, const json_t *obj,
                               const struct gpc_daemonset *cached, bool cache_covers,
                               uint64_t now_ms, struct gpc_error *err);

/* Sends `patch` ({"metadata":{"labels":{...}}}) to node `node`, whose cached
 * resourceVersion is `cached_rv`. */
enum apply_result apply_node_labels(struct gpc_apply *a, const char *policy, const char *node,
                                    const char *cached_rv, const json_t *patch,
                                    struct gpc_error *err);

/* Patches the policy's /status with {"status": status}. `cached_rv` is the
 * policy's cached resourceVersion. The caller sends only when the status
 * changed (status_equal). */
enum apply_result apply_status(struct gpc_apply *a, const char *policy, const char *cached_rv,
                               const json_t *status, struct gpc_error *err);

/* Replaces metadata.finalizers with `finalizers` (an array), with
 * resourceVersion `cached_rv` as a precondition. */
enum apply_result apply_finalizers(struct gpc_apply *a, const char *policy, const char *cached_rv,
                                   const json_t *finalizers, struct gpc_error *err);

/* Deletes a generated object (apiVersion, kind, metadata.name/namespace are
 * read from `obj`). With `cache_covers`, `present` says whether the cache
 * still has it (absent: nothing sent); otherwise one successful delete per
 * key is remembered until apply_object writes it again. */
enum apply_result apply_delete(struct gpc_apply *a, const char *policy, const json_t *obj,
                               bool present, bool cache_covers, struct gpc_error *err);

/* Appends to `out` (a JSON array) a new {apiVersion, kind, metadata:{name,
 * namespace}} for each generated object of `policy` that no cache covers
 * (Services, ServiceMonitors, the RuntimeClass) and that this process knows
 * exists (it applied it, or its probe found it) or is writing now: the
 * plan's `known` input, from which it decides what a live policy prunes
 * (plan.h). In key order. */
void apply_known_objects(const struct gpc_apply *a, const char *policy, json_t *out);

/* Forgets the failures of object applies of `policy` that `desired` (the
 * plan's objects) no longer has and that have no write in flight: nothing
 * to retry, nothing to report (a ServiceMonitor whose CRD is missing, then
 * disabled). Apply's own bookkeeping; what to delete is the plan's. */
void apply_forget_undesired(struct gpc_apply *a, const char *policy, const json_t *desired);

/* Evicts pod ns/name through the Eviction API (policy/v1 Eviction). Key
 * "evict/<ns>/<name>"; one in flight; 404 counts as done (gone already); a
 * 201 is remembered so the pod is not evicted twice while its watch event
 * (deletionTimestamp) is on its way. */
enum apply_result apply_evict(struct gpc_apply *a, const char *policy, const char *ns,
                              const char *name, struct gpc_error *err);

/* True while the last write of `key` ("node/<name>") is in flight, or went
 * through less than APPLY_UNSEEN_RETRY_MS ago and the cache (at
 * `cached_rv`) has not shown what it produced yet: decisions from the
 * cached object would be stale. The watch event of a write may arrive
 * before its response: when both resourceVersions are integers (etcd
 * revisions, as every API server we know sends), a cache at or past the
 * write's version has seen it. */
bool apply_echo_pending(const struct gpc_apply *a, const char *key, const char *cached_rv);

/* Tells apply that the cache now holds version `rv` of the object written
 * under `key` ("node/<name>", "status/<policy>", "policy/<policy>"), so an
 * echo of our own write is recognised even when other events (kubelet
 * heartbeats) arrive in between. Call for every watch event of those. */
void apply_observed(struct gpc_apply *a, const char *key, const char *rv);

/* A write that failed and has not succeeded since. Borrowed strings. */
struct apply_failure {
  const char *key;
  const char *policy; /* the policy whose reconcile sent it */
  enum apply_kind kind;
  long http_code; /* 0 when no response arrived */
  const char
      *message;      /* "apply servicemonitors.monitoring.coreos.com ns/name: 404 NotFound: ..." */
  unsigned failures; /* consecutive */
  uint64_t retry_at_ms;
  bool in_flight; /* being retried now (its completion reports the outcome) */
};
typedef void (*apply_failure_cb)(const struct apply_failure *f, void *ud);

/* Starts a reconcile: apply_policy_failures() then reports only the objects
 * that the calls made since (apply_object, apply_node_labels, apply_status,
 * apply_finalizers, apply_delete) asked to write — an object
 * no longer desired does not keep a policy failing. */
void apply_begin_reconcile(struct gpc_apply *a);

/* Calls `fn` (may be NULL) for each write asked for since
 * apply_begin_reconcile() on behalf of `policy` whose last attempt failed,
 * in key order; returns how many there are. Cheap when nothing fails. */
size_t apply_policy_failures(const struct gpc_apply *a, const char *policy, apply_failure_cb fn,
                             void *ud);

/* Writes in flight (for bounded shutdown). */
unsigned apply_in_flight(const struct gpc_apply *a);
/* True when any write for `policy` is in flight. */
bool apply_policy_busy(const struct gpc_apply *a, const char *policy);
/* Forgets what was written under `key` ("node/<name>" once the node is
 * deleted), unless a write of it is in flight: a cluster whose nodes come
 * and go (autoscaling, unique names) does not grow the table forever. */
void apply_forget(struct gpc_apply *a, const char *key);
/* Keys remembered (for tests and the soak benchmark). */
size_t apply_entries(const struct gpc_apply *a);
/* Forgets what was applied for keys of `policy` (after it is gone). */
void apply_forget_policy(struct gpc_apply *a, const char *policy);

/* ---- pure parts, exposed for tests ----------------------------------- */

/* The API path pieces for a kind: group ("" core), version, plural, and
 * whether it is namespaced. Returns false for kinds the controller never
 * generates. */
struct apply_gvr {
  const char *group;
  const char *version;
  const char *plural;
  bool namespaced;
};
bool apply_gvr_for(const char *api_version, const char *kind, struct apply_gvr *out);

/* Memory of one object's last apply. */
struct apply_object_memory {
  char *hash;             /* render-hash of the last successful apply, NULL if none */
  int64_t generation;     /* metadata.generation that apply returned, 0 unknown */
  bool seen;              /* the cache has shown the object since */
  uint64_t applied_at_ms; /* when that apply completed */
};

enum apply_decision { APPLY_DECIDE_SKIP = 0, APPLY_DECIDE_SEND };

/* The decision for a DaemonSet (cache_covers) or other object, given the
 * memory (may be updated: adoption after a restart, `seen`). */
enum apply_decision apply_decide_object(struct apply_object_memory *m, const char *desired_hash,
                                        const struct gpc_daemonset *cached, bool cache_covers,
                                        uint64_t now_ms);

/* Whether a write of an object whose last write failed goes now: SKIP
 * while `now_ms` is before `retry_at_ms`, unless `sig` (the render-hash of
 * a generated object; NULL for other writes) differs from `failed_sig`,
 * the one that failed. SEND when there was no failure. */
enum apply_decision apply_decide_retry(unsigned failures, uint64_t retry_at_ms,
                                       const char *failed_sig, const char *sig, uint64_t now_ms);

/* Whether a failure is a refusal that will not heal by retrying the same
 * write (403, 404, 422, an admission denial ...: shown in the policy's
 * status at once) rather than a transient one (no response, 409, 429, 5xx:
 * shown only once it persists). A 404 on a node patch is the node going
 * away, which the watch reports: transient. */
bool apply_failure_is_refusal(enum apply_kind kind, long http_code);

#endif
