/* render.h — operand templates + a policy -> the Kubernetes objects to apply.
 *
 * Pure: no I/O, no clock, no global state. Rendering is a list of
 * STRUCTURED transforms on the template JSON (never text substitution):
 *
 *   every object   metadata.name (see render_object_name), namespace (the
 *                  controller's, for namespaced kinds), labels
 *                  app.kubernetes.io/{name,component,part-of,managed-by,
 *                  version} + gpupolicy.dev/policy + spec.daemonsets.labels
 *                  (never app.kubernetes.io/instance), annotations from
 *                  spec.daemonsets.annotations, a controller ownerReference
 *                  to the policy (when its uid is known) and the annotation
 *                  gpupolicy.dev/render-hash (render_hash()).
 *   DaemonSet      selector {app.kubernetes.io/name, gpupolicy.dev/policy}
 *                  (stable: the selector is immutable), the same labels and
 *                  annotations on the pod template, nodeSelector
 *                  {gpupolicy.dev/policy: <policy>, gpupolicy.dev/<operand>:
 *                  "true"}, tolerations, priorityClassName, imagePullSecrets,
 *                  updateStrategy (driver: always OnDelete); on the main
 *                  (first) container: image, imagePullPolicy, env merged by
 *                  name over the template's, args, resources.
 *   operand-specific  toolkit: RUNTIME/RUNTIME_CONFIG/RUNTIME_SOCKET (and
 *                  CONTAINERD_* or DOCKER_*) with the host directories
 *                  mounted at /runtime/{config-dir,sock-dir}, ROOT and the
 *                  install dir; toolkit and device plugin: NVIDIA_DRIVER_ROOT
 *                  (/run/nvidia/driver when the driver operand is enabled,
 *                  "/" when the host has its driver); every pod: no
 *                  runtimeClassName when the toolkit operand is disabled
 *                  (the host's runtime is set up already); dcgm-exporter: the
 *                  Service's type/port/selector and, when
 *                  spec.dcgmExporter.serviceMonitor.enabled, a ServiceMonitor.
 *
 * Cluster-scoped template objects (the RuntimeClass `nvidia`) are shared by
 * every policy; they keep their template name and are emitted only when
 * opts.include_shared is set (plan.c sets it for the oldest policy with the
 * toolkit enabled, which then owns them).
 *
 * Memory: results are new references owned by the caller.
 */
#ifndef GPC_RENDER_H
#define GPC_RENDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "errors.h"
#include "policy.h"
#include "templates.h"

/* Longest generated object name: a DNS-1035 label, valid for every kind. */
#define GPC_NAME_MAX 63

#define GPC_MAX_OS_VARIANTS 16

/* The largest request body kube-apiserver accepts: 3 MiB, MaxRequestBodyBytes
 * in k8s.io/apiserver/pkg/server/config.go (a larger body gets 413 "Request
 * entity too large: limit is 3145728"). etcd's default --max-request-bytes
 * (1.5 MiB) can refuse smaller objects still; the CRD's bounds keep a policy
 * well below both. Rendering refuses any object whose compact JSON is larger,
 * with GPC_E_TOO_LARGE naming the operand. */
#define GPC_MAX_REQUEST_BYTES (3u * 1024u * 1024u)

struct gpc_render_opts {
  const char *namespace; /* the controller's namespace, e.g. "gpu-policy-system" */
  bool include_shared;   /* also emit the shared cluster-scoped objects */
  /* The policy's nodes, for per-node variants (design.md §3 "Node side"):
   * a bit (1u << enum gpc_runtime) per runtime found, and the distinct
   * driver OSes. Zero / none: the default variants only (render -f). */
  unsigned runtimes;
  const char *const *oses;
  size_t n_oses;
};

/* The OS suffix a driver version carries ("550.54.14-ubuntu22.04" ->
 * "ubuntu22.04"), or NULL (no suffix, or a digest). Points into `version`
 * (borrowed). */
const char *render_version_os(const char *version);

/* Renders one operand. Returns GPC_OK with *out a new JSON array of objects
 * (empty when the operand is disabled), or an error naming the cause (a
 * policy name unusable as a label value, a template missing a field render
 * needs, an object over GPC_MAX_REQUEST_BYTES) with *out NULL. */
int render_operand(const struct gpc_policy *p, enum gpc_operand op, const struct gpc_templates *t,
                   const struct gpc_render_opts *opts, json_t **out, struct gpc_error *err);

/* Every enabled operand in stage order, concatenated. */
int render_policy(const struct gpc_policy *p, const struct gpc_templates *t,
                  const struct gpc_render_opts *opts, json_t **out, struct gpc_error *err);

/* "<policy>-<operand>" when that is a valid DNS-1035 label of at most
 * GPC_NAME_MAX characters; otherwise the policy part is made valid ('.' ->
 * '-', a leading letter), truncated, and suffixed with 8 hex digits of a
 * hash of the full policy name, so distinct policies never collide.
 * Writes at most GPC_NAME_MAX + 1 bytes into `out`. */
void render_object_name(const char *policy, const char *operand, char out[GPC_NAME_MAX + 1]);

/* SHA-256 (hex) of the canonical JSON of `obj` (sorted keys, compact) with
 * the render-hash annotation itself left out: equal objects hash equally
 * whatever their key order. */
void render_hash(const json_t *obj, char out[65]);

/* Turns an arbitrary string into a valid label value (<= 63 characters of
 * [A-Za-z0-9._-], alphanumeric at both ends), e.g. a sha256 digest version. */
void render_label_value(const char *in, char out[64]);

/* Reads the render-hash annotation of a rendered object ("" when absent).
 * Borrowed from obj. */
const char *render_hash_of(const json_t *obj);

#endif
