/* test_options.c — flag parsing: forms, defaults, and one-line errors naming the flag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

static int parse(struct gpc_options *o, struct gpc_error *err, int argc, char **argv) {
  options_init(o);
  memset(err, 0, sizeof *err);
  return options_parse(o, argc, argv, err);
}

static void test_defaults(void **state) {
  (void)state;
  struct gpc_options o;
  struct gpc_error err;
  char *argv[] = {"gpc"};
  assert_int_equal(parse(&o, &err, 1, argv), GPC_OK);
  assert_string_equal(o.namespace, "gpu-policy-system");
  assert_string_equal(o.metrics_bind, "127.0.0.1:8080"); /* protected by default */
  assert_string_equal(o.health_bind, ":8081");
  assert_null(o.kubeconfig);
  assert_false(o.leader_elect);
  assert_true(o.qps == 50.0);
  assert_int_equal(o.burst, 100);
  assert_true(o.leader_lease_s == 15 && o.leader_renew_s == 10 && o.leader_retry_s == 2);
  options_release(&o);
}

static void test_forms(void **state) {
  (void)state;
  struct gpc_options o;
  struct gpc_error err;
  char *argv[] = {"gpc",
                  "--kubeconfig",
                  "/k",
                  "--namespace=ops",
                  "--leader-elect",
                  "--qps=12.5",
                  "--burst",
                  "7",
                  "--log-format",
                  "text",
                  "--log-level",
                  "info,informer=debug"};
  assert_int_equal(parse(&o, &err, 12, argv), GPC_OK);
  assert_string_equal(o.kubeconfig, "/k");
  assert_string_equal(o.namespace, "ops");
  assert_true(o.leader_elect);
  assert_true(o.qps == 12.5);
  assert_int_equal(o.burst, 7);
  assert_string_equal(o.log_format, "text");
  options_release(&o);

  char *argv2[] = {"gpc", "--leader-elect=false", "--metrics-bind-address=0",
                   "--health-probe-bind-address", "127.0.0.1:0"};
  assert_int_equal(parse(&o, &err, 5, argv2), GPC_OK);
  assert_false(o.leader_elect);
  assert_string_equal(o.metrics_bind, "0");
  assert_string_equal(o.health_bind, "127.0.0.1:0");
  assert_null(o.leader_namespace); /* the Lease follows --namespace */
  options_release(&o);

  /* operands and the controller's Lease in different namespaces */
  char *argv3[] = {"gpc", "--namespace=gpu-policy-operands",
                   "--leader-election-namespace=gpu-policy-system"};
  assert_int_equal(parse(&o, &err, 3, argv3), GPC_OK);
  assert_string_equal(o.namespace, "gpu-policy-operands");
  assert_string_equal(o.leader_namespace, "gpu-policy-system");
  options_release(&o);
}

static void expect_error(const char *substr, int argc, char **argv) {
  struct gpc_options o;
  struct gpc_error err;
  assert_int_equal(parse(&o, &err, argc, argv), GPC_E_INVAL);
  if (!strstr(err.msg, substr)) fail_msg("error \"%s\" lacks \"%s\"", err.msg, substr);
  assert_null(strchr(err.msg, '\n'));
  options_release(&o);
}

static void test_errors(void **state) {
  (void)state;
  expect_error("unknown flag: --nope", 2, (char *[]){"gpc", "--nope"});
  expect_error("flag needs an argument: --kubeconfig", 2, (char *[]){"gpc", "--kubeconfig"});
  expect_error("--qps: invalid value \"fast\"", 2, (char *[]){"gpc", "--qps=fast"});
  expect_error("--qps: invalid value \"0\"", 2, (char *[]){"gpc", "--qps=0"});
  expect_error("--burst", 2, (char *[]){"gpc", "--burst=-1"});
  expect_error("--namespace: invalid value \"Bad_NS\"", 2, (char *[]){"gpc", "--namespace=Bad_NS"});
  expect_error("--leader-election-namespace: invalid value \"A_B\"", 2,
               (char *[]){"gpc", "--leader-election-namespace=A_B"});
  expect_error("--metrics-bind-address", 2, (char *[]){"gpc", "--metrics-bind-address=8080"});
  expect_error("--log-format", 2, (char *[]){"gpc", "--log-format=xml"});
  expect_error("--log-level", 2, (char *[]){"gpc", "--log-level=loud"});
  /* A component nobody logs under would silently change nothing. */
  expect_error("unknown component \"bogus\"; known: apply controller", 2,
               (char *[]){"gpc", "--log-level=info,bogus=debug"});
  expect_error("--log-level", 2, (char *[]){"gpc", "--log-level=info,=debug"});
  expect_error("--leader-elect", 2, (char *[]){"gpc", "--leader-elect=maybe"});
  expect_error("unexpected argument \"extra\"", 2, (char *[]){"gpc", "extra"});
  expect_error("--leader-elect-retry-period: invalid value \"0\"", 2,
               (char *[]){"gpc", "--leader-elect-retry-period=0"});
  /* client-go's rule: lease > renew deadline > 1.2 x retry */
  expect_error("--leader-elect-renew-deadline", 2,
               (char *[]){"gpc", "--leader-elect-renew-deadline=20"});
  expect_error("--leader-elect-renew-deadline", 2,
               (char *[]){"gpc", "--leader-elect-retry-period=9"});
}

static void test_bind_addresses(void **state) {
  (void)state;
  assert_true(options_valid_bind_address(":8080"));
  assert_true(options_valid_bind_address("0"));
  assert_true(options_valid_bind_address("0.0.0.0:9"));
  assert_true(options_valid_bind_address("[::1]:8081"));
  assert_false(options_valid_bind_address("8080"));
  assert_false(options_valid_bind_address(":"));
  assert_false(options_valid_bind_address(":99999"));
  assert_false(options_valid_bind_address("::1:x"));
  assert_false(options_valid_bind_address("[::1:80"));
}

static void test_usage_lists_every_flag(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  options_usage(f, "gpu-policy-controller");
  fclose(f);
  const char *flags[] = {"--kubeconfig",
                         "--context",
                         "--namespace",
                         "--metrics-bind-address",
                         "--health-probe-bind-address",
                         "--leader-elect",
                         "--templates-dir",
                         "--log-level",
                         "--log-format",
                         "--qps",
                         "--burst",
                         "--help",
                         "--version"};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    if (!strstr(buf, flags[i])) fail_msg("usage lacks %s", flags[i]);
  assert_non_null(strstr(buf, "render -f"));
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_forms),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_bind_addresses),
      cmocka_unit_test(test_usage_lists_every_flag),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
