/* upgrade.h — the driver upgrade state machine's decisions (pure).
 *
 * design.md §10. With spec.driver.upgradePolicy.autoUpgrade, a driver change
 * (a new render of the OnDelete driver DaemonSet) rolls through the policy's
 * nodes one state at a time. The state lives in the cluster, on the node:
 *
 *   label      gpupolicy.dev/driver-upgrade-state   the state (below)
 *   annotation gpupolicy.dev/driver-upgrade-target  the driver render the
 *              state is about (a later change restarts done/failed nodes)
 *   annotation gpupolicy.dev/driver-upgrade-since   Unix seconds the state
 *              began (drain and wait timeouts count from it)
 *   annotation gpupolicy.dev/driver-upgrade-cordoned  "true" when WE set
 *              spec.unschedulable (written in the same patch): only then do
 *              we uncordon, so a node someone else cordoned — before or
 *              during the upgrade, or a failed node a person retries — is
 *              never uncordoned by us by mistake
 *   annotation gpupolicy.dev/driver-upgrade-reason  why the node failed
 *
 * so any leader continues where the last one stopped: this module reads those
 * facts (and the pods on each node) and says, per node, the ONE next step.
 * It owns no memory of its own between calls; no I/O, no clock (`now` is an
 * input), no globals. The controller turns steps into node merge patches
 * (upgrade_node_patch()), evictions and pod deletes, each at most one in
 * flight per object, and calls again when anything changed.
 *
 * States, in order:
 *   (none)       nothing to do on this node (its driver is current)
 *   pending      its driver pod runs an older render; waiting for a slot
 *   cordoned     spec.unschedulable set (by us: annotation; or already set)
 *   wait-jobs    pods matching waitForCompletion.podSelector still run; we
 *                wait for them (up to waitForCompletion.timeoutSeconds, then
 *                go on, as gpu-operator does)
 *   pod-deletion the pods requesting nvidia.com/gpu are evicted (Eviction
 *                API: PDBs are honoured); podDeletion.timeoutSeconds → failed
 *   drain        with drain.enable, the other pods too, as kubectl drain:
 *                DaemonSet and mirror pods are left alone, terminal pods go
 *                first, pods without a controller need drain.force, pods with
 *                emptyDir need drain.deleteEmptyDir, drain.podSelector limits
 *                the pods; drain.timeoutSeconds → failed
 *   restarting   the old driver pod is deleted; the node-side replacement
 *                (design.md §3) moves the later stages off the node and back
 *   validating   the new driver is Ready; waiting for the validator pod
 *   done         uncordoned (if we cordoned it); stays until the target
 *                changes
 *   failed       new driver or validator failing, or a drain/deletion
 *                timeout; reason annotated. Halts the rollout: no node starts
 *                until a person removes the label (retry this node) or the
 *                target changes (a fixed version).
 *
 * Bounds: a node leaves `pending` only when (a) autoUpgrade is on, the
 * rollout is not paused and no node is `failed` for the current target,
 * (b) fewer than maxParallelUpgrades nodes are between cordoned and
 * validating, and (c) cordoning it keeps the policy's unavailable nodes
 * (unschedulable or not Ready, whatever the cause) within maxUnavailable —
 * a node already unavailable costs nothing and is preferred. Nodes already in
 * flight finish while paused or halted (leaving them cordoned and drained
 * would be worse than finishing). Turning autoUpgrade off aborts: nodes we
 * cordoned are uncordoned and our label and annotations are removed.
 */
#ifndef GPC_UPGRADE_H
#define GPC_UPGRADE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "xmacro.h"

#define GPC_LABEL_UPGRADE_STATE "gpupolicy.dev/driver-upgrade-state"
#define GPC_ANNOTATION_UPGRADE_TARGET "gpupolicy.dev/driver-upgrade-target"
#define GPC_ANNOTATION_UPGRADE_SINCE "gpupolicy.dev/driver-upgrade-since"
#define GPC_ANNOTATION_UPGRADE_CORDONED "gpupolicy.dev/driver-upgrade-cordoned"
#define GPC_ANNOTATION_UPGRADE_REASON "gpupolicy.dev/driver-upgrade-reason"

