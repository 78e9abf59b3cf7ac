/* model.h — compact projections of the live objects the planner reads.
 *
 * The controller's informers turn each Node, operand DaemonSet and operand Pod
 * into one of these structs on arrival and free the parsed JSON at once
 * (design.md §5): only the fields plan.c and status.c read are kept. The
 * structs are plain data; plan() borrows them and never keeps a pointer past
 * its return.
 *
 * Labels: a node keeps ALL its labels (a policy's nodeSelector can match any
 * key) in one allocation: the pairs "key\0value\0..." sorted by key, then
 * an index of key offsets, so a lookup is a binary search (the planner does
 * about twenty per node per plan) and equality does not depend on the order
 * the API server sent them in. No per-label malloc.
 *
 * Memory: every char * and the label arena are owned by the struct and freed
 * by the matching *_release() (which leaves the struct zeroed). Strings are
 * never NULL after *_init()/projection: absent fields are "".
 */
#ifndef GPC_MODEL_H
#define GPC_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Label keys written and read by the controller (design.md §4). */
#define GPC_LABEL_PREFIX "gpupolicy.dev/"
#define GPC_LABEL_POLICY "gpupolicy.dev/policy"     /* node claimed by <policy> */
#define GPC_LABEL_OPERANDS "gpupolicy.dev/operands" /* "false": opt out of everything */
/* Node variants (design.md §3 "Node side"): set by the controller only on
 * nodes whose runtime / OS differs from the default variant's. */
#define GPC_LABEL_RUNTIME "gpupolicy.dev/runtime"
#define GPC_LABEL_OS "gpupolicy.dev/os"
#define GPC_DEFAULT_OS "ubuntu22.04" /* a node whose OS nobody states */
#define GPC_ANNOTATION_RENDER_HASH "gpupolicy.dev/render-hash"
/* On a node: the driver pod its later stages were last unlocked against
 * (plan.c, design.md §3 "Driver replacement"). */
#define GPC_ANNOTATION_DRIVER_POD "gpupolicy.dev/driver-pod"
#define GPC_MANAGED_BY "gpu-policy-controller"

/* ---- labels ---------------------------------------------------------- */

struct gpc_labels {
  char *buf;      /* sorted "k\0v\0..." then the key index; owned; NULL when empty */
  uint32_t len;   /* bytes of pairs in buf (the index follows) */
  uint32_t count; /* number of key/value pairs */
};

/* Replaces the contents with the string-valued members of a JSON object
 * (borrowed; NULL or not an object = no labels). Non-string values are
 * skipped (the API server never sends them). */
void gpc_labels_set_json(struct gpc_labels *l, const json_t *obj);
/* Value of `key`, or NULL when absent. Borrowed: owned by l, valid until l
 * is next changed or released. */
const char *gpc_labels_get(const struct gpc_labels *l, const char *key);
/* The same with selector.h's selector_label_lookup_fn signature, so that
 * selector_matches(sel, gpc_labels_lookup, &node->labels) works. */
const char *gpc_labels_lookup(const void *labels, const char *key);
/* Iteration in key order: `*pos` starts at 0; returns false at the end.
 *   for (uint32_t p = 0; gpc_labels_next(l, &p, &k, &v);) ... */
bool gpc_labels_next(const struct gpc_labels *l, uint32_t *pos, const char **key,
                     const char **value);
/* True when both hold the same pairs (one memcmp: storage is sorted). */
bool gpc_labels_equal(const struct gpc_labels *a, const struct gpc_labels *b);
/* A new JSON object with every pair (new reference). */
json_t *gpc_labels_to_json(const struct gpc_labels *l);
void gpc_labels_release(struct gpc_labels *l);

/* ---- nodes ----------------------------------------------------------- */

/* A node taint that keeps pods off the node: NoSchedule or NoExecute
 * (PreferNoSchedule never does, so it is not kept). */
struct gpc_taint {
  char *key;
  char *value;     /* "" when absent */
  bool no_execute; /* else NoSchedule */
};

