/* test_yaml2json.c — scalar typing, structure, anchors, errors and the emitter round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "yaml2json.h"

static json_t *parse(const char *y) {
  struct gpc_error err = {0};
  json_t *j = yaml2json_parse(y, strlen(y), 0, &err);
  if (!j) fail_msg("parse failed: %s\n--\n%s", err.msg, y);
  return j;
}

/* Parses `y`, expecting failure with `code` and `needle` in the message. */
static void parse_fails(const char *y, int code, const char *needle) {
  struct gpc_error err = {0};
  json_t *j = yaml2json_parse(y, strlen(y), 0, &err);
  if (j) {
    char *s = json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    fail_msg("expected failure for %s, got %s", y, s);
  }
  assert_int_equal(err.code, code);
  if (!strstr(err.msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
}

/* Asserts that YAML `y` converts to the JSON text `want` (compact, ordered). */
static void expect(const char *y, const char *want) {
  json_t *j = parse(y);
  char *got = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(j);
  if (strcmp(got, want) != 0) fail_msg("%s\n got  %s\n want %s", y, got, want);
  free(got);
}

static void test_scalar_typing(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"v: ~", "{\"v\":null}"},
      {"v: null", "{\"v\":null}"},
      {"v:", "{\"v\":null}"},
      {"v: True", "{\"v\":true}"},
      {"v: FALSE", "{\"v\":false}"},
      {"v: yes", "{\"v\":\"yes\"}"}, /* YAML 1.2: not a bool */
      {"v: 42", "{\"v\":42}"},
      {"v: -17", "{\"v\":-17}"},
      {"v: +3", "{\"v\":3}"},
      {"v: 0x1F", "{\"v\":31}"},
      {"v: 0o17", "{\"v\":15}"},
      {"v: 0755", "{\"v\":493}"}, /* kubectl's reading of defaultMode: 0755 */
      {"v: 089", "{\"v\":89}"},
      {"v: 1.5", "{\"v\":1.5}"},
      {"v: -.5", "{\"v\":-0.5}"},
      {"v: 1e3", "{\"v\":1000.0}"},
      {"v: 9223372036854775807", "{\"v\":9223372036854775807}"},
      {"v: -9223372036854775808", "{\"v\":-9223372036854775808}"},
      {"v: 0xZZ", "{\"v\":\"0xZZ\"}"},
      {"v: 1.2.3", "{\"v\":\"1.2.3\"}"},
      {"v: \"true\"", "{\"v\":\"true\"}"},
      {"v: '42'", "{\"v\":\"42\"}"},
      {"v: !!str 42", "{\"v\":\"42\"}"},
      {"v: ! 42", "{\"v\":\"42\"}"},
      {"v: \"\"", "{\"v\":\"\"}"},
      {"v: nvidia.com/gpu", "{\"v\":\"nvidia.com/gpu\"}"},
      {"80: http", "{\"80\":\"http\"}"}, /* keys are always their text */
      {"true: x", "{\"true\":\"x\"}"},
      {"v: \"a\\u00e9\"", "{\"v\":\"a\\u00E9\"}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    expect(cases[i][0], cases[i][1]);
}

static void test_structure(void **state) {
  (void)state;
  expect("a:\n  b: [1, two, {c: d}]\n  e:\n  - x\n  - y: z\n",
         "{\"a\":{\"b\":[1,\"two\",{\"c\":\"d\"}],\"e\":[\"x\",{\"y\":\"z\"}]}}");
  expect("z: 1\na: 2\nm: 3\n", "{\"z\":1,\"a\":2,\"m\":3}"); /* order kept */
  expect("s: |\n  line1\n  line2\nf: >\n  folded\n  text\n",
         "{\"s\":\"line1\\nline2\\n\",\"f\":\"folded text\\n\"}");
  expect("[]", "[]");
  expect("{}", "{}");
  expect("- 1\n- - 2\n  - 3\n", "[1,[2,3]]");
}

static void test_multi_docs(void **state) {
  (void)state;
  const char *y = "---\na: 1\n---\n---\n# only a comment\n---\n- b\n...\n";
  struct gpc_error err = {0};
  json_t *docs = yaml2json_parse_docs(y, strlen(y), 0, &err);
  assert_non_null(docs);
  assert_int_equal(json_array_size(docs), 2); /* empty documents are skipped */
  assert_int_equal(json_integer_value(json_object_get(json_array_get(docs, 0), "a")), 1);
  assert_string_equal(json_string_value(json_array_get(json_array_get(docs, 1), 0)), "b");
  json_decref(docs);
  parse_fails("a: 1\n---\nb: 2\n", GPC_E_INVAL, "expected one YAML document, found 2");
  parse_fails("", GPC_E_INVAL, "empty YAML document");
  parse_fails("# nothing\n", GPC_E_INVAL, "empty YAML document");
}

static void test_anchors_and_merge(void **state) {
  (void)state;
  expect("base: &b {x: 1, y: 2}\nuse: *b\nlist: [&s str, *s]\n",
         "{\"base\":{\"x\":1,\"y\":2},\"use\":{\"x\":1,\"y\":2},\"list\":[\"str\",\"str\"]}");
  /* Explicit keys win over merged ones, earlier merge sources over later ones. */
  expect("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 9\n",
         "{\"a\":{\"x\":1,\"y\":1},\"b\":{\"y\":2,\"z\":2},\"c\":{\"x\":9,\"y\":1,\"z\":2}}");
  expect("a: &a {x: 1}\nc:\n  x: 0\n  <<: *a\n", "{\"a\":{\"x\":1},\"c\":{\"x\":0}}");
  expect("\"<<\": literal\n", "{\"<<\":\"literal\"}"); /* quoted: an ordinary key */
  /* The aliased copy is independent of the anchor's value. */
  json_t *j = parse("a: &a {x: 1}\nb: *a\n");
  json_object_set_new(json_object_get(j, "b"), "x", json_integer(2));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "a"), "x")), 1);
  json_decref(j);
  parse_fails("a: *nope\n", GPC_E_INVAL, "undefined anchor");
  parse_fails("a:\n  <<: 3\n", GPC_E_INVAL, "merge key");
}

