/* test_pure.c — cmocka tests of the validator's pure parts: the Node
 * allocatable parser, the host-side vectorAdd check, report semantics, JSON
 * and its round trip through a check process, UUID and PCI bus id matching,
 * the probe's handling of bad and busy status files, and the allocation
 * check's pod (name, manifest, what it copies, how its status reads). Built and run by
 * `make unit` (linked with the validator's objects but main.o). Run from
 * any directory; argv[1] is a scratch directory (default: a fresh one in /tmp). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "allocpod.h"
#include "checks.h"
#include "plugin.h"
#include "report.h"
#include "statefile.h"
#include "vectoradd.h"

static const char *scratch;

static int parse(const char *body, long *gpus, struct gpc_error *err) {
  memset(err, 0, sizeof *err);
  return plugin_parse_allocatable(body, strlen(body), gpus, err);
}

static void test_allocatable(void **state) {
  struct gpc_error err;
  long gpus = -1;
  assert_int_equal(
      parse("{\"kind\":\"Node\",\"status\":{\"allocatable\":{\"nvidia.com/gpu\":\"8\"}}}", &gpus,
            &err),
      GPC_OK);
  assert_int_equal(gpus, 8);
  gpus = -1;
  assert_int_equal(
      parse("{\"kind\":\"Node\",\"status\":{\"allocatable\":{\"cpu\":\"4\"}}}", &gpus, &err),
      GPC_OK);
  assert_int_equal(gpus, 0);
  assert_int_equal(parse("{\"kind\":\"Node\"}", &gpus, &err), GPC_OK);
  assert_int_equal(gpus, 0);
}

static void test_allocatable_bad(void **state) {
  static const char *const bad[] = {
      "{\"kind\":\"Node\",\"status\":{\"allocatable\":{\"nvidia.com/gpu\":\"8k\"}}}",
      "{\"kind\":\"Node\",\"status\":{\"allocatable\":{\"nvidia.com/gpu\":\"-1\"}}}",
      "{\"kind\":\"Node\",\"status\":{\"allocatable\":{\"nvidia.com/gpu\":\"\"}}}",
      "{\"kind\":\"Node\",\"status\":{\"allocatable\":{\"nvidia.com/gpu\":8}}}",
      "{\"kind\":\"Node\",\"status\":{\"allocatable\":{\"nvidia.com/"
      "gpu\":\"99999999999999999999\"}}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct gpc_error err;
    long gpus = -1;
    assert_int_equal(parse(bad[i], &gpus, &err), GPC_E_INVAL);
    assert_non_null(strstr(err.msg, "status.allocatable[\"nvidia.com/gpu\"]"));
  }
  struct gpc_error err;
  long gpus;
  assert_int_equal(parse("{\"kind\":\"Pod\"}", &gpus, &err), GPC_E_INVAL);
  assert_string_equal(err.msg, "node: expected a Node object, got Pod");
  assert_int_equal(parse("[1]", &gpus, &err), GPC_E_INVAL);
  assert_int_equal(parse("{\"kind\":", &gpus, &err), GPC_E_INVAL);
  assert_non_null(strstr(err.msg, "node: invalid JSON"));
}

static void test_vectoradd_check(void **state) {
  enum { N = 5000 };
  float *c = gpc_malloc(N * sizeof *c);
  for (size_t i = 0; i < N; i++)
    c[i] = vectoradd_input_a(i) + vectoradd_input_b(i);
  assert_int_equal(vectoradd_check(c, N), N);
  /* Inputs vary, so an off-by-one index gives a wrong sum. */
  assert_true(vectoradd_input_a(1) + vectoradd_input_b(1) !=
              vectoradd_input_a(2) + vectoradd_input_b(2));
  float keep = c[4321];
  c[4321] = nextafterf(keep, INFINITY); /* one ulp: rounding, accepted */
  assert_int_equal(vectoradd_check(c, N), N);
  c[4321] = keep * 1.001f;
  assert_int_equal(vectoradd_check(c, N), 4321);
  c[4321] = NAN;
  assert_int_equal(vectoradd_check(c, N), 4321);
  c[17] = -1.0f;
  assert_int_equal(vectoradd_check(c, N), 17);
  free(c);
}

