/* test_metrics.c — registry updates and the exact text exposition. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "alloc.h"
#include "metrics.h"

#define V(...) ((const char *const[]){__VA_ARGS__})

static void test_counter_gauge_render(void **state) {
  (void)state;
  struct metrics *m = metrics_new();
  struct gpc_error err = {0};
  struct metric_family *c =
      metrics_register(m, METRIC_COUNTER, "rest_client_requests_total", "Requests by code.",
                       V("code", "method", NULL), NULL, 0, &err);
  struct metric_family *g =
      metrics_register(m, METRIC_GAUGE, "workqueue_depth", "Depth.", NULL, NULL, 0, &err);
  assert_non_null(c);
  assert_non_null(g);
  assert_int_equal(metrics_counter_add(c, V("200", "GET"), 1), GPC_OK);
  assert_int_equal(metrics_counter_add(c, V("200", "GET"), 2), GPC_OK);
  assert_int_equal(metrics_counter_add(c, V("404", "PATCH"), 1), GPC_OK);
  assert_int_equal(metrics_set(g, NULL, 7), GPC_OK);
  assert_int_equal(metrics_gauge_add(g, NULL, -2), GPC_OK);
  size_t len = 0;
  char *out = metrics_render(m, &len);
  assert_string_equal(out, "# HELP rest_client_requests_total Requests by code.\n"
                           "# TYPE rest_client_requests_total counter\n"
                           "rest_client_requests_total{code=\"200\",method=\"GET\"} 3\n"
                           "rest_client_requests_total{code=\"404\",method=\"PATCH\"} 1\n"
                           "# HELP workqueue_depth Depth.\n"
                           "# TYPE workqueue_depth gauge\n"
                           "workqueue_depth 5\n");
  assert_int_equal(len, strlen(out));
  free(out);
  metrics_free(m);
}

static void test_misuse_is_refused(void **state) {
  (void)state;
  struct metrics *m = metrics_new();
  struct gpc_error err = {0};
  struct metric_family *c =
      metrics_register(m, METRIC_COUNTER, "a_total", "x", V("k", NULL), NULL, 0, &err);
  /* counters never go down */
  assert_int_equal(metrics_counter_add(c, V("v"), -1), GPC_E_INVAL);
  assert_int_equal(metrics_set(c, V("v"), 5), GPC_OK);
  assert_int_equal(metrics_set(c, V("v"), 4), GPC_E_INVAL);
  assert_true(metrics_value(c, V("v")) == 5);
  /* wrong type / missing label values */
  assert_int_equal(metrics_observe(c, V("v"), 1), GPC_E_INVAL);
  assert_int_equal(metrics_gauge_add(c, V("v"), 1), GPC_E_INVAL);
  assert_int_equal(metrics_counter_add(c, NULL, 1), GPC_E_INVAL);
  assert_int_equal(metrics_counter_add(NULL, NULL, 1), GPC_E_INVAL);
  /* bad names, reserved labels, duplicates */
  assert_null(metrics_register(m, METRIC_GAUGE, "9bad", "", NULL, NULL, 0, &err));
  assert_non_null(strstr(err.msg, "9bad"));
  assert_null(metrics_register(m, METRIC_GAUGE, "a_total", "", NULL, NULL, 0, &err));
  assert_non_null(strstr(err.msg, "twice"));
  assert_null(metrics_register(m, METRIC_GAUGE, "g", "", V("a-b", NULL), NULL, 0, &err));
  assert_null(metrics_register(m, METRIC_GAUGE, "g", "", V("__x", NULL), NULL, 0, &err));
  assert_null(metrics_register(m, METRIC_GAUGE, "g", "", V("a", "a", NULL), NULL, 0, &err));
  assert_null(metrics_register(m, METRIC_HISTOGRAM, "h", "", V("le", NULL), NULL, 0, &err));
  assert_non_null(strstr(err.msg, "le"));
  double bad[] = {1, 1};
  assert_null(metrics_register(m, METRIC_HISTOGRAM, "h", "", NULL, bad, 2, &err));
  assert_non_null(metrics_register(m, METRIC_GAUGE, "ns:sub_metric", "", NULL, NULL, 0, &err));
  assert_int_equal(metrics_value(c, V("absent")), -1);
  metrics_free(m);
}

static void test_escaping(void **state) {
  (void)state;
  struct metrics *m = metrics_new();
  struct gpc_error err = {0};
  struct metric_family *g = metrics_register(m, METRIC_GAUGE, "g", "a \\ back\nslash \"q\"",
                                             V("policy", NULL), NULL, 0, &err);
  metrics_set(g, V("we\"ird\\na\nme"), 1);
  char *out = metrics_render(m, NULL);
  assert_string_equal(out, "# HELP g a \\\\ back\\nslash \"q\"\n"
                           "# TYPE g gauge\n"
                           "g{policy=\"we\\\"ird\\\\na\\nme\"} 1\n");
  free(out);
  metrics_free(m);
}

