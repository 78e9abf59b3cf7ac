/* test_policy.c — ClusterGPUPolicy decoding: defaults, validation messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "policy.h"
#include "policy_fields.h"
#include "selector.h"
#include "yaml2json.h"

static struct gpc_policy *decode_ok(const char *text) {
  json_error_t jerr;
  json_t *obj = json_loads(text, 0, &jerr);
  assert_non_null(obj);
  struct gpc_policy *p = NULL;
  struct gpc_error err = {0};
  int rc = policy_from_json(obj, &p, &err);
  if (rc) fail_msg("unexpected error: %s", err.msg);
  json_decref(obj);
  assert_non_null(p);
  return p;
}

/* Decodes `spec_text` as the spec of a policy named "p" and returns the
 * error message (static buffer), or NULL when it decoded. */
static const char *decode_err(const char *spec_text) {
  static struct gpc_error err;
  char *text = gpc_asprintf("{\"apiVersion\":\"gpupolicy.dev/v1alpha1\",\"kind\":"
                            "\"ClusterGPUPolicy\",\"metadata\":{\"name\":\"p\"},\"spec\":%s}",
                            spec_text);
  json_error_t jerr;
  json_t *obj = json_loads(text, 0, &jerr);
  free(text);
  assert_non_null(obj);
  struct gpc_policy *p = (struct gpc_policy *)1;
  memset(&err, 0, sizeof err);
  int rc = policy_from_json(obj, &p, &err);
  json_decref(obj);
  if (rc == GPC_OK) {
    policy_free(p);
    return NULL;
  }
  assert_int_equal(rc, GPC_E_INVAL);
  assert_null(p);
  return err.msg;
}

static void test_defaults(void **state) {
  (void)state;
  struct gpc_policy *p = decode_ok("{\"metadata\":{\"name\":\"gpus\",\"generation\":3,"
                                   "\"uid\":\"u1\",\"finalizers\":[\"gpupolicy.dev/cleanup\"]}}");
  assert_string_equal(p->name, "gpus");
  assert_string_equal(p->uid, "u1");
  assert_int_equal(p->generation, 3);
  assert_true(p->has_finalizer);
  assert_false(p->deleting);
  assert_true(p->node_selector_empty);
  assert_string_equal(p->daemonsets.priority_class_name, "system-node-critical");
  assert_int_equal(p->daemonsets.update_strategy, GPC_UPDATE_ROLLING);
  assert_string_equal(p->daemonsets.max_unavailable, "1");
  assert_false(p->daemonsets.max_unavailable_is_percent);
  assert_int_equal(json_array_size(p->daemonsets.tolerations), 1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(p->daemonsets.tolerations, 0), "key")),
      "nvidia.com/gpu");
  for (int i = 0; i < GPC_OP_COUNT; i++) {
    assert_true(p->operands[i].enabled);
    assert_int_equal(p->operands[i].pull_policy, GPC_PULL_IF_NOT_PRESENT);
    assert_int_equal(json_array_size(p->operands[i].env), 0);
    assert_non_null(p->operands[i].resources);
  }
  assert_string_equal(p->operands[GPC_OP_DRIVER].image_ref,
                      "nvcr.io/nvidia/driver:550.54.14-ubuntu22.04");
  assert_string_equal(p->operands[GPC_OP_DEVICE_PLUGIN].image_ref,
                      "nvcr.io/nvidia/k8s-device-plugin:v0.15.0");
  /* runtime "detect": each node's runtime, paths by runtime at render time */
  assert_int_equal(p->toolkit.runtime, GPC_RUNTIME_DETECT);
  assert_string_equal(p->toolkit.runtime_config, "");
  assert_int_equal(p->dcgm_exporter.service.port, 9400);
  assert_false(p->dcgm_exporter.service_monitor.enabled);
  assert_string_equal(p->dcgm_exporter.service_monitor.interval, "15s");
  assert_int_equal(p->driver_upgrade.max_parallel_upgrades, 1);
  assert_string_equal(p->driver_upgrade.max_unavailable, "25%");
  assert_false(p->driver_upgrade.paused);
  assert_null(p->driver_upgrade.wait_for_completion.pod_selector);
  assert_int_equal(p->driver_upgrade.wait_for_completion.timeout_seconds, 0);
  assert_int_equal(p->driver_upgrade.pod_deletion.timeout_seconds, 300);
  assert_false(p->driver_upgrade.pod_deletion.force);
  assert_null(p->driver_upgrade.drain.pod_selector);
  policy_free(p);
}