struct gpc_node {
  char *name;
  char *uid;
  char *resource_version;
  char *creation_timestamp; /* RFC 3339 or "" */
  struct gpc_labels labels; /* all of metadata.labels */
  int64_t gpu_allocatable;  /* status.allocatable["nvidia.com/gpu"], -1 when absent */
  bool ready;               /* condition Ready == "True" */
  /* Node facts for per-node operand variants (design.md §3 "Node side"):
   * the container runtime from status.nodeInfo.containerRuntimeVersion
   * ("containerd", "crio", "docker"; "" unknown) and the OS as driver images
   * name it (NFD system-os_release ID + VERSION_ID, else parsed from
   * nodeInfo.osImage, e.g. "ubuntu22.04", "rhel9.4"; "" unknown). */
  char runtime[16];
  char os[32];
  /* The Ready condition's message while the node is not Ready (what the
   * kubelet or the node controller said), else "". Never NULL. */
  char *down_message;
  struct gpc_taint *taints; /* owned; n_taints entries, NoSchedule/NoExecute only */
  size_t n_taints;
  /* Driver upgrades (upgrade.h, design.md §10): spec.unschedulable and the
   * annotations the upgrade state machine keeps on the node. Never NULL. */
  bool unschedulable;
  bool upg_cordoned; /* gpupolicy.dev/driver-upgrade-cordoned == "true" */
  int64_t upg_since; /* gpupolicy.dev/driver-upgrade-since, 0 when absent */
  char *upg_target;  /* gpupolicy.dev/driver-upgrade-target, "" when absent */
  char *upg_reason;  /* gpupolicy.dev/driver-upgrade-reason, "" when absent */
  /* gpupolicy.dev/driver-pod: the name of the driver pod that was Ready when
   * the plan last changed this node's unlocks, "" when absent. A driver pod
   * of another name that is not Ready replaced it. Never NULL. */
  char *driver_pod;
};

void gpc_node_init(struct gpc_node *n);
void gpc_node_release(struct gpc_node *n);
/* Frees the taints and leaves none. */
void gpc_node_clear_taints(struct gpc_node *n);

/* ---- operand DaemonSets ----------------------------------------------- */

struct gpc_daemonset {
  char *name;
  char *namespace;
  char *policy;      /* label gpupolicy.dev/policy, "" when absent */
  int operand;       /* enum gpc_operand from label app.kubernetes.io/component, -1 unknown */
  char *render_hash; /* annotation gpupolicy.dev/render-hash, "" when absent */
  int64_t generation;
  int64_t observed_generation; /* status.observedGeneration, 0 when absent */
  int32_t desired;             /* status.desiredNumberScheduled */
  int32_t current;             /* status.currentNumberScheduled */
  int32_t ready;               /* status.numberReady */
  int32_t updated;             /* status.updatedNumberScheduled */
  int32_t available;           /* status.numberAvailable */
  int32_t unavailable;         /* status.numberUnavailable */
};

void gpc_daemonset_init(struct gpc_daemonset *d);
void gpc_daemonset_release(struct gpc_daemonset *d);

/* ---- operand pods ----------------------------------------------------- */

struct gpc_pod {
  char *name;
  char *namespace;
  char *node_name; /* spec.nodeName, else the node its affinity names; "" when neither */
  char *policy;    /* label gpupolicy.dev/policy */
  int operand;     /* enum gpc_operand from label app.kubernetes.io/component, -1 unknown */
  bool ready;      /* condition Ready == "True" */
  char *phase;     /* status.phase ("Pending", "Running", "Failed", ...) */
  /* Why the pod is not ready ("" when ready). Pod-level first: Failed
   * (status.reason, e.g. Terminated, Evicted), unbound (PodScheduled's
   * reason, e.g. Unschedulable, else "Unscheduled"), no sandbox
   * (PodReadyToStartContainers=False: "FailedCreatePodSandBox"). Else the
   * first container (init containers first) that is waiting, else
   * terminated, else (not running) lastState.terminated; an init container's
   * reason is prefixed "Init:" as kubectl shows it. A not-ready container
   * that is crash-looping, terminated, or running again after a crash with a
   * termination message overrides that: the message is the termination
   * message ("NoDevice: NVML reports 0 devices", what the validator writes)
   * and the reason its leading CamelCase word before ':' ("NoDevice"), else
   * the terminated reason. A container running but not ready without one is
   * "Starting". */
  char *reason;
  char *message;
  int32_t restart_count; /* sum over containers */
  char created[32];      /* metadata.creationTimestamp (RFC 3339, UTC), "" unknown */
  /* metadata.deletionTimestamp is set: the pod is Terminating (it may stay
   * so for its whole grace period, or forever on an unreachable node). */
  bool deleting;
  /* spec.nodeName is set; an unbound DaemonSet pod's node_name comes from
   * its node affinity (the node the DaemonSet controller made it for). */
  bool bound;
  /* Not ready, but in a state a pod normally passes through (scheduling,
   * sandbox creation, image pull, init containers, a container inside its
   * start-up window, Failed pending replacement): `reason` says which. It
   * counts as failing only once it lasted `window_s` + the planner's grace
   * past `since`. False for ready pods and for failures that are failures
   * at once (a crash loop, an image that cannot be pulled). */
  bool progressing;
  int64_t since;    /* Unix seconds the state began (0: unknown) */
  int32_t window_s; /* the state's own allowance: a startup probe's window */
  /* The owning DaemonSet (controller ownerReference name, "" when none) and
   * the pod-template-generation label (the DaemonSet generation the pod was
   * made from, 0 when absent): a driver pod is current when it equals its
   * DaemonSet's generation (driver upgrades, upgrade.h). */
  char *owner;
  int64_t template_generation;
};

void gpc_pod_init(struct gpc_pod *p);
void gpc_pod_release(struct gpc_pod *p);

#endif
