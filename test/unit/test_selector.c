/* test_selector.c — label selector parsing, validation, matching and canonical form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "selector.h"

static void expect_canonical(const char *in, const char *want) {
  struct gpc_error err = {0};
  struct label_selector *s = selector_parse(in, &err);
  if (!s) fail_msg("parse \"%s\": %s", in, err.msg);
  char *got = selector_to_string(s);
  if (strcmp(got, want) != 0) fail_msg("\"%s\" -> \"%s\", want \"%s\"", in, got, want);
  /* The canonical form parses back to itself. */
  struct label_selector *again = selector_parse(got, &err);
  assert_non_null(again);
  char *got2 = selector_to_string(again);
  assert_string_equal(got, got2);
  free(got2);
  selector_free(again);
  free(got);
  selector_free(s);
}

static void parse_fails(const char *in, const char *needle) {
  struct gpc_error err = {0};
  struct label_selector *s = selector_parse(in, &err);
  if (s) {
    selector_free(s);
    fail_msg("\"%s\" parsed but should fail", in);
  }
  assert_int_equal(err.code, GPC_E_INVAL);
  if (!strstr(err.msg, needle))
    fail_msg("\"%s\": message \"%s\" lacks \"%s\"", in, err.msg, needle);
}

static void test_string_form(void **state) {
  (void)state;
  expect_canonical("", "");
  expect_canonical("a=b", "a=b");
  expect_canonical("a==b", "a=b");
  expect_canonical(" z = 1 , a != 2 ", "a!=2,z=1");
  expect_canonical("x in (c, b,a,b), !y, w", "w,x in (a,b,c),!y");
  expect_canonical("env notin (prod)", "env notin (prod)");
  expect_canonical("nvidia.com/gpu.present=true,gpupolicy.dev/policy",
                   "gpupolicy.dev/policy,nvidia.com/gpu.present=true");
  expect_canonical("a=", "a=");
  expect_canonical("a in ()", "a in ()");
  /* Same key twice keeps both requirements in source order. */
  expect_canonical("k!=1,k!=2", "k!=1,k!=2");
}

static void test_string_errors(void **state) {
  (void)state;
  parse_fails("a=b,", "expected a requirement after ','");
  parse_fails(",a", "expected a label key");
  parse_fails("a b", "expected '=', '!=', 'in' or 'notin'");
  parse_fails("a in b", "expected '('");
  parse_fails("a in (b", "expected ',' or ')'");
  parse_fails("a in (b c)", "expected ',' or ')'");
  parse_fails("!a=b", "expected ','");
  parse_fails("a>1", "expected '=', '!=', 'in' or 'notin'");
  parse_fails("-a=b", "invalid key \"-a\"");
  parse_fails("Example.com/a=b", "prefix must be a lowercase DNS-1123 subdomain");
  parse_fails("a..b/c=d", "DNS-1123");
  parse_fails("a/b/c", "at most one '/'");
  parse_fails("a/=x", "invalid key");
  parse_fails("a=b c", "expected ','");
  parse_fails("a=-x", "invalid value \"-x\"");
  char long_val[100];
  memset(long_val, 'v', sizeof long_val);
  memcpy(long_val, "a=", 2);
  long_val[2 + 64] = '\0';
  parse_fails(long_val, "no more than 63");
  char long_key[300];
  memset(long_key, 'k', sizeof long_key);
  long_key[64] = '\0';
  parse_fails(long_key, "no more than 63");
  /* 253-character prefix is fine, 254 is not. */
  char key[300];
  memset(key, 'p', 253);
  strcpy(key + 253, "/n");
  struct gpc_error err = {0};
  struct label_selector *s = selector_parse(key, &err);
  assert_non_null(s);
  selector_free(s);
  memset(key, 'p', 254);
  strcpy(key + 254, "/n");
  parse_fails(key, "no more than 253");
}

static json_t *labels(void) {
  return json_pack("{s:s,s:s,s:s}", "nvidia.com/gpu.present", "true", "env", "prod", "empty", "");
}

static bool matches(const char *sel) {
  struct gpc_error err = {0};
  struct label_selector *s = selector_parse(sel, &err);
  if (!s) fail_msg("parse \"%s\": %s", sel, err.msg);
  json_t *l = labels();
  bool m = selector_matches_json(s, l);
  json_decref(l);
  selector_free(s);
  return m;
}

