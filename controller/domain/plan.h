/* plan.h — what one policy wants the cluster to look like (pure).
 *
 * plan_compute() turns a decoded policy, every other decoded policy (for
 * ownership), and the controller's cached projections of Nodes, operand
 * DaemonSets and operand Pods into:
 *   - node label changes: at most ONE merge patch per node, carrying every
 *     label to set or remove (all stage unlocks due on a node go together),
 *     with the stages it unlocks as data (gpc_node_patch.unlocks);
 *   - the desired objects (render.h), each with its render-hash annotation;
 *   - the generated objects to delete, and, for a deleting policy, whether
 *     the caches still show cleanup left to do;
 *   - the facts status.c turns into .status (counts, per-operand state,
 *     failing nodes).
 * No I/O, no clock, no globals: the same input always gives the same plan.
 *
 * Semantics (design.md §3–§4):
 *   - A node is matched by spec.nodeSelector, or when that is empty by GPU
 *     detection (any of the four labels in plan_node_matches()).
 *   - A node matched by several policies belongs to the oldest
 *     (creationTimestamp, then name); for the others it is "conflicted":
 *     counted, never touched. Deleting policies take part in nothing.
 *   - gpupolicy.dev/operands=false: the node is skipped and every label of
 *     ours is removed from it; gpupolicy.dev/<operand>=false is an opt-out
 *     the controller never overwrites, and counts as satisfied, as does a
 *     disabled operand.
 *   - Per-node gating: gpupolicy.dev/policy=<name> on every owned node;
 *     gpupolicy.dev/<operand>=true once every earlier stage (driver ->
 *     container-toolkit -> device-plugin -> {dcgm-exporter, validator}) is
 *     satisfied ON THAT NODE (its pod there is Ready). An unlock is sticky
 *     while the node stays ours: a restarting driver pod does not tear down
 *     the stages above it (that would evict every GPU workload twice).
 *   - A Terminating pod (deletionTimestamp) never satisfies a stage and is
 *     chosen only when its node has no other pod of that operand; it is
 *     never failing (its replacement will tell).
 *   - A pod in a passing state (gpc_pod.progressing: unscheduled, no sandbox
 *     yet, init container failing, starting inside its start-up window,
 *     Failed awaiting its replacement) is failing only once it lasted its
 *     window + pod_grace_s; recheck_at says when that is next due.
 *   - A NotReady node is matched but never ready; operands do not wait for it
 *     (their state ignores its pods), so one dead machine does not hold the
 *     policy in "rolling out".
 *   - Nodes carrying gpupolicy.dev/policy=<name> that this policy no longer
 *     owns lose every gpupolicy.dev/ label we write (never opt-outs), unless
 *     another policy now owns them (its plan rewrites them).
 *   - A deleting policy wants no objects and no labels on its nodes.
 *
 * Memory: the input is borrowed for the duration of the call; the plan owns
 * everything in it (plan_release()).
 */
#ifndef GPC_PLAN_H
#define GPC_PLAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "model.h"
#include "policy.h"
#include "render.h"
#include "templates.h"
#include "xmacro.h"

struct gpc_plan_input {
  const struct gpc_policy *policy; /* the policy being reconciled */
  /* Every successfully decoded policy, `policy` included or not (it is
   * considered either way). Invalid policies are left out: they own
   * nothing. */
  const struct gpc_policy *const *policies;
  size_t n_policies;
  const struct gpc_node *const *nodes;
  size_t n_nodes;
  /* Operand DaemonSets and Pods of every policy: filtered by policy here. */
  const struct gpc_daemonset *const *daemonsets;
  size_t n_daemonsets;
  const struct gpc_pod *const *pods;
  size_t n_pods;
  const struct gpc_templates *templates;
  const char *namespace; /* the controller's namespace */
  /* Unix seconds now, for how long a pod has been progressing (0: unknown,
   * progressing pods are then never failing), and the grace period after
   * which a progressing pod counts as failing (0: GPC_POD_GRACE_DEFAULT_S). */
  int64_t now;
  int32_t pod_grace_s;
  /* Borrowed, may be NULL: generated objects of this policy that the
   * controller knows exist although no cache shows them (Services,
   * ServiceMonitors it applied or found), as {apiVersion, kind, metadata:
   * {name, namespace}} (apply_known_objects()). A live policy deletes those
   * it no longer renders. */
  const json_t *known;
};