struct err_case {
  const char *spec;
  const char *msg;
};

/* Every validation the decoder does, with the exact message. */
static const struct err_case err_cases[] = {
    {"{\"driver\":{\"imagePullPolicy\":\"Sometimes\"}}",
     "spec.driver.imagePullPolicy: Unsupported value: \"Sometimes\": supported values: "
     "\"IfNotPresent\", \"Always\", \"Never\""},
    {"{\"driver\":{\"version\":\"sha256:abc\"}}",
     "spec.driver.version: Invalid value: \"sha256:abc\": a digest must be sha256: followed by 64 "
     "lowercase hex digits"},
    {"{\"driver\":{\"version\":\"sha256:"
     "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F0"
     "0A08\"}}",
     "spec.driver.version: Invalid value: "
     "\"sha256:9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\": a digest must "
     "be sha256: followed by 64 lowercase hex digits"},
    {"{\"toolkit\":{\"version\":\"v1 .0\"}}",
     "spec.toolkit.version: Invalid value: \"v1 .0\": must be an image tag (e.g. v0.15.0) or a "
     "sha256:<64 lowercase hex digits> digest"},
    {"{\"devicePlugin\":{\"repository\":\"nvcr.io/NVIDIA\"}}",
     "spec.devicePlugin.repository: Invalid value: \"nvcr.io/NVIDIA\": must be a registry host "
     "with optional :port and /path (e.g. nvcr.io/nvidia)"},
    {"{\"devicePlugin\":{\"image\":\"k8s-device-plugin:v1\"}}",
     "spec.devicePlugin.image: Invalid value: \"k8s-device-plugin:v1\": must be lowercase image "
     "name components separated by / (e.g. k8s-device-plugin)"},
    {"{\"daemonsets\":{\"maxUnavailable\":-1}}",
     "spec.daemonsets.maxUnavailable: Invalid value: -1: must be greater than or equal to 1"},
    {"{\"daemonsets\":{\"maxUnavailable\":\"0\"}}",
     "spec.daemonsets.maxUnavailable: Invalid value: \"0\": must be a count >= 1 (e.g. \"1\") or a "
     "percentage 1%..100% (e.g. \"25%\")"},
    {"{\"daemonsets\":{\"maxUnavailable\":\"150%\"}}",
     "spec.daemonsets.maxUnavailable: Invalid value: \"150%\": must be a count >= 1 (e.g. \"1\") "
     "or a percentage 1%..100% (e.g. \"25%\")"},
    {"{\"daemonsets\":{\"maxUnavailable\":true}}",
     "spec.daemonsets.maxUnavailable: Invalid value: must be an integer or a percentage string, "
     "got boolean"},
    {"{\"daemonsets\":{\"updateStrategy\":\"Recreate\"}}",
     "spec.daemonsets.updateStrategy: Unsupported value: \"Recreate\": supported values: "
     "\"RollingUpdate\", \"OnDelete\""},
    {"{\"daemonsets\":{\"priorityClassName\":\"System\"}}",
     "spec.daemonsets.priorityClassName: Invalid value: \"System\": must be a lowercase RFC 1123 "
     "subdomain (e.g. ngc-pull)"},
    {"{\"daemonsets\":{\"labels\":{\"team\":\"a b\"}}}",
     "spec.daemonsets.labels.team: Invalid value: \"a b\": must be a label value: at most 63 "
     "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"},
    {"{\"daemonsets\":{\"labels\":{\"-bad\":\"x\"}}}",
     "spec.daemonsets.labels.-bad: Invalid key: \"-bad\": must be a qualified name: optional DNS "
     "prefix and '/', then at most 63 alphanumerics, '-', '_' or '.'"},
    {"{\"daemonsets\":{\"annotations\":{\"a\":1}}}",
     "spec.daemonsets.annotations.a: Invalid value: must be a string, got integer"},
    {"{\"daemonsets\":{\"tolerations\":[{\"operator\":\"Maybe\"}]}}",
     "spec.daemonsets.tolerations[0].operator: Unsupported value: \"Maybe\": supported values: "
     "\"Exists\", \"Equal\""},
    {"{\"daemonsets\":{\"tolerations\":[{\"key\":\"k\",\"operator\":\"Exists\",\"value\":\"v\"}]}}",
     "spec.daemonsets.tolerations[0].operator: Invalid value: \"Exists\": value must be empty when "
     "operator is Exists"},
    {"{\"daemonsets\":{\"tolerations\":[{\"effect\":\"NoSchedule\"}]}}",
     "spec.daemonsets.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists "
     "when key is empty"},
    {"{\"daemonsets\":{\"tolerations\":[{\"key\":\"k\",\"effect\":\"Never\"}]}}",
     "spec.daemonsets.tolerations[0].effect: Unsupported value: \"Never\": supported values: "
     "\"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""},
    {"{\"daemonsets\":{\"tolerations\":{}}}",
     "spec.daemonsets.tolerations: Invalid value: must be an array, got object"},
    {"{\"driver\":{\"enabled\":\"yes\"}}",
     "spec.driver.enabled: Invalid value: must be a boolean, got string"},
    {"{\"driver\":{\"imagePullSecrets\":[\"a\",\"a\"]}}",
     "spec.driver.imagePullSecrets[1]: Duplicate value: \"a\""},
    {"{\"driver\":{\"imagePullSecrets\":[\"Bad_Name\"]}}",
     "spec.driver.imagePullSecrets[0]: Invalid value: \"Bad_Name\": must be a lowercase RFC 1123 "
     "subdomain (e.g. ngc-pull)"},
    {"{\"driver\":{\"env\":[{\"value\":\"x\"}]}}", "spec.driver.env[0].name: Required value"},
    {"{\"driver\":{\"env\":[{\"name\":\"1X\"}]}}",
     "spec.driver.env[0].name: Invalid value: \"1X\": must be an environment variable name "
     "([-._a-zA-Z][-._a-zA-Z0-9]*)"},
    {"{\"driver\":{\"env\":[{\"name\":\"A\"},{\"name\":\"A\"}]}}",
     "spec.driver.env[1]: Duplicate value: {\"name\":\"A\"}"},
    {"{\"driver\":{\"env\":[{\"name\":\"A\",\"valueFrom\":{}}]}}",
     "unknown field \"spec.driver.env[0].valueFrom\""},
    {"{\"driver\":{\"env\":[{\"name\":\"A\",\"value\":1}]}}",
     "spec.driver.env[0].value: Invalid value: must be a string, got integer"},
    {"{\"driver\":{\"args\":[1]}}", "spec.driver.args[0]: Invalid value: must be a string, got "
                                    "integer"},
    {"{\"driver\":{\"resources\":{\"limits\":{\"cpu\":\"lots\"}}}}",
     "spec.driver.resources.limits.cpu: Invalid value: \"lots\": must be a non-negative quantity "
     "(e.g. 100m, 64Mi, 1)"},
    {"{\"driver\":{\"resources\":{\"requests\":{\"memory\":-5}}}}",
     "spec.driver.resources.requests.memory: Invalid value: -5: must be greater than or equal to "
     "0"},
    {"{\"driver\":{\"resources\":{\"claims\":[]}}}",
     "unknown field \"spec.driver.resources.claims\""},
    {"{\"driver\":{\"upgradePolicy\":{\"maxParallelUpgrades\":-1}}}",
     "spec.driver.upgradePolicy.maxParallelUpgrades: Invalid value: -1: must be greater than or "
     "equal to 0"},
    {"{\"driver\":{\"upgradePolicy\":{\"drain\":{\"timeoutSeconds\":1.5}}}}",
     "spec.driver.upgradePolicy.drain.timeoutSeconds: Invalid value: must be an integer, got "
     "number"},
    {"{\"driver\":{\"upgradePolicy\":{\"drain\":{\"evict\":true}}}}",
     "unknown field \"spec.driver.upgradePolicy.drain.evict\""},
    {"{\"driver\":{\"upgradePolicy\":{\"paused\":\"yes\"}}}",
     "spec.driver.upgradePolicy.paused: Invalid value: must be a boolean, got string"},
    {"{\"driver\":{\"upgradePolicy\":{\"waitForCompletion\":{\"timeoutSeconds\":-1}}}}",
     "spec.driver.upgradePolicy.waitForCompletion.timeoutSeconds: Invalid value: -1: must be "
     "greater than or equal to 0"},
    {"{\"driver\":{\"upgradePolicy\":{\"waitForCompletion\":{\"podSelector\":"
     "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}}}}}",
     "spec.driver.upgradePolicy.waitForCompletion.podSelector.matchExpressions[0].values: "
     "Required value: must be specified when `operator` is 'In' or 'NotIn'"},
    {"{\"driver\":{\"upgradePolicy\":{\"podDeletion\":{\"timeoutSeconds\":86401}}}}",
     "spec.driver.upgradePolicy.podDeletion.timeoutSeconds: Invalid value: 86401: must be less "
     "than or equal to 86400"},
    {"{\"driver\":{\"upgradePolicy\":{\"podDeletion\":{\"evict\":true}}}}",
     "unknown field \"spec.driver.upgradePolicy.podDeletion.evict\""},
    {"{\"driver\":{\"upgradePolicy\":{\"drain\":{\"podSelector\":{\"matchLabels\":[]}}}}}",
     "spec.driver.upgradePolicy.drain.podSelector.matchLabels: Invalid value: must be an object of "
     "strings, got array"},
    {"{\"driver\":{\"runtime\":\"docker\"}}", "unknown field \"spec.driver.runtime\""},
    {"{\"toolkit\":{\"runtime\":\"podman\"}}",
     "spec.toolkit.runtime: Unsupported value: \"podman\": supported values: \"containerd\", "
     "\"docker\", \"crio\", \"detect\""},
    {"{\"toolkit\":{\"runtimeConfig\":\"etc/containerd/config.toml\"}}",
     "spec.toolkit.runtimeConfig: Invalid value: \"etc/containerd/config.toml\": must be an "
     "absolute path without control characters"},
    {"{\"toolkit\":{\"installDir\":\"/usr/local/nv\\nidia\"}}",
     "spec.toolkit.installDir: Invalid value: \"/usr/local/nv\nidia\": must be an absolute path "
     "without control characters"},
    {"{\"dcgmExporter\":{\"service\":{\"port\":70000}}}",
     "spec.dcgmExporter.service.port: Invalid value: 70000: must be less than or equal to 65535"},
    {"{\"dcgmExporter\":{\"service\":{\"type\":\"LoadBalancer\"}}}",
     "spec.dcgmExporter.service.type: Unsupported value: \"LoadBalancer\": supported values: "
     "\"ClusterIP\", \"NodePort\""},
    {"{\"dcgmExporter\":{\"serviceMonitor\":{\"interval\":\"15\"}}}",
     "spec.dcgmExporter.serviceMonitor.interval: Invalid value: \"15\": must be a duration such as "
     "15s, 1m or 1m30s"},
    {"{\"dcgmExporter\":{\"serviceMonitor\":\"on\"}}",
     "spec.dcgmExporter.serviceMonitor: Invalid value: must be an object, got string"},
    {"{\"validator\":{\"upgradePolicy\":{}}}", "unknown field \"spec.validator.upgradePolicy\""},
    {"{\"gfd\":{}}", "unknown field \"spec.gfd\""},
    {"[]", "spec: Invalid value: must be an object, got array"},
    {"{\"nodeSelector\":{\"matchLabels\":{\"gpu\":\"a b\"}}}",
     "spec.nodeSelector.matchLabels.gpu: Invalid value: \"a b\": must be a label value: at most 63 "
     "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"},
    {"{\"nodeSelector\":{\"matchExpressions\":[{\"key\":\"gpu\",\"operator\":\"In\"}]}}",
     "spec.nodeSelector.matchExpressions[0].values: Required value: must be specified when "
     "`operator` is 'In' or 'NotIn'"},
    {"{\"nodeSelector\":{\"matchExpressions\":[{\"key\":\"gpu\",\"operator\":\"Exists\","
     "\"values\":[\"a\"]}]}}",
     "spec.nodeSelector.matchExpressions[0].values: Forbidden: may not be specified when "
     "`operator` is 'Exists' or 'DoesNotExist'"},
    {"{\"nodeSelector\":{\"matchExpressions\":[{\"key\":\"gpu\",\"operator\":\"Near\","
     "\"values\":[\"a\"]}]}}",
     "spec.nodeSelector.matchExpressions[0].operator: Unsupported value: \"Near\": supported "
     "values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""},
    {"{\"nodeSelector\":{\"nodeSelectorTerms\":[]}}",
     "unknown field \"spec.nodeSelector.nodeSelectorTerms\""},
};

static void test_errors_name_field(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
    const char *got = decode_err(err_cases[i].spec);
    if (!got) fail_msg("case %zu (%s): decoded, expected an error", i, err_cases[i].spec);
    if (strcmp(got, err_cases[i].msg) != 0)
      fail_msg("case %zu (%s):\n got: %s\nwant: %s", i, err_cases[i].spec, got, err_cases[i].msg);
  }
}

static const char *decode_obj_err(const char *text) {
  static struct gpc_error err;
  json_error_t jerr;
  json_t *obj = json_loads(text, JSON_DECODE_ANY, &jerr);
  assert_non_null(obj);
  struct gpc_policy *p = NULL;
  memset(&err, 0, sizeof err);
  int rc = policy_from_json(obj, &p, &err);
  json_decref(obj);
  policy_free(p);
  return rc ? err.msg : NULL;
}

static void test_metadata_errors(void **state) {
  (void)state;
  assert_string_equal(decode_obj_err("{}"), "metadata.name: Required value: name is required");
  assert_string_equal(decode_obj_err("[]"), "ClusterGPUPolicy: must be an object, got array");
  assert_string_equal(decode_obj_err("{\"metadata\":{\"name\":\"Bad\"}}"),
                      "metadata.name: Invalid value: \"Bad\": must be a lowercase RFC 1123 "
                      "subdomain (e.g. ngc-pull)");
  char longname[80];
  memset(longname, 'a', 70);
  longname[70] = '\0';
  char *text = gpc_asprintf("{\"metadata\":{\"name\":\"%s\"}}", longname);
  assert_non_null(strstr(decode_obj_err(text), "must be at most 63 characters"));
  free(text);
  assert_string_equal(decode_obj_err("{\"apiVersion\":\"nvidia.com/v1\",\"metadata\":{\"name\":"
                                     "\"a\"}}"),
                      "apiVersion: Unsupported value: must be \"gpupolicy.dev/v1alpha1\"");
  assert_string_equal(decode_obj_err("{\"kind\":\"ClusterPolicy\",\"metadata\":{\"name\":\"a\"}}"),
                      "kind: Unsupported value: must be \"ClusterGPUPolicy\"");
  assert_string_equal(decode_obj_err("{\"metadata\":{\"name\":\"a\",\"generation\":\"1\"}}"),
                      "metadata.generation: Invalid value: must be an integer, got string");
  /* status is the controller's and is ignored; null fields are absent. */
  assert_null(decode_obj_err("{\"metadata\":{\"name\":\"a\",\"deletionTimestamp\":\"2026-01-01T00:"
                             "00:00Z\"},\"spec\":{\"driver\":null},\"status\":{\"x\":1}}"));
}

static void test_valid_values(void **state) {
  (void)state;
  struct gpc_policy *p = decode_ok(
      "{\"metadata\":{\"name\":\"p\",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"},"
      "\"spec\":{\"daemonsets\":{\"tolerations\":[],\"maxUnavailable\":\"25%\","
      "\"updateStrategy\":\"OnDelete\"},"
      "\"driver\":{\"repository\":\"registry.local:5000/mirror/nvidia\",\"version\":\"sha256:"
      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\","
      "\"imagePullPolicy\":\"Always\",\"upgradePolicy\":{\"maxUnavailable\":3}},"
      "\"toolkit\":{\"runtime\":\"crio\"},"
      "\"devicePlugin\":{\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"1Gi\","
      "\"nvidia.com/gpu\":1}},\"env\":[{\"name\":\"FAIL_ON_INIT_ERROR\",\"value\":\"false\"}]},"
      "\"dcgmExporter\":{\"serviceMonitor\":{\"enabled\":true,\"interval\":\"1m30s\"}},"
      "\"nodeSelector\":{\"matchExpressions\":[{\"key\":\"gpu\",\"operator\":\"Exists\"}]}}}");
  assert_true(p->deleting);
  assert_false(p->has_finalizer);
  assert_int_equal(json_array_size(p->daemonsets.tolerations), 0);
  assert_true(p->daemonsets.max_unavailable_is_percent);
  assert_int_equal(p->daemonsets.update_strategy, GPC_UPDATE_ON_DELETE);
  assert_string_equal(p->operands[GPC_OP_DRIVER].image_ref,
                      "registry.local:5000/mirror/nvidia/driver@sha256:"
                      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  assert_int_equal(p->operands[GPC_OP_DRIVER].pull_policy, GPC_PULL_ALWAYS);
  assert_string_equal(p->driver_upgrade.max_unavailable, "3");
  assert_false(p->driver_upgrade.max_unavailable_is_percent);
  assert_int_equal(p->toolkit.runtime, GPC_RUNTIME_CRIO);
  assert_string_equal(p->toolkit.runtime_config, "/etc/crio/crio.conf");
  assert_string_equal(p->toolkit.runtime_socket, "/var/run/crio/crio.sock");
  assert_int_equal(json_array_size(p->operands[GPC_OP_DEVICE_PLUGIN].env), 1);
  assert_true(p->dcgm_exporter.service_monitor.enabled);
  assert_string_equal(p->dcgm_exporter.service_monitor.interval, "1m30s");
  assert_false(p->node_selector_empty);
  /* The compiled selector is what the planner matches nodes with. */
  assert_non_null(p->selector);
  json_t *labels = json_pack("{s:s}", "gpu", "h100");
  assert_true(selector_matches_json(p->selector, labels));
  json_object_del(labels, "gpu");
  assert_false(selector_matches_json(p->selector, labels));
  json_decref(labels);
  policy_free(p);

  p = decode_ok("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"nodeSelector\":{\"matchLabels\":{}}}}");
  assert_true(p->node_selector_empty);
  assert_null(p->selector);
  policy_free(p);

  /* upgradePolicy: paused, waitForCompletion, podDeletion, drain.podSelector. */
  p = decode_ok("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"driver\":{\"upgradePolicy\":{"
                "\"autoUpgrade\":true,\"paused\":true,"
                "\"waitForCompletion\":{\"podSelector\":{\"matchLabels\":{\"job\":\"train\"}},"
                "\"timeoutSeconds\":600},"
                "\"podDeletion\":{\"force\":true,\"timeoutSeconds\":0,\"deleteEmptyDir\":true},"
                "\"drain\":{\"enable\":true,\"podSelector\":{\"matchExpressions\":"
                "[{\"key\":\"keep\",\"operator\":\"DoesNotExist\"}]}}}}}}");
  const struct gpc_driver_upgrade_policy *u = &p->driver_upgrade;
  assert_true(u->auto_upgrade);
  assert_true(u->paused);
  assert_int_equal(u->wait_for_completion.timeout_seconds, 600);
  labels = json_pack("{s:s}", "job", "train");
  assert_true(selector_matches_json(u->wait_for_completion.pod_selector, labels));
  assert_true(selector_matches_json(u->drain.pod_selector, labels));
  json_object_set_new(labels, "keep", json_string("1"));
  assert_false(selector_matches_json(u->drain.pod_selector, labels));
  json_decref(labels);
  assert_true(u->pod_deletion.force);
  assert_int_equal(u->pod_deletion.timeout_seconds, 0);
  assert_true(u->pod_deletion.delete_empty_dir);
  policy_free(p);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(gpc_operand_name(GPC_OP_TOOLKIT), "container-toolkit");
  assert_string_equal(gpc_operand_spec_key(GPC_OP_DCGM_EXPORTER), "dcgmExporter");
  assert_int_equal(gpc_operand_from_name("device-plugin"), GPC_OP_DEVICE_PLUGIN);
  assert_int_equal(gpc_operand_from_name("gfd"), -1);
  assert_null(gpc_operand_name(GPC_OP_COUNT));
  assert_string_equal(gpc_pull_policy_name(GPC_PULL_NEVER), "Never");
  assert_string_equal(gpc_update_strategy_name(GPC_UPDATE_ON_DELETE), "OnDelete");
  assert_string_equal(gpc_runtime_name(GPC_RUNTIME_DOCKER), "docker");
  assert_string_equal(gpc_service_type_name(GPC_SVC_NODE_PORT), "NodePort");
}

static void test_patterns(void **state) {
  (void)state;
  assert_true(gpc_pattern_match(GPC_PAT_REPOSITORY, "nvcr.io/nvidia/k8s"));
  assert_true(gpc_pattern_match(GPC_PAT_REPOSITORY, "localhost:5000"));
  assert_false(gpc_pattern_match(GPC_PAT_REPOSITORY, "nvcr.io/"));
  assert_false(gpc_pattern_match(GPC_PAT_REPOSITORY, "https://nvcr.io"));
  assert_true(gpc_pattern_match(GPC_PAT_IMAGE, "cloud-native/k8s-driver-manager"));
  assert_false(gpc_pattern_match(GPC_PAT_IMAGE, "Driver"));
  assert_true(gpc_pattern_match(GPC_PAT_VERSION, "3.3.5-3.4.1-ubuntu22.04"));
  assert_false(gpc_pattern_match(GPC_PAT_VERSION, ".hidden"));
  assert_true(gpc_pattern_match(GPC_PAT_QUANTITY, "1.5Gi"));
  assert_true(gpc_pattern_match(GPC_PAT_QUANTITY, "1e3"));
  assert_false(gpc_pattern_match(GPC_PAT_QUANTITY, "-1"));
  assert_false(gpc_pattern_match(GPC_PAT_QUANTITY, "1GB"));
  assert_true(gpc_pattern_match(GPC_PAT_DURATION, "500ms"));
  assert_false(gpc_pattern_match(GPC_PAT_DURATION, ""));
  assert_true(gpc_pattern_match(GPC_PAT_INT_OR_PERCENT, "100%"));
  assert_false(gpc_pattern_match(GPC_PAT_INT_OR_PERCENT, "0%"));
  assert_false(gpc_pattern_match(GPC_PAT_INT_OR_PERCENT, "01"));
  assert_true(gpc_pattern_match(GPC_PAT_QUALIFIED_NAME, "nvidia.com/gpu"));
  char name[70];
  memset(name, 'a', 64);
  name[64] = '\0';
  assert_false(gpc_pattern_match(GPC_PAT_QUALIFIED_NAME, name)); /* name part > 63 */
  assert_true(gpc_pattern_match(GPC_PAT_LABEL_VALUE, ""));
  assert_false(gpc_pattern_match(GPC_PAT_ABS_PATH, "/a\tb"));
  assert_false(gpc_pattern_match(GPC_PAT_COUNT, "x"));
  assert_null(gpc_pattern_text(GPC_PAT_COUNT));
}

/* ---- against the CRD and the samples ---- */

#define CRD_PATH "crds/gpupolicy.dev_clustergpupolicies.yaml"

static json_t *crd_spec_schema(json_t *crd) {
  json_t *v = json_array_get(json_object_get(json_object_get(crd, "spec"), "versions"), 0);
  json_t *root = json_object_get(json_object_get(v, "schema"), "openAPIV3Schema");
  return json_object_get(json_object_get(root, "properties"), "spec");
}

/* Applies the schema's defaults to `obj` the way the API server does:
 * absent fields with a default get it, and existing objects are descended. */
static void apply_schema_defaults(json_t *obj, const json_t *schema) {
  const char *key;
  json_t *prop;
  json_object_foreach(json_object_get(schema, "properties"), key, prop) {
    json_t *def = json_object_get(prop, "default");
    if (!json_object_get(obj, key) && def) json_object_set_new(obj, key, json_deep_copy(def));
    json_t *child = json_object_get(obj, key);
    if (json_is_object(child)) apply_schema_defaults(child, prop);
  }
}

static void collect_patterns(const json_t *v, json_t *set) {
  const char *key;
  json_t *x;
  size_t i;
  if (json_is_object(v)) {
    json_object_foreach((json_t *)v, key, x) {
      if (strcmp(key, "pattern") == 0 && json_is_string(x))
        json_object_set_new(set, json_string_value(x), json_true());
      else
        collect_patterns(x, set);
    }
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, x) collect_patterns(x, set);
  }
}