static void test_billion_laughs(void **state) {
  (void)state;
  const char *y = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                  "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                  "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                  "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                  "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                  "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                  "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
  parse_fails(y, GPC_E_TOO_LARGE, "alias expansion");
}

static void test_errors(void **state) {
  (void)state;
  parse_fails("a: 1\n  b: 2\n", GPC_E_INVAL, "line 2");
  parse_fails("a: [1, 2\n", GPC_E_INVAL, "line ");
  parse_fails("a: 1\na: 2\n", GPC_E_INVAL, "duplicate key \"a\"");
  parse_fails("? [a, b]\n: c\n", GPC_E_INVAL, "mapping keys must be scalars");
  parse_fails("v: .inf\n", GPC_E_INVAL, "line 1 column 4: infinity and NaN");
  parse_fails("v: -.Inf\n", GPC_E_INVAL, "infinity");
  parse_fails("v: .nan\n", GPC_E_INVAL, "NaN");
  parse_fails("v: 1e999\n", GPC_E_INVAL, "infinity");
  /* Deep nesting is refused before jansson's recursive helpers see it. */
  char deep[2048];
  memset(deep, '[', 1000);
  deep[1000] = '\0';
  parse_fails(deep, GPC_E_TOO_LARGE, "nesting deeper");
  /* Size cap. */
  struct gpc_error err = {0};
  assert_null(yaml2json_parse("a: 12345", 8, 4, &err));
  assert_int_equal(err.code, GPC_E_TOO_LARGE);
  assert_null(yaml2json_file("test/data/does-not-exist.yaml", 0, &err));
  assert_int_equal(err.code, GPC_E_NOT_FOUND);
  assert_non_null(strstr(err.msg, "does-not-exist.yaml"));
}

static void test_file(void **state) {
  (void)state;
  char path[] = "/tmp/y2j-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs("kind: ClusterGPUPolicy\nspec:\n  x: [1]\n", f);
  fclose(f);
  struct gpc_error err = {0};
  json_t *j = yaml2json_file(path, 0, &err);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "kind")), "ClusterGPUPolicy");
  json_decref(j);
  assert_null(yaml2json_file(path, 10, &err));
  assert_int_equal(err.code, GPC_E_TOO_LARGE);
  unlink(path);
}

