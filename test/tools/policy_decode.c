/* policy_decode — decode a ClusterGPUPolicy file (YAML or JSON) with
 * policy_from_file() and print the resolved values as one JSON object, or
 * the error on stderr with exit status 1.
 *
 * test_crd.py uses it to check that a policy read from a file and the same
 * policy as stored (defaulted) by the API server decode identically. */
#include <stdio.h>

#include "alloc.h"
#include "policy.h"

static json_t *operand_json(const struct gpc_operand_spec *s) {
  return json_pack("{s:b, s:s, s:s, s:O, s:O, s:O, s:O}", "enabled", s->enabled, "image",
                   s->image_ref, "pullPolicy", gpc_pull_policy_name(s->pull_policy), "pullSecrets",
                   s->image_pull_secrets, "env", s->env, "args", s->args, "resources",
                   s->resources);
}

static json_t *policy_json(const struct gpc_policy *p) {
  json_t *ops = json_object();
  for (int i = 0; i < GPC_OP_COUNT; i++)
    json_object_set_new(ops, gpc_operand_name((enum gpc_operand)i), operand_json(&p->operands[i]));
  const struct gpc_driver_upgrade_policy *u = &p->driver_upgrade;
  return json_pack(
      "{s:s, s:O, s:b, s:{s:O, s:s, s:s, s:s, s:O, s:O}, s:o, s:{s:b, s:i, s:s, s:b, s:b, s:i, "
      "s:b}, s:{s:s, s:s, s:s, s:s}, s:{s:s, s:i, s:b, s:s, s:O}}",
      "name", p->name, "nodeSelector", p->node_selector, "nodeSelectorEmpty",
      p->node_selector_empty, "daemonsets", "tolerations", p->daemonsets.tolerations,
      "priorityClassName", p->daemonsets.priority_class_name, "updateStrategy",
      gpc_update_strategy_name(p->daemonsets.update_strategy), "maxUnavailable",
      p->daemonsets.max_unavailable, "labels", p->daemonsets.labels, "annotations",
      p->daemonsets.annotations, "operands", ops, "upgrade", "autoUpgrade", u->auto_upgrade,
      "maxParallelUpgrades", u->max_parallel_upgrades, "maxUnavailable", u->max_unavailable,
      "drain", u->drain.enable, "force", u->drain.force, "timeoutSeconds", u->drain.timeout_seconds,
      "deleteEmptyDir", u->drain.delete_empty_dir, "toolkit", "runtime",
      gpc_runtime_name(p->toolkit.runtime), "config", p->toolkit.runtime_config, "socket",
      p->toolkit.runtime_socket, "installDir", p->toolkit.install_dir, "dcgmExporter",
      "serviceType", gpc_service_type_name(p->dcgm_exporter.service.type), "port",
      p->dcgm_exporter.service.port, "serviceMonitor", p->dcgm_exporter.service_monitor.enabled,
      "interval", p->dcgm_exporter.service_monitor.interval, "additionalLabels",
      p->dcgm_exporter.service_monitor.additional_labels);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s POLICY.yaml\n", argv[0]);
    return 2;
  }
  gpc_alloc_init();
  struct gpc_policy *p = NULL;
  struct gpc_error err = {0};
  if (policy_from_file(argv[1], &p, &err) != GPC_OK) {
    fprintf(stderr, "%s: %s\n", argv[1], err.msg);
    return 1;
  }
  json_t *out = policy_json(p);
  json_dumpf(out, stdout, JSON_SORT_KEYS | JSON_INDENT(2));
  fputc('\n', stdout);
  json_decref(out);
  policy_free(p);
  return 0;
}