static void assert_same_policy(const struct gpc_policy *a, const struct gpc_policy *b) {
  for (int i = 0; i < GPC_OP_COUNT; i++) {
    const struct gpc_operand_spec *x = &a->operands[i], *y = &b->operands[i];
    assert_int_equal(x->enabled, y->enabled);
    assert_string_equal(x->image_ref, y->image_ref);
    assert_int_equal(x->pull_policy, y->pull_policy);
  }
  assert_string_equal(a->daemonsets.priority_class_name, b->daemonsets.priority_class_name);
  assert_int_equal(a->daemonsets.update_strategy, b->daemonsets.update_strategy);
  assert_string_equal(a->daemonsets.max_unavailable, b->daemonsets.max_unavailable);
  assert_true(json_equal(a->daemonsets.tolerations, b->daemonsets.tolerations));
  assert_int_equal(a->driver_upgrade.auto_upgrade, b->driver_upgrade.auto_upgrade);
  assert_int_equal(a->driver_upgrade.max_parallel_upgrades,
                   b->driver_upgrade.max_parallel_upgrades);
  assert_string_equal(a->driver_upgrade.max_unavailable, b->driver_upgrade.max_unavailable);
  assert_int_equal(a->driver_upgrade.drain.enable, b->driver_upgrade.drain.enable);
  assert_int_equal(a->driver_upgrade.drain.force, b->driver_upgrade.drain.force);
  assert_int_equal(a->driver_upgrade.drain.timeout_seconds,
                   b->driver_upgrade.drain.timeout_seconds);
  assert_int_equal(a->driver_upgrade.drain.delete_empty_dir,
                   b->driver_upgrade.drain.delete_empty_dir);
  assert_int_equal(a->toolkit.runtime, b->toolkit.runtime);
  assert_string_equal(a->toolkit.runtime_config, b->toolkit.runtime_config);
  assert_string_equal(a->toolkit.runtime_socket, b->toolkit.runtime_socket);
  assert_string_equal(a->toolkit.install_dir, b->toolkit.install_dir);
  assert_int_equal(a->dcgm_exporter.service.type, b->dcgm_exporter.service.type);
  assert_int_equal(a->dcgm_exporter.service.port, b->dcgm_exporter.service.port);
  assert_int_equal(a->dcgm_exporter.service_monitor.enabled,
                   b->dcgm_exporter.service_monitor.enabled);
  assert_string_equal(a->dcgm_exporter.service_monitor.interval,
                      b->dcgm_exporter.service_monitor.interval);
}

