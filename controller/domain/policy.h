/* policy.h — the ClusterGPUPolicy object (gpupolicy.dev/v1alpha1), decoded.
 *
 * Owns: turning a ClusterGPUPolicy JSON object (from the API server, or from
 * a YAML file for `render -f`) into a validated, fully defaulted C struct that
 * the renderer and the planner consume without re-checking anything.
 *
 * Defaults are exactly those of the CRD schema (crds/), so a policy decoded
 * from a file without an API server in between behaves like the stored one;
 * the few values the schema cannot default (they depend on another field, or
 * are lists, where schema defaults cause GitOps drift) are resolved here and
 * documented in docs/api.md. Everything the API server might not check
 * (image reference grammar, sha256 digests, int-or-percent, enums, label
 * selector, unknown fields) is validated, and the error message names the
 * field, e.g. `spec.driver.imagePullPolicy: Unsupported value "Sometimes"`.
 *
 * Does not own: node matching beyond compiling the selector (plan), status
 * (the controller writes it), rendering (render).
 *
 * Memory: policy_from_json() returns a new struct gpc_policy; every string and
 * json_t inside it is owned by the struct (new references, never borrowed from
 * the input object) and freed by policy_free(). Callers must treat the struct
 * as immutable.
 */
#ifndef GPC_POLICY_H
#define GPC_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "xmacro.h"

#define GPC_POLICY_GROUP "gpupolicy.dev"
#define GPC_POLICY_VERSION "v1alpha1"
#define GPC_POLICY_API_VERSION GPC_POLICY_GROUP "/" GPC_POLICY_VERSION
#define GPC_POLICY_KIND "ClusterGPUPolicy"
#define GPC_POLICY_PLURAL "clustergpupolicies"
#define GPC_POLICY_FINALIZER "gpupolicy.dev/cleanup"

struct label_selector; /* selector.h */

/* The enums below and their names are X-macro tables (xmacro.h): each value
 * and its spelling are written once, in one row, and the enum and the name
 * arrays in policy.c are generated from the rows. Every *_name function and
 * default path below returns a static string (never freed). */

/* Operands in stage order (design.md §3). The index is also the stage
 * position: GPC_OP_DCGM_EXPORTER and GPC_OP_VALIDATOR share the last stage.
 * X(enum value, component name, spec key) */
#define GPC_OPERAND_MAP(X)                                                                         \
  X(GPC_OP_DRIVER, "driver", "driver")                                                             \
  X(GPC_OP_TOOLKIT, "container-toolkit", "toolkit")                                                \
  X(GPC_OP_DEVICE_PLUGIN, "device-plugin", "devicePlugin")                                         \
  X(GPC_OP_DCGM_EXPORTER, "dcgm-exporter", "dcgmExporter")                                         \
  X(GPC_OP_VALIDATOR, "validator", "validator")

enum gpc_operand { GPC_OPERAND_MAP(GPC_X_ENUM) GPC_OP_COUNT };

/* "driver", "container-toolkit", "device-plugin", "dcgm-exporter",
 * "validator": the component name, the node label suffix
 * (gpupolicy.dev/<name>) and the template name. NULL when out of range. */
const char *gpc_operand_name(enum gpc_operand op);
/* The spec key: "driver", "toolkit", "devicePlugin", "dcgmExporter",
 * "validator". NULL when out of range. */
const char *gpc_operand_spec_key(enum gpc_operand op);
/* Inverse of gpc_operand_name(); -1 when unknown. */
int gpc_operand_from_name(const char *name);

/* X(enum value, Kubernetes spelling) */
#define GPC_PULL_POLICY_MAP(X)                                                                     \
  X(GPC_PULL_IF_NOT_PRESENT, "IfNotPresent")                                                       \
  X(GPC_PULL_ALWAYS, "Always")                                                                     \
  X(GPC_PULL_NEVER, "Never")
enum gpc_pull_policy { GPC_PULL_POLICY_MAP(GPC_X_ENUM) };
/* "IfNotPresent", "Always", "Never" (the Kubernetes spelling). */
const char *gpc_pull_policy_name(enum gpc_pull_policy p);