static void test_report_first_failure_decides(void **state) {
  struct val_report r;
  report_init(&r);
  report_check(&r, "a", true, "fine");
  report_fail(&r, VAL_NVML, "nvmlInit_v2: %s\n(9)", "Driver Not Loaded");
  report_fail(&r, VAL_CUDA, "later and less relevant");
  assert_int_equal(r.exit_code, VAL_NVML);
  assert_string_equal(r.reason, "NVMLError: nvmlInit_v2: Driver Not Loaded (9)"); /* one line */
  char long_detail[600];
  memset(long_detail, 'x', sizeof long_detail - 1);
  long_detail[sizeof long_detail - 1] = '\0';
  report_check(&r, "long", false, "<%s>", long_detail); /* longer than the first-try buffer */
  assert_int_equal(strlen(r.checks[1].detail), sizeof long_detail + 1);
  assert_int_equal(r.checks[1].detail[600], '>');
  report_fail(&r, VAL_TIMEOUT, "gave up; last: %s", r.reason);
  assert_int_equal(r.exit_code, VAL_TIMEOUT);
  assert_string_equal(r.reason,
                      "Timeout: gave up; last: NVMLError: nvmlInit_v2: Driver Not Loaded (9)");
  report_release(&r);
}

static void test_report_json(void **state) {
  struct val_report r;
  report_init(&r);
  report_check(&r, "gpu-0", true, "bad \xff byte");
  struct val_device *d = report_device(&r, 3, -1);
  assert_ptr_equal(report_device(&r, 3, -1), d);
  assert_ptr_not_equal(report_device(&r, 3, 0), d);
  d = report_device(&r, 3, -1);
  report_set_string(&d->name, "GPU \xc3"); /* truncated UTF-8 */
  json_t *o = report_json(&r);
  assert_string_equal(json_string_value(json_object_get(o, "result")), "ok");
  assert_true(json_is_null(json_object_get(o, "reason")));
  json_t *check = json_array_get(json_object_get(o, "checks"), 0);
  assert_string_equal(json_string_value(json_object_get(check, "detail")), "bad ? byte");
  json_t *dev = json_array_get(json_object_get(o, "devices"), 0);
  assert_int_equal(json_integer_value(json_object_get(dev, "index")), 3);
  assert_string_equal(json_string_value(json_object_get(dev, "name")), "GPU ?");
  assert_true(json_is_null(json_object_get(dev, "memoryTotalMiB")));
  assert_true(json_is_null(json_object_get(dev, "vectorAdd")));
  json_decref(o);
  report_release(&r);
}

static void test_probe_rejects_oversized_file(void **state) {
  char *path = gpc_asprintf("%s/big.json", scratch);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("{\"exitCode\":0,\"pad\":\"", f);
  for (int i = 0; i < STATEFILE_MAX_BYTES; i++)
    fputc('x', f);
  fputs("\"}", f);
  fclose(f);
  struct gpc_error why = {0};
  assert_int_equal(statefile_probe(path, &why), 1);
  assert_non_null(strstr(why.msg, "over"));
  unlink(path);
  free(path);
}

static void test_uuid_and_bus_id_match(void **state) {
  assert_true(checks_uuid_match("GPU-5f1c0a2e-0000-4000-8000-000000000001",
                                "5F1C0A2E-0000-4000-8000-000000000001"));
  assert_true(checks_uuid_match("MIG-6a2b0c3d-0000-4000-8000-000000000002",
                                "6a2b0c3d-0000-4000-8000-000000000002"));
  assert_false(checks_uuid_match("GPU-5f1c0a2e-0000-4000-8000-000000000001",
                                 "5f1c0a2e-0000-4000-8000-000000000002"));
  /* The legacy MIG name holds the parent's UUID: it must not match the GPU. */
  assert_false(checks_uuid_match("MIG-GPU-5f1c0a2e-0000-4000-8000-000000000001/1/0",
                                 "5f1c0a2e-0000-4000-8000-000000000001"));
  assert_false(checks_uuid_match("GPU-5f1c0a2e-0000-4000-8000-000000000001", ""));
  assert_false(checks_uuid_match(NULL, "5f1c0a2e-0000-4000-8000-000000000001"));
  assert_true(checks_bus_id_match("00000000:3B:00.0", "0000:3b:00.0"));
  assert_false(checks_bus_id_match("00000000:3B:00.0", "0000:3c:00.0"));
  assert_false(checks_bus_id_match("00000001:3B:00.0", "0000:3b:00.0"));
  assert_false(checks_bus_id_match("3B:00.0", "0000:3b:00.0"));
  assert_false(checks_bus_id_match(NULL, "0000:3b:00.0"));
}