static void test_histogram(void **state) {
  (void)state;
  struct metrics *m = metrics_new();
  struct gpc_error err = {0};
  double b[] = {0.1, 0.5, 2};
  struct metric_family *h = metrics_register(m, METRIC_HISTOGRAM, "t_seconds", "Time.",
                                             V("controller", NULL), b, 3, &err);
  assert_non_null(h);
  metrics_observe(h, V("c"), 0.05);
  metrics_observe(h, V("c"), 0.1); /* le is inclusive */
  metrics_observe(h, V("c"), 1);
  metrics_observe(h, V("c"), 100);
  assert_int_equal(metrics_observe(h, V("c"), NAN), GPC_E_INVAL);
  char *out = metrics_render(m, NULL);
  assert_string_equal(out, "# HELP t_seconds Time.\n"
                           "# TYPE t_seconds histogram\n"
                           "t_seconds_bucket{controller=\"c\",le=\"0.1\"} 2\n"
                           "t_seconds_bucket{controller=\"c\",le=\"0.5\"} 2\n"
                           "t_seconds_bucket{controller=\"c\",le=\"2\"} 3\n"
                           "t_seconds_bucket{controller=\"c\",le=\"+Inf\"} 4\n"
                           "t_seconds_sum{controller=\"c\"} 101.15\n"
                           "t_seconds_count{controller=\"c\"} 4\n");
  free(out);
  assert_true(metrics_value(h, V("c")) == 4);
  /* default buckets: controller-runtime's 0.005 .. 60 */
  struct metric_family *d =
      metrics_register(m, METRIC_HISTOGRAM, "d_seconds", "", NULL, NULL, 0, &err);
  metrics_observe(d, NULL, 0.001);
  out = metrics_render(m, NULL);
  assert_non_null(strstr(out, "d_seconds_bucket{le=\"0.005\"} 1\n"));
  assert_non_null(strstr(out, "d_seconds_bucket{le=\"60\"} 1\n"));
  assert_non_null(strstr(out, "d_seconds_bucket{le=\"+Inf\"} 1\n"));
  assert_non_null(strstr(out, "d_seconds_sum 0.001\n"));
  free(out);
  metrics_free(m);
}

static void test_drop_and_touch(void **state) {
  (void)state;
  struct metrics *m = metrics_new();
  struct gpc_error err = {0};
  struct metric_family *g = metrics_register(m, METRIC_GAUGE, "gpupolicy_nodes", "",
                                             V("policy", "state", NULL), NULL, 0, &err);
  metrics_set(g, V("a", "ready"), 1);
  metrics_set(g, V("a", "matched"), 2);
  metrics_set(g, V("b", "ready"), 3);
  assert_int_equal(metrics_drop_matching(g, "policy", "a"), 2);
  assert_int_equal(metrics_drop_matching(g, "nolabel", "a"), 0);
  assert_int_equal(metrics_series_count(g), 1);
  assert_int_equal(metrics_touch(g, V("c", "ready")), GPC_OK);
  assert_true(metrics_value(g, V("c", "ready")) == 0);
  assert_ptr_equal(metrics_find(m, "gpupolicy_nodes"), g);
  assert_null(metrics_find(m, "nope"));
  metrics_free(m);
}

static int collected;
static void collect(struct metrics *m, void *ud) {
  (void)m;
  collected++;
  metrics_set(ud, NULL, collected);
}

static void test_collectors_and_empty_family(void **state) {
  (void)state;
  struct metrics *m = metrics_new();
  struct gpc_error err = {0};
  metrics_register(m, METRIC_COUNTER, "empty_total", "No series yet.", NULL, NULL, 0, &err);
  struct metric_family *g = metrics_register(m, METRIC_GAUGE, "g", "", NULL, NULL, 0, &err);
  metrics_add_collector(m, collect, g);
  char *out = metrics_render(m, NULL);
  assert_string_equal(out, "# HELP empty_total No series yet.\n# TYPE empty_total counter\n"
                           "# HELP g \n# TYPE g gauge\ng 1\n");
  free(out);
  out = metrics_render(m, NULL);
  assert_non_null(strstr(out, "g 2\n"));
  free(out);
  metrics_free(m);
}

static void test_format_value(void **state) {
  (void)state;
  char b[40];
  assert_string_equal(metrics_format_value(0, b, sizeof b), "0");
  assert_string_equal(metrics_format_value(-3, b, sizeof b), "-3");
  assert_string_equal(metrics_format_value(0.005, b, sizeof b), "0.005");
  assert_string_equal(metrics_format_value(0.1 + 0.2, b, sizeof b), "0.30000000000000004");
  assert_string_equal(metrics_format_value(1e20, b, sizeof b), "1e+20");
  assert_string_equal(metrics_format_value(INFINITY, b, sizeof b), "+Inf");
  assert_string_equal(metrics_format_value(-INFINITY, b, sizeof b), "-Inf");
  assert_string_equal(metrics_format_value(NAN, b, sizeof b), "NaN");
  assert_true(strtod(metrics_format_value(1.0 / 3, b, sizeof b), NULL) == 1.0 / 3);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counter_gauge_render),
      cmocka_unit_test(test_misuse_is_refused),
      cmocka_unit_test(test_escaping),
      cmocka_unit_test(test_histogram),
      cmocka_unit_test(test_drop_and_touch),
      cmocka_unit_test(test_collectors_and_empty_family),
      cmocka_unit_test(test_format_value),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