/* X(enum value, label value) (xmacro.h) */
#define GPC_UPG_STATE_MAP(X)                                                                       \
  X(GPC_UPG_NONE, "")                                                                              \
  X(GPC_UPG_PENDING, "pending")                                                                    \
  X(GPC_UPG_CORDONED, "cordoned")                                                                  \
  X(GPC_UPG_WAIT_JOBS, "wait-jobs")                                                                \
  X(GPC_UPG_POD_DELETION, "pod-deletion")                                                          \
  X(GPC_UPG_DRAIN, "drain")                                                                        \
  X(GPC_UPG_RESTARTING, "restarting")                                                              \
  X(GPC_UPG_VALIDATING, "validating")                                                              \
  X(GPC_UPG_DONE, "done")                                                                          \
  X(GPC_UPG_FAILED, "failed")
enum gpc_upg_state { GPC_UPG_STATE_MAP(GPC_X_ENUM) GPC_UPG_COUNT };

/* The label value ("" for NONE); a static string. */
const char *upgrade_state_name(enum gpc_upg_state s);
/* Parses a label value; NULL or "" is NONE; an unknown value is -1. */
int upgrade_state_parse(const char *value);
/* Between cordoned and validating: holds one of maxParallelUpgrades. */
bool upgrade_state_in_progress(enum gpc_upg_state s);

/* What the policy asks for (spec.driver.upgradePolicy), with maxUnavailable
 * already resolved against the policy's node count by the caller. */
struct gpc_upg_settings {
  bool auto_upgrade;
  bool paused;
  int32_t max_parallel;       /* 0: no limit */
  int32_t max_unavailable;    /* nodes; at least 1 */
  int32_t wait_timeout_s;     /* waitForCompletion.timeoutSeconds; 0: forever */
  int32_t deletion_timeout_s; /* podDeletion.timeoutSeconds; 0: forever */
  bool deletion_force;        /* podDeletion.force: GPU pods without a controller too */
  bool deletion_empty_dir;    /* podDeletion.deleteEmptyDir */
  bool drain;                 /* drain.enable */
  bool drain_force;
  bool drain_empty_dir;
  int32_t drain_timeout_s; /* 0: forever */
};

/* A pod bound to a node, as far as evicting it is concerned. */
struct gpc_upg_pod {
  const char *namespace;
  const char *name;
  bool gpu;       /* requests or limits nvidia.com/gpu > 0 */
  bool daemonset; /* controller owner is a DaemonSet (operands included) */
  bool mirror;    /* kubernetes.io/config.mirror annotation (static pod) */
  /* Ours: app.kubernetes.io/managed-by gpu-policy-controller or
   * gpu-policy-validator (the validator's one-shot allocation pod): never
   * evicted, the node-side replacement handles them. */
  bool ours;
  bool has_controller; /* any controller ownerReference */
  bool empty_dir;      /* mounts an emptyDir volume */
  bool terminal;       /* phase Succeeded or Failed */
  bool deleting;       /* deletionTimestamp set: on its way out */
  bool wait_selected;  /* matches waitForCompletion.podSelector (none: false) */
  bool drain_selected; /* matches drain.podSelector (no selector: true) */
};

/* One node of the policy, with what the node side says about its driver. */
struct gpc_upg_node {
  const char *name;
  /* The driver render this node should run (its driver DaemonSet's
   * render-hash); NULL: the input's target. */
  const char *want;
  enum gpc_upg_state state;  /* from the label (an unknown value: NONE) */
  const char *target;        /* annotation, "" when absent */
  int64_t since;             /* annotation, 0 when absent */
  bool cordoned_by_us;       /* annotation: our cordon */
  const char *reason;        /* annotation: why it failed, "" when absent */
  bool unschedulable;        /* spec.unschedulable */
  bool ready;                /* Node Ready condition */
  bool driver_current;       /* its driver pod runs the target render */
  bool driver_ready;         /* ... and is Ready */
  bool driver_failing;       /* ... and is failing (plan.c's judgement) */
  bool driver_deleting;      /* the old driver pod is Terminating already */
  const char *driver_reason; /* why failing, "" else */
  /* The validator pod (or, disabled, the last enabled stage's) is Ready AND
   * newer than the driver pod: an old validator that outlived the driver
   * restart proves nothing about the new driver. */
  bool validator_ready;
  bool validator_failing;
  const char *validator_reason;
  const struct gpc_upg_pod *pods; /* bound to this node, not ours to skip */
  size_t n_pods;
};