/* The decoder's defaults are the CRD's: a policy defaulted by the schema
 * decodes to the same struct as the bare one. */
static void test_defaults_match_crd(void **state) {
  (void)state;
  struct gpc_error err = {0};
  json_t *crd = yaml2json_file(CRD_PATH, 0, &err);
  if (!crd) fail_msg("%s", err.msg);
  json_t *spec = json_object();
  apply_schema_defaults(spec, crd_spec_schema(crd));
  /* Sanity: the schema really defaulted nested fields. */
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(spec, "driver"), "version")),
      "550.54.14-ubuntu22.04");
  json_t *obj = json_pack("{s:{s:s}, s:o}", "metadata", "name", "p", "spec", spec);
  struct gpc_policy *bare = decode_ok("{\"metadata\":{\"name\":\"p\"}}"), *defaulted = NULL;
  if (policy_from_json(obj, &defaulted, &err))
    fail_msg("schema-defaulted policy rejected: %s", err.msg);
  assert_same_policy(bare, defaulted);
  policy_free(bare);
  policy_free(defaulted);
  json_decref(obj);
  json_decref(crd);
}

/* The CRD's patterns are the decoder's, character for character. */
static void test_patterns_match_crd(void **state) {
  (void)state;
  static const enum gpc_pattern used[] = {
      GPC_PAT_REPOSITORY,     GPC_PAT_IMAGE,         GPC_PAT_VERSION,
      GPC_PAT_INT_OR_PERCENT, GPC_PAT_QUANTITY,      GPC_PAT_DURATION,
      GPC_PAT_ENV_NAME,       GPC_PAT_DNS_SUBDOMAIN, GPC_PAT_ABS_PATH};
  struct gpc_error err = {0};
  json_t *crd = yaml2json_file(CRD_PATH, 0, &err);
  if (!crd) fail_msg("%s", err.msg);
  json_t *set = json_object();
  collect_patterns(crd_spec_schema(crd), set);
  for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
    if (!json_object_get(set, gpc_pattern_text(used[i])))
      fail_msg("pattern %s missing from %s", gpc_pattern_text(used[i]), CRD_PATH);
  json_decref(set);
  json_decref(crd);
}