/* How long a pod may stay unscheduled, without a sandbox, with an init
 * container failing, pulling/creating, Failed awaiting its replacement, or
 * running not ready past its startup probe's window, before it shows in
 * failingNodes. */
#define GPC_POD_GRACE_DEFAULT_S 300

struct gpc_node_patch {
  char *node;    /* node name */
  json_t *patch; /* {"metadata":{"labels":{key: "value" | null, ...}}} */
  /* Operands this patch unlocks (sets gpupolicy.dev/<operand>="true"), a bit
   * per enum gpc_operand: the controller announces a stage (StageUnlocked)
   * once a patch unlocking it went out, without reading the patch back. */
  unsigned unlocks;
};

/* A generated object to delete. */
struct gpc_plan_delete {
  /* New reference: apiVersion, kind, metadata.name/namespace (apply_delete
   * reads those). */
  json_t *ref;
  /* A DaemonSet the cache shows (apply_delete's present and cache_covers):
   * deletion is not done while it is there. Otherwise an object the cache
   * does not cover (Service, ServiceMonitor), deleted once per key. */
  bool cached;
};

/* An operand's state and its name in .status (xmacro.h). */
#define GPC_OPERAND_STATE_MAP(X)                                                                   \
  X(GPC_STATE_READY, "Ready")                                                                      \
  X(GPC_STATE_PROGRESSING, "Progressing")                                                          \
  X(GPC_STATE_DEGRADED, "Degraded")                                                                \
  X(GPC_STATE_DISABLED, "Disabled")

enum gpc_operand_state { GPC_OPERAND_STATE_MAP(GPC_X_ENUM) };
/* "Ready", "Progressing", "Degraded", "Disabled"; "Unknown" out of range.
 * Static storage. */
const char *plan_operand_state_name(enum gpc_operand_state s);

struct gpc_operand_summary {
  enum gpc_operand_state state;
  char daemonset[GPC_NAME_MAX + 1]; /* rendered DaemonSet name, "" when disabled */
  /* From the DaemonSet's status (0 while it does not exist). */
  int32_t desired, ready, updated, available;
  bool ds_found;   /* the DaemonSet is in the cache */
  bool ds_current; /* found, its render-hash is the desired one and its
                    * controller has observed the latest generation */
  /* Over owned nodes where this operand applies (enabled, not opted out). */
  uint32_t nodes_wanted;   /* owned nodes that will run it */
  uint32_t nodes_unlocked; /* ... whose label is (or is about to be) set */
  uint32_t nodes_ready;    /* ... whose pod is Ready */
  uint32_t nodes_failing;  /* ... whose pod is failing (see failing[]) */
  uint32_t nodes_down;     /* ... that are NotReady (their pods cannot become Ready) */
  /* OnDelete (driver): pods still running the previous template. */
  int32_t pending_update;
  /* RollingUpdate not done and a pod of this operand is Terminating on a
   * NotReady node: its kubelet cannot finish it, so it holds one unit of
   * maxUnavailable for good. The first such node, or NULL. */
  char *blocked_node;
};

struct gpc_failing_node {
  char *node;
  enum gpc_operand op;
  char *reason;
  char *message;
  /* The node itself is NotReady or unreachable (reason NodeNotReady or
   * Unreachable): listed, but not a failure of the stack. */
  bool node_down;
};

struct gpc_plan {
  bool deleting;
  json_t *objects; /* array of desired objects; empty when deleting */
  struct gpc_node_patch *patches;
  size_t n_patches;
  /* Generated objects of this policy to delete: the cached DaemonSets of
   * the policy that `objects` no longer has (an operand disabled; all of
   * them when deleting, by cache order), then, when deleting, every
   * object but DaemonSets the policy renders to, shared cluster-scoped ones
   * left out (the cache does not show those: Services, ServiceMonitors;
   * ownerReferences would collect them too, but they go explicitly). For a
   * live policy, also the `known` namespaced objects (not DaemonSets) that
   * `objects` no longer has: a Service or ServiceMonitor whose operand or
   * serviceMonitor was disabled. */
  struct gpc_plan_delete *deletes;
  size_t n_deletes;
  /* Deleting: a node still carries gpupolicy.dev/policy=<name> or a
   * DaemonSet of the policy is still cached, so the finalizer stays.
   * False for a live policy. */
  bool cleanup_left;

