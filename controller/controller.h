/* controller.h — the reconciler: informers, workqueue, plan, apply, status.
 *
 * Owns the I/O half of reconciling ClusterGPUPolicy objects (design.md §2–§5):
 *  - four informers: ClusterGPUPolicy (cluster-scoped, JSON kept: few and
 *    small), Node (all, projected), and the DaemonSets and Pods labelled
 *    app.kubernetes.io/managed-by=gpu-policy-controller in the controller's
 *    namespace (projected); and, started the first time a policy sets
 *    spec.driver.upgradePolicy.autoUpgrade, a fifth over the pods of every
 *    namespace (upgrade.h's gpc_workload), for driver upgrades;
 *  - a workqueue keyed by policy name; node events map to the node's owner
 *    label and every policy whose selection matches, pod and DaemonSet
 *    events to their gpupolicy.dev/policy label; only changes that matter
 *    (decode.h) enqueue anything;
 *  - reconcile(policy): caches synced → decode (invalid: Stalled naming the
 *    field, nothing applied) → finalizer → plan → apply → driver upgrade
 *    steps (upgrade_run.h) → status → events;
 *    deletion: labels removed, objects deleted, finalizer dropped.
 *
 * Hook points for the runtime (leader election, health, metrics):
 *  - controller_set_leader(): only a leader writes (default: leader, for
 *    runs without --leader-elect); becoming leader re-reconciles everything;
 *  - controller_synced(): every informer has listed once (/readyz);
 *  - struct controller_observer: per-reconcile and per-policy callbacks for
 *    metrics.
 *
 * Threading: everything runs on the loop. Memory: the config's pointers are
 * borrowed and must outlive the controller.
 */
#ifndef GPC_CONTROLLER_H
#define GPC_CONTROLLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct gpc_loop;
struct kube_client;
struct gpc_templates;
struct gpc_plan;
struct controller;

struct controller_config {
  struct gpc_loop *loop;
  struct kube_client *client;
  const struct gpc_templates *templates;
  const char *namespace; /* operands' namespace */
  const char *identity;  /* Event source host, e.g. the pod name; may be NULL */
  int watch_timeout_s;   /* 0: the informer's default */
  int pod_grace_s;       /* plan's pod grace period; 0: GPC_POD_GRACE_DEFAULT_S */
};

/* Metrics hooks; any member may be NULL. Strings are borrowed for the call. */
struct controller_observer {
  /* result: "success", "error", "requeue" (controller-runtime's labels). */
  void (*reconciled)(const char *policy, const char *result, double seconds, void *ud);
  /* After each successful plan of a live policy. */
  void (*planned)(const char *policy, const struct gpc_plan *plan, void *ud);
  /* A policy is gone (drop its series). */
  void (*forgotten)(const char *policy, void *ud);
  /* Driver upgrades: nodes per state (indexed by enum gpc_upg_state, `n`
   * entries), or NULL when the policy has no upgrade to show. */
  void (*upgrading)(const char *policy, const uint32_t *counts, size_t n, void *ud);
  void *ud;
};

struct controller_stats {
  uint64_t reconciles;
  uint64_t reconcile_errors;
  uint64_t writes[5]; /* by enum apply_kind */
  uint64_t events_written;
  unsigned queue_depth;
  uint64_t queue_adds;    /* workqueue_adds_total */
  uint64_t queue_retries; /* workqueue_retries_total */
  unsigned writes_in_flight;
};

struct controller *controller_new(const struct controller_config *cfg, struct gpc_error *err);
/* Starts the informers (LIST then WATCH). */
int controller_start(struct controller *c, struct gpc_error *err);
/* Stops the informers and the queue; writes in flight continue (see
 * controller_in_flight) until they complete or the controller is freed. */
void controller_stop(struct controller *c);
/* Cancels whatever is still in flight and frees. */
void controller_free(struct controller *c);

void controller_set_leader(struct controller *c, bool leader);
bool controller_is_leader(const struct controller *c);
bool controller_synced(const struct controller *c);
unsigned controller_in_flight(const struct controller *c);
void controller_set_observer(struct controller *c, const struct controller_observer *o);
void controller_get_stats(const struct controller *c, struct controller_stats *out);

#endif