static char *to_yaml(const json_t *j) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  struct gpc_error err = {0};
  assert_int_equal(yaml2json_emit(j, f, &err), GPC_OK);
  fclose(f);
  return buf;
}

static void test_emit_round_trip(void **state) {
  (void)state;
  const char *src =
      "{\"apiVersion\":\"apps/v1\",\"metadata\":{\"name\":\"x\",\"labels\":{\"a\":\"true\","
      "\"b\":\"1.0\",\"c\":\"\",\"d\":\"null\",\"e\":\"0755\",\"f\":\"key: value\",\"g\":\"yes\","
      "\"h\":\"~\",\"i\":\"0x10\",\"j\":\"- dash\",\"k\":\"#hash\",\"l\":\" padded \","
      "\"m\":\"multi\\nline\\n\",\"n\":\"tab\\there\",\"o\":\"é unicode\",\"p\":\"1e3\","
      "\"q\":\"<<\",\"r\":\"@at\",\"s\":\"*star\",\"t\":\"&amp\",\"u\":\"{x}\",\"v\":\".inf\","
      "\"w\":\"1_000\",\"w2\":\"1:20\",\"w3\":\"2024-05-01\",\"x\":\"trailing:\",\"y\":"
      "\"no\\ttrail \\n\"}},"
      "\"spec\":{\"count\":3,\"neg\":-1,\"f\":0.1,\"big\":1e300,\"whole\":2.0,\"t\":true,"
      "\"z\":null,\"empty\":{},\"none\":[],\"list\":[{\"a\":1},[2,3],\"s\"]}}";
  json_t *orig = json_loads(src, 0, NULL);
  assert_non_null(orig);
  char *y = to_yaml(orig);
  assert_true(strncmp(y, "---\n", 4) == 0);
  assert_non_null(strstr(y, "a: \"true\"\n"));
  assert_non_null(strstr(y, "e: \"0755\"\n"));
  assert_non_null(strstr(y, "c: \"\"\n"));
  assert_non_null(strstr(y, "g: \"yes\"\n"));
  assert_non_null(strstr(y, "w2: \"1:20\"\n"));
  assert_non_null(strstr(y, "w3: \"2024-05-01\"\n"));
  assert_non_null(strstr(y, "count: 3\n"));
  assert_non_null(strstr(y, "whole: 2.0\n"));
  assert_non_null(strstr(y, "empty: {}\n"));
  struct gpc_error err = {0};
  json_t *back = yaml2json_parse(y, strlen(y), 0, &err);
  if (!back) fail_msg("re-parse failed: %s\n%s", err.msg, y);
  if (!json_equal(orig, back)) {
    char *b = json_dumps(back, 0);
    fail_msg("round trip differs:\n%s\n%s", y, b);
  }
  json_decref(back);
  json_decref(orig);
  free(y);
  /* Two documents concatenate into a valid stream. */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  json_t *one = json_pack("{s:i}", "a", 1), *two = json_pack("[s]", "b");
  assert_int_equal(yaml2json_emit(one, f, &err), GPC_OK);
  assert_int_equal(yaml2json_emit(two, f, &err), GPC_OK);
  fclose(f);
  json_t *docs = yaml2json_parse_docs(buf, len, 0, &err);
  assert_non_null(docs);
  assert_int_equal(json_array_size(docs), 2);
  assert_true(json_equal(json_array_get(docs, 0), one));
  assert_true(json_equal(json_array_get(docs, 1), two));
  json_decref(docs);
  json_decref(one);
  json_decref(two);
  free(buf);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scalar_typing),  cmocka_unit_test(test_structure),
      cmocka_unit_test(test_multi_docs),     cmocka_unit_test(test_anchors_and_merge),
      cmocka_unit_test(test_billion_laughs), cmocka_unit_test(test_errors),
      cmocka_unit_test(test_file),           cmocka_unit_test(test_emit_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