static void test_matching(void **state) {
  (void)state;
  assert_true(matches(""));
  assert_true(matches("env=prod"));
  assert_false(matches("env=dev"));
  assert_true(matches("env!=dev"));
  assert_true(matches("missing!=x")); /* absent satisfies != and notin */
  assert_true(matches("missing notin (x)"));
  assert_false(matches("env notin (prod,dev)"));
  assert_true(matches("env in (dev,prod)"));
  assert_false(matches("missing in (x)"));
  assert_true(matches("env"));
  assert_false(matches("missing"));
  assert_true(matches("!missing"));
  assert_false(matches("!env"));
  assert_true(matches("empty="));
  assert_true(matches("empty"));
  assert_true(matches("nvidia.com/gpu.present=true,env in (prod),!gpupolicy.dev/gpu-driver"));
  assert_false(matches("nvidia.com/gpu.present=true,env=dev"));
  struct gpc_error err = {0};
  struct label_selector *s = selector_parse("a", &err);
  assert_false(selector_matches_json(s, NULL));
  assert_false(selector_empty(s));
  selector_free(s);
}

static struct label_selector *from_json(const char *text, struct gpc_error *err) {
  json_t *j = text ? json_loads(text, 0, NULL) : NULL;
  if (text) assert_non_null(j);
  struct label_selector *s = selector_from_json(j, "spec.nodeSelector", err);
  json_decref(j);
  return s;
}

static void json_canonical(const char *text, const char *want) {
  struct gpc_error err = {0};
  struct label_selector *s = from_json(text, &err);
  if (!s) fail_msg("%s: %s", text, err.msg);
  char *got = selector_to_string(s);
  if (strcmp(got, want) != 0) fail_msg("%s -> \"%s\", want \"%s\"", text, got, want);
  free(got);
  selector_free(s);
}

static void json_fails(const char *text, const char *needle) {
  struct gpc_error err = {0};
  struct label_selector *s = from_json(text, &err);
  if (s) {
    selector_free(s);
    fail_msg("%s accepted", text);
  }
  assert_int_equal(err.code, GPC_E_INVAL);
  if (!strstr(err.msg, needle)) fail_msg("%s: \"%s\" lacks \"%s\"", text, err.msg, needle);
}

static void test_json_form(void **state) {
  (void)state;
  struct gpc_error err = {0};
  struct label_selector *s = from_json(NULL, &err);
  assert_true(selector_empty(s));
  selector_free(s);
  json_canonical("{}", "");
  json_canonical("{\"matchLabels\":{\"z\":\"1\",\"a\":\"2\"}}", "a=2,z=1");
  json_canonical(
      "{\"matchLabels\":{\"gpupolicy.dev/policy\":\"p\"},\"matchExpressions\":["
      "{\"key\":\"nvidia.com/gpu.product\",\"operator\":\"In\",\"values\":[\"B\",\"A\"]},"
      "{\"key\":\"x\",\"operator\":\"NotIn\",\"values\":[\"1\"]},"
      "{\"key\":\"gpupolicy.dev/operands\",\"operator\":\"DoesNotExist\"},"
      "{\"key\":\"feature.node.kubernetes.io/pci-10de.present\",\"operator\":\"Exists\","
      "\"values\":[]}]}",
      "feature.node.kubernetes.io/pci-10de.present,!gpupolicy.dev/operands,"
      "gpupolicy.dev/policy=p,nvidia.com/gpu.product in (A,B),x notin (1)");
  json_fails("[]", "spec.nodeSelector: must be an object");
  json_fails("{\"matchLabels\":[]}", "spec.nodeSelector.matchLabels: must be a map");
  json_fails("{\"matchLabels\":{\"a\":1}}",
             "spec.nodeSelector.matchLabels[\"a\"]: must be a string");
  json_fails("{\"matchLabels\":{\"a b\":\"1\"}}", "invalid key \"a b\"");
  json_fails("{\"matchLabels\":{\"a\":\"x y\"}}", "invalid value \"x y\"");
  json_fails("{\"matchExpressions\":{}}", "matchExpressions: must be an array");
  json_fails("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}",
             "spec.nodeSelector.matchExpressions[0].operator: unsupported value \"Gt\"");
  json_fails("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}",
             "matchExpressions[0].values: must be specified");
  json_fails("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\",\"values\":[\"x\"]}]}",
             "may not be specified");
  json_fails("{\"matchExpressions\":[{\"operator\":\"Exists\"}]}", "matchExpressions[0].key");
  json_fails("{\"matchExpressions\":[{\"key\":\"a\"}]}", "matchExpressions[0].operator");
  json_fails("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"ok\",7]}]}",
             "matchExpressions[0].values[1]: invalid value: must be a string");
  json_fails("{\"matchExpressions\":[1]}", "matchExpressions[0]: must be an object");
  /* A JSON selector matches like its string form. */
  s = from_json(
      "{\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"In\",\"values\":[\"prod\"]}]}", &err);
  json_t *l = labels();
  assert_true(selector_matches_json(s, l));
  json_decref(l);
  selector_free(s);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_string_form),
      cmocka_unit_test(test_string_errors),
      cmocka_unit_test(test_matching),
      cmocka_unit_test(test_json_form),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