/* X(enum value, Kubernetes spelling) */
#define GPC_UPDATE_STRATEGY_MAP(X)                                                                 \
  X(GPC_UPDATE_ROLLING, "RollingUpdate")                                                           \
  X(GPC_UPDATE_ON_DELETE, "OnDelete")
enum gpc_update_strategy { GPC_UPDATE_STRATEGY_MAP(GPC_X_ENUM) };
/* "RollingUpdate", "OnDelete". */
const char *gpc_update_strategy_name(enum gpc_update_strategy s);

/* DETECT (the default): each node's own runtime, from
 * status.nodeInfo.containerRuntimeVersion (design.md §3).
 * X(enum value, name, default config file, default socket) */
#define GPC_RUNTIME_MAP(X)                                                                         \
  X(GPC_RUNTIME_CONTAINERD, "containerd", "/etc/containerd/config.toml",                           \
    "/run/containerd/containerd.sock")                                                             \
  X(GPC_RUNTIME_DOCKER, "docker", "/etc/docker/daemon.json", "/var/run/docker.sock")               \
  X(GPC_RUNTIME_CRIO, "crio", "/etc/crio/crio.conf", "/var/run/crio/crio.sock")                    \
  X(GPC_RUNTIME_DETECT, "detect", "", "")
enum gpc_runtime { GPC_RUNTIME_MAP(GPC_X_ENUM) };
#define GPC_RUNTIME_COUNT 3 /* concrete runtimes */
/* "containerd", "docker", "crio". */
const char *gpc_runtime_name(enum gpc_runtime r);
/* Host paths of a runtime's config file and socket ("" for DETECT). */
const char *gpc_runtime_config_default(enum gpc_runtime r);
const char *gpc_runtime_socket_default(enum gpc_runtime r);

/* What every operand has (spec.<operand>.*). */
struct gpc_operand_spec {
  bool enabled;     /* default true */
  char *repository; /* e.g. "nvcr.io/nvidia" */
  char *image;      /* e.g. "driver" */
  char *version;    /* tag, or "sha256:<64 hex>" digest */
  /* Computed: "repository/image:version", or "repository/image@sha256:..."
   * when version is a digest. */
  char *image_ref;
  enum gpc_pull_policy pull_policy; /* default IfNotPresent */
  /* Each never NULL after decoding (empty containers when unset):
   *   image_pull_secrets: array of Secret names (strings), as in gpu-operator;
   *                       the renderer turns them into [{name: ...}].
   *   env:                array of {name, value} objects (value a string, may
   *                       be absent = ""), for the operand's main container.
   *   args:               array of strings; non-empty replaces the main
   *                       container's args.
   *   resources:          {limits?: {name: quantity}, requests?: {...}},
   *                       quantities as strings or integers, validated. */
  json_t *image_pull_secrets;
  json_t *env;
  json_t *args;
  json_t *resources;
};

/* spec.driver.upgradePolicy — decoded, validated and defaulted; the
 * per-node decisions are upgrade.c's (upgrade_settings_from_policy()). The
 * controller does not act on autoUpgrade yet (docs/api.md, design.md §10):
 * it records a Warning Event instead. Selectors are compiled; NULL when
 * absent or empty. */
struct gpc_driver_upgrade_policy {
  bool auto_upgrade;             /* default false */
  bool paused;                   /* default false: no node starts while true */
  int32_t max_parallel_upgrades; /* default 1, >= 0 (0 = unlimited) */
  char *max_unavailable;         /* int-or-percent, default "25%" */
  bool max_unavailable_is_percent;
  struct {
    struct label_selector *pod_selector; /* NULL: wait for nothing */
    int32_t timeout_seconds;             /* default 0 = forever */
  } wait_for_completion;
  struct {
    bool force;              /* default false: pods without a controller too */
    int32_t timeout_seconds; /* default 300, 0 = forever */
    bool delete_empty_dir;   /* default false */
  } pod_deletion;
  struct {
    bool enable;                         /* default false */
    bool force;                          /* default false */
    int32_t timeout_seconds;             /* default 300, >= 0 */
    bool delete_empty_dir;               /* default false */
    struct label_selector *pod_selector; /* NULL: every pod */
  } drain;
};