  uint32_t matched;    /* owned nodes (matched, not conflicted, not opted out) */
  uint32_t ready;      /* owned nodes where every applicable operand is Ready */
  uint32_t conflicted; /* matched nodes owned by an older policy */
  uint32_t opted_out;  /* matched nodes with gpupolicy.dev/operands=false */
  /* Owned nodes whose Node Ready condition is not True: counted in matched,
   * never in ready, but not waited for (a dead node must not keep a policy
   * "rolling out" forever); status names them. */
  uint32_t not_ready;
  char *not_ready_first; /* the first such node by input order, or NULL */
  char *conflict_owner;  /* the older policy owning the first conflicted node, or NULL */
  int64_t gpus;          /* sum of owned nodes' allocatable nvidia.com/gpu */
  struct gpc_operand_summary operands[GPC_OP_COUNT];
  /* Every failing (node, operand), sorted by node name then stage. */
  struct gpc_failing_node *failing;
  size_t n_failing;
  /* The earliest Unix second a progressing pod's grace period ends (the
   * plan can then differ: reconcile again), 0 when none. */
  int64_t recheck_at;
};

/* Computes the plan. Returns GPC_OK, or an error (rendering failed: a
 * template or the policy name is unusable) with *out zeroed. */
int plan_compute(const struct gpc_plan_input *in, struct gpc_plan *out, struct gpc_error *err);
void plan_release(struct gpc_plan *p);

/* The label patches taking our labels off the `n` nodes that still carry
 * gpupolicy.dev/policy=`name` when that policy is gone from the cache (its
 * finalizer was bypassed): the policy label and every operand label that is
 * "true" (opt-outs stay). Fills out->patches only (zeroed first; release
 * with plan_release()). */
void plan_gone(const char *name, const struct gpc_node *const *nodes, size_t n,
               struct gpc_plan *out);

/* The stages of a policy announced already (one StageUnlocked per operand
 * per generation), kept by the caller between reconciles; zero to start. */
struct gpc_stages_announced {
  unsigned bits;      /* a bit per enum gpc_operand */
  int64_t generation; /* the generation `bits` are for */
};

/* Which operands to announce now (a bit per operand): those that `unlocks`
 * (patches sent this reconcile per operand, GPC_OP_COUNT entries) counts and
 * that were not announced for `generation` yet; the first node to unlock a
 * stage announces it, later nodes are in the status counts. Updates `a`. */
unsigned plan_stages_to_announce(struct gpc_stages_announced *a, int64_t generation,
                                 const unsigned *unlocks);

/* The finalizer edits (metadata.finalizers, `cur` borrowed, may be NULL):
 * plan_finalizers_add() returns `cur` with GPC_POLICY_FINALIZER appended (a
 * new reference), or NULL when `p` has it already (nothing to write);
 * plan_finalizers_drop() returns `cur` without it (a new reference), for
 * when a deleting policy's cleanup is done. */
json_t *plan_finalizers_add(const struct gpc_policy *p, const json_t *cur);
json_t *plan_finalizers_drop(const json_t *cur);

/* Does `p`'s node selection (selector, or default GPU detection) match? */
/* Whether a rendered object (borrowed) is a DaemonSet: the one kind the
 * caches show, so it is applied, pruned and waited for from the cache. */
bool plan_is_daemonset(const json_t *obj);
bool plan_node_matches(const struct gpc_policy *p, const struct gpc_node *n);
/* True when `a` is older than `b` (creationTimestamp, then name): the older
 * policy wins a node both match. */
bool plan_policy_older(const struct gpc_policy *a, const struct gpc_policy *b);
/* The policy that owns `n` among `policies` (deleting ones excluded), or
 * NULL. For mapping node events to the policies to reconcile. */
const struct gpc_policy *plan_node_owner(const struct gpc_policy *const *policies, size_t n,
                                         const struct gpc_node *node);

#endif
