/* test_pure.c — cmocka tests of the validator's pure parts: the Node
 * allocatable parser, the host-side vectorAdd check, report semantics and
 * JSON, and the probe's handling of bad status files. Built and run by
 * test/integration/test_validator.py (the Makefile's unit rule links only
 * libgpc.a, and these live in controller/validator/). Run from any directory;
 * argv[1] is a scratch directory. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
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
  report_free(&r);
}

static void test_report_json(void **state) {
  struct val_report r;
  report_init(&r);
  report_check(&r, "gpu-0", true, "bad \xff byte");
  struct val_device *d = report_device(&r, 3);
  assert_ptr_equal(report_device(&r, 3), d);
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
  report_free(&r);
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
  free(path);
}

int main(int argc, char **argv) {
  gpc_alloc_init();
  scratch = argc > 1 ? argv[1] : ".";
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_allocatable),     cmocka_unit_test(test_allocatable_bad),
      cmocka_unit_test(test_vectoradd_check), cmocka_unit_test(test_report_first_failure_decides),
      cmocka_unit_test(test_report_json),     cmocka_unit_test(test_probe_rejects_oversized_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