static void test_busy_outcome(void **state) {
  struct val_report r;
  report_init(&r);
  report_check(&r, "vectoradd-0", true, "fine");
  report_busy(&r, "vectoradd-1", "gpu-1 GPU-x: compute mode %s", "Prohibited");
  report_busy(&r, "vectoradd-2", "gpu-2 GPU-y: in use");
  assert_int_equal(r.exit_code, VAL_OK); /* busy is not a failure */
  report_finish(&r);
  assert_int_equal(r.exit_code, VAL_BUSY);
  assert_string_equal(r.reason, "GPUBusy: gpu-1 GPU-x: compute mode Prohibited");
  assert_true(report_outcome_ready(r.exit_code));
  report_release(&r);
  /* A failure anywhere wins over busy, whatever the order. */
  report_init(&r);
  report_busy(&r, "vectoradd-0", "gpu-0: in use");
  report_fail(&r, VAL_CUDA, "gpu-1 broken");
  report_finish(&r);
  assert_int_equal(r.exit_code, VAL_CUDA);
  assert_false(report_outcome_ready(r.exit_code));
  report_release(&r);
}

static void test_report_round_trip(void **state) {
  struct val_report r;
  report_init(&r);
  report_check(&r, "gpu-0", true, "fine");
  report_busy(&r, "vectoradd-0/mig-1", "busy");
  report_fail(&r, VAL_WRONG_RESULT, "gpu-1 element 3");
  report_set_string(&r.driver_version, "550.54.15");
  struct val_device *d = report_device(&r, 0, 1);
  report_set_string(&d->uuid, "MIG-x");
  report_set_string(&d->pci_bus_id, "00000000:3B:00.0");
  report_set_string(&d->compute_mode, "ExclusiveProcess");
  d->busy = true;
  d->have_memory = true;
  d->memory_total_mib = 9856;
  d->have_cc = true;
  d->cc_major = 9;
  d->vectoradd_ran = true;
  d->vectoradd_elements = 64;
  d = report_device(&r, 0, -1);
  d->mig_enabled = true;
  json_t *j = report_json(&r);
  struct val_report back;
  report_init(&back);
  struct gpc_error err = {0};
  assert_int_equal(report_from_json(j, &back, &err), GPC_OK);
  json_t *again = report_json(&back);
  assert_true(json_equal(j, again));
  assert_int_equal(back.exit_code, VAL_WRONG_RESULT);
  assert_true(back.checks[1].busy);
  json_decref(again);
  json_decref(j);
  report_release(&back);
  report_release(&r);
  report_init(&back);
  j = json_pack("{s:[],s:[{s:s}],s:i}", "checks", "devices", "index", "x", "exitCode", 0);
  assert_int_equal(report_from_json(j, &back, &err), GPC_E_INVAL);
  json_decref(j);
  report_release(&back);
}

static void test_probe_busy_is_ready(void **state) {
  char *path = gpc_asprintf("%s/busy.json", scratch);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("{\"exitCode\":17,\"reason\":\"GPUBusy: gpu-1 in use\"}", f);
  fclose(f);
  struct gpc_error why = {0};
  assert_int_equal(statefile_probe(path, &why), 0);
  assert_string_equal(why.msg, "GPUBusy: gpu-1 in use");
  unlink(path);
  free(path);
}

static void test_termlog_full_disk(void **state) {
  struct gpc_error err = {0};
  assert_int_equal(statefile_termlog_write("/dev/full", "NoDevice: x", &err), GPC_E_IO);
  assert_string_equal(err.msg, "termination log /dev/full: No space left on device");
}

/* ---- allocation check ---------------------------------------------------------------------------
 */

static void test_allocpod_name(void **state) {
  (void)state;
  char buf[ALLOCPOD_NAME_MAX + 1];
  allocpod_name("gpu-node-0", buf, sizeof buf);
  assert_string_equal(buf, "gpu-policy-alloc-gpu-node-0");
  /* a long FQDN node name: 63 characters, no dots, distinct per node */
  const char *a = "ip-10-0-12-34.eu-west-1.compute.internal.example-cluster.corp.example.com";
  const char *b = "ip-10-0-12-34.eu-west-1.compute.internal.example-cluster.corp.example.org";
  char other[ALLOCPOD_NAME_MAX + 1];
  allocpod_name(a, buf, sizeof buf);
  allocpod_name(b, other, sizeof other);
  assert_int_equal(strlen(buf), ALLOCPOD_NAME_MAX);
  assert_null(strchr(buf, '.'));
  assert_string_not_equal(buf, other);
  assert_int_equal(strncmp(buf, "gpu-policy-alloc-ip-10-0-12-34-eu-west-1", 40), 0);
  for (const char *p = buf; *p; p++)
    assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-');
  /* the head never ends in '-' before the hash's '-' */
  allocpod_name("n-----------------------------------------------------------------x", buf,
                sizeof buf);
  assert_null(strstr(buf, "--"));
  assert_int_equal(strlen(buf) <= ALLOCPOD_NAME_MAX, 1);
}