struct gpc_toolkit_opts {
  enum gpc_runtime runtime; /* default detect */
  /* Host paths; when unset in the spec they are resolved from the runtime:
   *   containerd: /etc/containerd/config.toml, /run/containerd/containerd.sock
   *   docker:     /etc/docker/daemon.json,     /var/run/docker.sock
   *   crio:       /etc/crio/crio.conf,         /var/run/crio/crio.sock */
  char *runtime_config;
  char *runtime_socket;
  char *install_dir; /* default "/usr/local/nvidia" */
};

/* X(enum value, Kubernetes spelling) */
#define GPC_SERVICE_TYPE_MAP(X)                                                                    \
  X(GPC_SVC_CLUSTER_IP, "ClusterIP")                                                               \
  X(GPC_SVC_NODE_PORT, "NodePort")
enum gpc_service_type { GPC_SERVICE_TYPE_MAP(GPC_X_ENUM) };
/* "ClusterIP", "NodePort". */
const char *gpc_service_type_name(enum gpc_service_type t);

struct gpc_dcgm_exporter_opts {
  struct {
    enum gpc_service_type type; /* default ClusterIP */
    int32_t port;               /* default 9400, 1..65535 */
  } service;
  struct {
    bool enabled;              /* default false */
    char *interval;            /* Prometheus duration, default "15s" */
    json_t *additional_labels; /* object of string values, never NULL */
  } service_monitor;
};

/* spec.daemonsets — applied to every operand DaemonSet. */
struct gpc_daemonset_common {
  /* Array of core/v1 Tolerations, never NULL. When the spec omits the
   * field it is [{key: nvidia.com/gpu, operator: Exists, effect:
   * NoSchedule}]; an explicit [] means none. */
  json_t *tolerations;
  char *priority_class_name;                /* default "system-node-critical" */
  enum gpc_update_strategy update_strategy; /* default RollingUpdate (driver: always OnDelete) */
  /* int-or-percent as the DaemonSet wants it: digits only ("1") is an
   * integer, "25%" a percentage. Default "1". */
  char *max_unavailable;
  bool max_unavailable_is_percent;
  json_t *labels;      /* object of string values, never NULL */
  json_t *annotations; /* object of string values, never NULL */
};

struct gpc_policy {
  /* metadata */
  char *name;
  char *uid;                /* "" when absent (render -f) */
  char *resource_version;   /* "" when absent */
  char *creation_timestamp; /* RFC 3339, "" when absent */
  int64_t generation;       /* 0 when absent */
  bool deleting;            /* metadata.deletionTimestamp set */
  bool has_finalizer;       /* GPC_POLICY_FINALIZER present */

  /* spec.nodeSelector as written (a metav1.LabelSelector object, never NULL:
   * {} when unset) and compiled. An empty selector means "default GPU
   * detection" (design.md §4), NOT "every node": check node_selector_empty. */
  json_t *node_selector;
  struct label_selector *selector; /* NULL when node_selector_empty */
  bool node_selector_empty;

  struct gpc_daemonset_common daemonsets;
  struct gpc_operand_spec operands[GPC_OP_COUNT];
  struct gpc_driver_upgrade_policy driver_upgrade;
  struct gpc_toolkit_opts toolkit;
  struct gpc_dcgm_exporter_opts dcgm_exporter;
};

/* Decodes and validates a ClusterGPUPolicy object (borrowed). apiVersion and
 * kind, when present, must be gpupolicy.dev/v1alpha1 ClusterGPUPolicy;
 * metadata.name is required; unknown spec fields are errors (the API server
 * prunes them, so seeing one means a stale CRD or a hand-written file).
 * Returns GPC_OK with *out set (caller frees with policy_free), or
 * GPC_E_INVAL with *out NULL and err naming the first bad field. */
int policy_from_json(const json_t *obj, struct gpc_policy **out, struct gpc_error *err);
void policy_free(struct gpc_policy *p);

/* The first document of a YAML/JSON file, decoded as above (render -f). */
int policy_from_file(const char *path, struct gpc_policy **out, struct gpc_error *err);

#endif
