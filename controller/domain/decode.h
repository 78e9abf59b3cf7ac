/* decode.h — live objects (JSON) → the compact structs of model.h, and the
 * "does this change matter" predicates that keep the workqueue quiet.
 *
 * Owns: reading exactly the fields the planner needs from Node, DaemonSet,
 * Pod and ClusterGPUPolicy objects, tolerating absent or oddly typed fields
 * (the API server is trusted for shape, but a missing status must not be an
 * error: it is simply "nothing reported yet").
 *
 * Does not own: storage (informer cache), what a change means for a policy
 * (controller.c maps objects to policies).
 *
 * Pure, no I/O. JSON inputs are borrowed. project_*_new() return a fresh
 * heap struct (caller frees with project_*_free, which releases and frees);
 * project_*() fill a caller-initialized struct.
 */
#ifndef GPC_PROJECT_H
#define GPC_PROJECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "model.h"

#define GPC_LABEL_MANAGED_BY "app.kubernetes.io/managed-by"
#define GPC_LABEL_COMPONENT "app.kubernetes.io/component"
#define GPC_LABEL_NAME "app.kubernetes.io/name"
#define GPC_RESOURCE_GPU "nvidia.com/gpu"

/* Fill `out` (already gpc_*_init'ed, or previously filled: old contents are
 * replaced) from the object. */
void decode_node(struct gpc_node *out, const json_t *obj);
void decode_daemonset(struct gpc_daemonset *out, const json_t *obj);
void decode_pod(struct gpc_pod *out, const json_t *obj);

/* Label filtering: a Node carries ~100 labels (~5 KB: NFD CPU flags, zones,
 * ...) of which the planner reads a handful. `keep(key, ud)` says which to
 * keep; NULL keeps all. */
typedef bool (*decode_label_keep_fn)(const char *key, void *ud);
void decode_node_filtered(struct gpc_node *out, const json_t *obj, decode_label_keep_fn keep,
                          void *ud);
struct gpc_node *decode_node_new_filtered(const json_t *obj, decode_label_keep_fn keep, void *ud);
/* Calls add(key, ud) for every label key a ClusterGPUPolicy object's
 * spec.nodeSelector reads (matchLabels keys, matchExpressions[].key);
 * tolerant of any shape (borrowed). */
void decode_selector_keys(const json_t *policy, void (*add)(const char *key, void *ud), void *ud);

/* Heap versions for informer projection callbacks. Never NULL. */
struct gpc_node *decode_node_new(const json_t *obj);
struct gpc_daemonset *decode_daemonset_new(const json_t *obj);
struct gpc_pod *decode_pod_new(const json_t *obj);
void decode_node_free(struct gpc_node *n);
void decode_daemonset_free(struct gpc_daemonset *d);
void decode_pod_free(struct gpc_pod *p);

/* A Kubernetes integer quantity ("2", "2k", "1Ki", or a JSON integer) as
 * int64; -1 when absent, fractional ("500m") or malformed. */
int64_t decode_quantity_int(const json_t *q);

/* Change predicates: true when the planner could decide differently.
 *  - node: any label, allocatable nvidia.com/gpu, or Ready changed — NOT
 *    resourceVersion alone (kubelet heartbeats bump it every 10 s per node);
 *  - daemonset: status counts, generation/observedGeneration, render hash,
 *    policy or operand label;
 *  - pod: ready, phase, reason, node, policy or operand label, deletion,
 *    binding, progressing and its since/window (a message that only counts
 *    restarts does not re-plan anything). */
bool decode_node_changed(const struct gpc_node *old, const struct gpc_node *cur);
bool decode_daemonset_changed(const struct gpc_daemonset *old, const struct gpc_daemonset *cur);
bool decode_pod_changed(const struct gpc_pod *old, const struct gpc_pod *cur);

/* ClusterGPUPolicy objects are few and small, so the cache keeps their JSON.
 * A change matters when the spec could differ (generation), deletion
 * started, finalizers or uid changed — never for a status-only write (our own
 * /status patches come back through the watch). Both borrowed. */
bool decode_policy_changed(const json_t *old, const json_t *cur);

/* Unix seconds of an RFC 3339 UTC timestamp ("2024-07-01T12:00:00Z"), read
 * as UTC whatever the local time zone; 0 when absent or malformed. */
int64_t decode_time(const char *rfc3339);

/* Sentinel ending the key lists of decode_str/decode_get (a typed null
 * pointer: a bare NULL may be a plain 0 in a variadic call). */
#define PJ_END ((const char *)0)

/* The string at a dotted path of object keys ("metadata.labels.x" is NOT
 * supported: keys may contain dots; give the keys as separate arguments,
 * ended by PJ_END). Returns NULL when absent or not a string. Borrowed from
 * obj. */
const char *decode_str(const json_t *obj, ...) __attribute__((sentinel));
/* The same for any JSON value (borrowed from obj). */
const json_t *decode_get(const json_t *obj, ...) __attribute__((sentinel));

/* The first key of object `obj` not in `allowed` (NULL-terminated), or NULL
 * when every key is allowed (or obj is not an object): the strict-field
 * check of the policy and selector decoders. Borrowed from obj. */
const char *decode_unknown_key(const json_t *obj, const char *const *allowed);

#endif