static const char self_pod[] =
    "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"validator-x\",\"uid\":\"u-1\"},"
    "\"spec\":{\"runtimeClassName\":\"nvidia\",\"tolerations\":[{\"key\":\"nvidia.com/gpu\","
    "\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}],\"securityContext\":{\"runAsNonRoot\":"
    "true,"
    "\"runAsUser\":65532},\"containers\":[{\"name\":\"sidecar\",\"image\":\"other:1\"},"
    "{\"name\":\"validator\",\"image\":\"reg/gpc:v1\",\"securityContext\":"
    "{\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":true}}]}}";

static void test_allocpod_manifest(void **state) {
  (void)state;
  struct allocpod_self s;
  struct gpc_error err = {0};
  assert_int_equal(allocpod_self_from_pod(self_pod, strlen(self_pod), "validator", &s, &err),
                   GPC_OK);
  assert_string_equal(s.image, "reg/gpc:v1");
  assert_string_equal(s.uid, "u-1");
  json_t *pod = allocpod_manifest("gpu-policy-alloc-n1", "ops", "n1", "validator-x", &s);
  json_t *spec = json_object_get(pod, "spec");
  assert_string_equal(json_string_value(json_object_get(spec, "nodeName")), "n1");
  assert_string_equal(json_string_value(json_object_get(spec, "restartPolicy")), "Never");
  assert_string_equal(json_string_value(json_object_get(spec, "runtimeClassName")), "nvidia");
  json_t *want = json_pack("{s:b, s:i}", "runAsNonRoot", 1, "runAsUser", 65532);
  assert_true(json_equal(json_object_get(spec, "securityContext"), want));
  json_decref(want);
  json_t *tol = json_object_get(spec, "tolerations");
  assert_int_equal(json_array_size(tol), 1);
  assert_true(json_is_false(json_object_get(spec, "automountServiceAccountToken")));
  json_t *ctr = json_array_get(json_object_get(spec, "containers"), 0);
  assert_int_equal(json_array_size(json_object_get(spec, "containers")), 1);
  assert_string_equal(json_string_value(json_object_get(ctr, "image")), "reg/gpc:v1");
  assert_string_equal(json_string_value(json_array_get(json_object_get(ctr, "command"), 0)),
                      "gpu-policy-validator");
  assert_string_equal(
      json_string_value(json_object_get(
          json_object_get(json_object_get(ctr, "resources"), "limits"), "nvidia.com/gpu")),
      "1");
  assert_true(json_is_false(
      json_object_get(json_object_get(ctr, "securityContext"), "allowPrivilegeEscalation")));
  /* the device plugin alone chooses the GPU: no NVIDIA_VISIBLE_DEVICES */
  json_t *e;
  size_t i;
  json_array_foreach(json_object_get(ctr, "env"), i, e) {
    assert_string_not_equal(json_string_value(json_object_get(e, "name")),
                            "NVIDIA_VISIBLE_DEVICES");
  }
  json_t *meta = json_object_get(pod, "metadata");
  assert_string_equal(json_string_value(json_object_get(meta, "namespace")), "ops");
  json_t *ref = json_array_get(json_object_get(meta, "ownerReferences"), 0);
  assert_string_equal(json_string_value(json_object_get(ref, "kind")), "Pod");
  assert_string_equal(json_string_value(json_object_get(ref, "name")), "validator-x");
  assert_string_equal(json_string_value(json_object_get(ref, "uid")), "u-1");
  assert_null(json_object_get(ref, "blockOwnerDeletion"));
  json_decref(pod);
  allocpod_self_release(&s);
  /* not a Pod, no uid */
  assert_int_equal(allocpod_self_from_pod("{\"kind\":\"Node\"}", 15, NULL, &s, &err), GPC_E_INVAL);
  const char *nouid = "{\"kind\":\"Pod\",\"spec\":{\"containers\":[{\"image\":\"x\"}]}}";
  assert_int_equal(allocpod_self_from_pod(nouid, strlen(nouid), NULL, &s, &err), GPC_E_INVAL);
  assert_non_null(strstr(err.msg, "metadata.uid"));
}