static void test_samples_decode(void **state) {
  (void)state;
  static const char *const samples[] = {"minimal", "production", "node-pool", "preinstalled"};
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, "manifests/samples/%s.yaml", samples[i]);
    struct gpc_policy *p = NULL;
    struct gpc_error err = {0};
    if (policy_from_file(path, &p, &err)) fail_msg("%s: %s", path, err.msg);
    assert_non_null(p);
    if (strcmp(samples[i], "preinstalled") == 0) {
      assert_false(p->operands[GPC_OP_DRIVER].enabled);
      assert_false(p->operands[GPC_OP_TOOLKIT].enabled);
      assert_true(p->operands[GPC_OP_DEVICE_PLUGIN].enabled);
    }
    if (strcmp(samples[i], "node-pool") == 0) assert_false(p->node_selector_empty);
    if (strcmp(samples[i], "production") == 0) {
      assert_true(p->dcgm_exporter.service_monitor.enabled);
      assert_int_equal(json_array_size(p->operands[GPC_OP_DRIVER].image_pull_secrets), 1);
      assert_non_null(strchr(p->operands[GPC_OP_VALIDATOR].image_ref, '@'));
    }
    policy_free(p);
  }
  struct gpc_policy *p = (struct gpc_policy *)1;
  struct gpc_error err = {0};
  assert_int_not_equal(policy_from_file("test/data/does-not-exist.yaml", &p, &err), GPC_OK);
  assert_null(p);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_errors_name_field),
      cmocka_unit_test(test_metadata_errors),
      cmocka_unit_test(test_valid_values),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_patterns),
      cmocka_unit_test(test_defaults_match_crd),
      cmocka_unit_test(test_patterns_match_crd),
      cmocka_unit_test(test_samples_decode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
