/* taint.c — see taint.h. */
#include "taint.h"

#include <string.h>

/* AddOrUpdateDaemonPodTolerations: not-ready and unreachable (NoExecute), the
 * node-condition taints and unschedulable (NoSchedule). network-unavailable is
 * added only for hostNetwork pods; it is listed here too, so that a template
 * with hostNetwork (--templates-dir) is never reported as blocked by it: this
 * module may miss a report, never invent one. */
static const struct {
  const char *key;
  bool no_execute;
} daemon_tolerations[] = {
    {"node.kubernetes.io/not-ready", true},
    {GPC_TAINT_UNREACHABLE, true},
    {"node.kubernetes.io/disk-pressure", false},
    {"node.kubernetes.io/memory-pressure", false},
    {"node.kubernetes.io/pid-pressure", false},
    {"node.kubernetes.io/unschedulable", false},
    {"node.kubernetes.io/network-unavailable", false},
};

static const char *str(const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s ? s : "";
}

bool taint_tolerated_by(const json_t *tol, const struct gpc_taint *t) {
  const char *effect = str(tol, "effect");
  if (*effect && strcmp(effect, t->no_execute ? "NoExecute" : "NoSchedule") != 0) return false;
  const char *key = str(tol, "key");
  const char *op = *str(tol, "operator") ? str(tol, "operator") : "Equal";
  if (*key && strcmp(key, t->key) != 0) return false;
  if (strcmp(op, "Exists") == 0) return true;
  if (!*key || strcmp(op, "Equal") != 0) return false; /* an empty key needs Exists */
  return strcmp(str(tol, "value"), t->value) == 0;
}

static bool daemon_tolerates(const struct gpc_taint *t) {
  for (size_t i = 0; i < sizeof daemon_tolerations / sizeof daemon_tolerations[0]; i++)
    if (strcmp(daemon_tolerations[i].key, t->key) == 0 &&
        daemon_tolerations[i].no_execute == t->no_execute)
      return true;
  return false;
}

const struct gpc_taint *taint_blocking_daemon_pod(const json_t *tolerations,
                                                  const struct gpc_node *node) {
  for (size_t i = 0; i < node->n_taints; i++) {
    const struct gpc_taint *t = &node->taints[i];
    if (daemon_tolerates(t)) continue;
    bool tolerated = false;
    size_t j;
    const json_t *tol;
    json_array_foreach(tolerations, j, tol) {
      if (taint_tolerated_by(tol, t)) {
        tolerated = true;
        break;
      }
    }
    if (!tolerated) return t;
  }
  return NULL;
}

bool taint_unreachable(const struct gpc_node *node) {
  for (size_t i = 0; i < node->n_taints; i++)
    if (strcmp(node->taints[i].key, GPC_TAINT_UNREACHABLE) == 0) return true;
  return false;
}