static struct allocpod_result interpret(const char *body) {
  struct allocpod_result res;
  struct gpc_error err = {0};
  assert_int_equal(allocpod_interpret(body, strlen(body), &res, &err), GPC_OK);
  return res;
}

static void test_allocpod_interpret(void **state) {
  (void)state;
  struct allocpod_result r = interpret(
      "{\"kind\":\"Pod\",\"status\":{\"phase\":\"Succeeded\",\"containerStatuses\":[{\"name\":"
      "\"vectoradd\",\"state\":{\"terminated\":{\"exitCode\":0}}}]}}");
  assert_int_equal(r.state, ALLOCPOD_SUCCEEDED);
  assert_int_equal(r.exit_code, 0);
  /* the kubelet's device manager refused it: no container verdict */
  r = interpret(
      "{\"kind\":\"Pod\",\"status\":{\"phase\":\"Failed\",\"reason\":"
      "\"UnexpectedAdmissionError\",\"message\":\"Pod was rejected: Allocate failed due to "
      "requested number of devices unavailable for nvidia.com/gpu. Requested: 1, "
      "Available: 0, which is unexpected\"}}");
  assert_int_equal(r.state, ALLOCPOD_REJECTED);
  assert_string_equal(r.detail,
                      "UnexpectedAdmissionError: Pod was rejected: Allocate failed due to "
                      "requested number of devices unavailable for nvidia.com/gpu. "
                      "Requested: 1, Available: 0, which is unexpected");
  /* its checks failed in the pod */
  r = interpret(
      "{\"kind\":\"Pod\",\"status\":{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":"
      "\"vectoradd\",\"state\":{\"terminated\":{\"exitCode\":13,\"reason\":\"Error\","
      "\"message\":\"CUDAError: cuInit: no CUDA-capable device is detected (100)\"}}}]}}");
  assert_int_equal(r.state, ALLOCPOD_FAILED);
  assert_int_equal(r.exit_code, 13);
  assert_string_equal(r.detail, "CUDAError: cuInit: no CUDA-capable device is detected (100)");
  /* still waiting: says on what */
  r = interpret(
      "{\"kind\":\"Pod\",\"status\":{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":"
      "\"vectoradd\",\"state\":{\"waiting\":{\"reason\":\"ContainerCreating\"}}}]}}");
  assert_int_equal(r.state, ALLOCPOD_WAITING);
  assert_string_equal(r.detail, "phase Pending, ContainerCreating");
  r = interpret("{\"kind\":\"Pod\",\"metadata\":{}}");
  assert_int_equal(r.state, ALLOCPOD_WAITING);
  assert_string_equal(r.detail, "phase Pending");
  struct allocpod_result res;
  struct gpc_error err = {0};
  assert_int_equal(allocpod_interpret("{\"kind\":\"Node\"}", 15, &res, &err), GPC_E_INVAL);
  assert_int_equal(allocpod_interpret("nope", 4, &res, &err), GPC_E_INVAL);
}

int main(int argc, char **argv) {
  gpc_alloc_init();
  /* `make unit` runs this from the repository root without a directory:
   * scratch files then go to a private temporary one, not the tree. */
  char tmp[] = "/tmp/gpc-test-pure.XXXXXX";
  scratch = argc > 1 ? argv[1] : mkdtemp(tmp);
  if (!scratch) {
    perror("mkdtemp");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_allocatable),
      cmocka_unit_test(test_allocatable_bad),
      cmocka_unit_test(test_vectoradd_check),
      cmocka_unit_test(test_report_first_failure_decides),
      cmocka_unit_test(test_report_json),
      cmocka_unit_test(test_probe_rejects_oversized_file),
      cmocka_unit_test(test_uuid_and_bus_id_match),
      cmocka_unit_test(test_busy_outcome),
      cmocka_unit_test(test_report_round_trip),
      cmocka_unit_test(test_probe_busy_is_ready),
      cmocka_unit_test(test_termlog_full_disk),
      cmocka_unit_test(test_allocpod_name),
      cmocka_unit_test(test_allocpod_manifest),
      cmocka_unit_test(test_allocpod_interpret),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  if (argc <= 1) rmdir(scratch);
  return failed;
}
