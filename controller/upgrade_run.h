/* upgrade_run.h — carries out the driver upgrade's steps (the I/O half).
 *
 * Per reconcile of a policy: gathers the facts upgrade.c decides on from the
 * controller's caches (owned nodes with their upgrade label/annotations and
 * spec.unschedulable; each node's driver and validator pods from the operand
 * pod cache; the pods of every namespace bound to the node from the
 * workload cache), runs upgrade_plan(), and sends what it says through
 * apply: one merge patch per node (state label + annotations +
 * spec.unschedulable), pods/eviction creates, the old driver pod's delete —
 * each at most one in flight per object with apply's per-object backoff.
 * A node whose last patch has not come back through the watch yet is left
 * alone for this round (its cached state is stale). Events (through the
 * callback) for each transition sent.
 *
 * Holds back entirely (no steps) while the policy's driver DaemonSets are
 * not yet applied and observed at the desired render (their pods' template
 * generation would compare against the old one).
 *
 * Owns nothing between calls; the output's JSON is a new reference
 * (upgrade_run_release()). Everything in the input is borrowed.
 */
#ifndef GPC_UPGRADE_RUN_H
#define GPC_UPGRADE_RUN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apply.h"
#include "model.h"
#include "plan.h"
#include "policy.h"
#include "upgrade.h"

struct upgrade_run_in {
  struct gpc_apply *apply;
  const struct gpc_policy *policy;
  const struct gpc_plan *plan; /* this reconcile's plan of the policy */
  const struct gpc_node *const *nodes;
  size_t n_nodes;
  const struct gpc_daemonset *const *ds;
  size_t n_ds;
  const struct gpc_pod *const *pods;
  size_t n_pods;
  const struct gpc_workload *const *work; /* every bound pod, any namespace */
  size_t n_work;
  bool work_synced; /* the workload cache has listed: pods can be trusted */
  /* The policy is being deleted: abandon the upgrade on its nodes (lift
   * our cordons, remove our labels) and do nothing else. */
  bool abort;
  int64_t now; /* Unix seconds */
  void (*event)(const char *type, const char *reason, const char *message, void *ud);
  void *ud;
};

struct upgrade_run_out {
  bool active;    /* the policy has an upgrade to show: status.driverUpgrade */
  json_t *status; /* status.driverUpgrade (new reference) when active */
  bool halted;
  bool in_progress; /* nodes pending or between cordoned and validating */
  char message[512];
  int64_t recheck_at; /* a timeout falls due then (Unix seconds), 0 none */
  uint32_t counts[GPC_UPG_COUNT];
  unsigned writes; /* node patches, evictions and deletes sent */
  bool stale;      /* a node was left for later: its last write is not in the cache yet */
  unsigned left;   /* nodes being abandoned that still carry an upgrade state */
};

void upgrade_run(const struct upgrade_run_in *in, struct upgrade_run_out *out);
void upgrade_run_release(struct upgrade_run_out *out);

#endif