enum gpc_upg_cordon { GPC_UPG_CORDON_KEEP = 0, GPC_UPG_CORDON_SET, GPC_UPG_CORDON_CLEAR };

/* The next step for one node. Indices are into that node's pods. */
struct gpc_upg_step {
  size_t node;           /* index into the input nodes */
  bool transition;       /* write state (label + annotations) */
  enum gpc_upg_state to; /* the new state when transition */
  enum gpc_upg_cordon cordon;
  char reason[256]; /* failed: why; else "" */
  size_t *evict;    /* pods to evict through pods/eviction (owned) */
  size_t n_evict;
  bool delete_driver; /* delete the node's (old) driver pod */
};

struct gpc_upg_plan {
  struct gpc_upg_step *steps; /* only nodes with something to do */
  size_t n_steps;
  uint32_t counts[GPC_UPG_COUNT]; /* states after the steps */
  uint32_t unavailable;           /* after the steps */
  bool halted;                    /* a node failed for this target */
  char halt_node[254];            /* the first failed node, "" else */
  bool held;                      /* paused with nodes pending */
  /* The earliest Unix second a wait or drain timeout falls due (plan again
   * then), 0 when none. */
  int64_t recheck_at;
};

struct gpc_upg_input {
  const struct gpc_upg_settings *settings;
  const char *target; /* the driver render the nodes should run */
  const struct gpc_upg_node *nodes;
  size_t n_nodes;
  int64_t now; /* Unix seconds */
};

/* Computes every node's next step. Never fails (allocation aborts). */
void upgrade_plan(const struct gpc_upg_input *in, struct gpc_upg_plan *out);
void upgrade_plan_release(struct gpc_upg_plan *p);

struct gpc_driver_upgrade_policy;

/* The settings of a decoded spec.driver.upgradePolicy (borrowed) over a
 * policy owning `nodes` nodes. */
void upgrade_settings_from_policy(const struct gpc_driver_upgrade_policy *u, uint32_t nodes,
                                  struct gpc_upg_settings *out);

/* The eviction facts of a core/v1 Pod object (borrowed; out's strings
 * point into it, so it must outlive *out), with the policy's
 * waitForCompletion and drain selectors applied. */
void upgrade_pod_facts(const json_t *pod, const struct gpc_driver_upgrade_policy *u,
                       struct gpc_upg_pod *out);

/* A pod of any namespace as the upgrade sees it (the workload informer's
 * projection: the JSON is freed at once). Owns its strings and labels. */
struct gpc_workload {
  char *namespace;
  char *name;
  char *node; /* spec.nodeName, "" while unbound */
  struct gpc_labels labels;
  struct gpc_upg_pod facts; /* namespace/name point at the strings above;
                             * the selector bits are unset (per policy) */
};
/* A new workload projected from `pod` (borrowed); caller frees with
 * upgrade_workload_free (NULL is a no-op). */
struct gpc_workload *upgrade_workload_new(const json_t *pod);
void upgrade_workload_free(struct gpc_workload *w);
/* Something the upgrade decides on moved. */
bool upgrade_workload_changed(const struct gpc_workload *a, const struct gpc_workload *b);
/* The facts with `u`'s waitForCompletion and drain selectors applied. */
void upgrade_workload_facts(const struct gpc_workload *w, const struct gpc_driver_upgrade_policy *u,
                            struct gpc_upg_pod *out);

/* status.driverUpgrade (new reference): {target, summary "done/total",
 * states {state: count} (every state, after the plan's steps), halted,
 * paused, nodes: at most GPC_UPG_STATUS_NODES [{name, state, reason?}] —
 * failed first, then in progress, then pending, by name}. */
#define GPC_UPG_STATUS_NODES 10
json_t *upgrade_status_json(const struct gpc_upg_input *in, const struct gpc_upg_plan *p);

/* maxUnavailable "25%" or "3" over `nodes` nodes: a percent rounds up (as
 * the DaemonSet controller does); the result is at least 1. */
int32_t upgrade_resolve_max_unavailable(const char *value, bool is_percent, uint32_t nodes);

/* The node merge patch for a step (new reference; NULL when the step writes
 * nothing on the node): the state label, target/since/reason/cordoned-before
 * annotations, spec.unschedulable and our cordon marker with it. NONE
 * removes ours. */
json_t *upgrade_node_patch(const struct gpc_upg_step *s, const char *target, int64_t now);

#endif
