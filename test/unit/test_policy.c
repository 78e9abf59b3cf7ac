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
  assert_string_equal(p->toolkit.runtime_config, "/etc/containerd/config.toml");
  assert_int_equal(p->dcgm_exporter.service.port, 9400);
  assert_false(p->dcgm_exporter.service_monitor.enabled);
  assert_string_equal(p->dcgm_exporter.service_monitor.interval, "15s");
  assert_int_equal(p->driver_upgrade.max_parallel_upgrades, 1);
  assert_string_equal(p->driver_upgrade.max_unavailable, "25%");
  policy_free(p);
}

static void test_errors_name_field(void **state) {
  (void)state;
  assert_string_equal(decode_err("{\"driver\":{\"imagePullPolicy\":\"Sometimes\"}}"),
                      "spec.driver.imagePullPolicy: Unsupported value: \"Sometimes\": supported "
                      "values: \"IfNotPresent\", \"Always\", \"Never\"");
  assert_null(decode_err("{}"));
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_errors_name_field),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
