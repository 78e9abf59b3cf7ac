/* test_list_decoder.c — LIST bodies split at every byte give the same items
 * and skeleton; limits and malformed bodies are errors, not crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "list_decoder.h"

static const char BODY[] =
    "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"42\","
    "\"continue\":\"tok]en{\\\"items\\\":[\",\"items\":[\"not\",\"these\"]},\n"
    "\"items\" : [ "
    "{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\"},\"data\":{\"k\":\"}]\\\\\"}},\n"
    "  {\"metadata\":{\"name\":\"b\"},\"list\":[[1,2],{\"x\":[]}]} ,{\"metadata\":{\"name\":\"c\"}}"
    "],\"extra\":{\"items\":[1]}}";

struct got {
  char names[8][8];
  int n;
  int stop_at;
};

static int on_item(const json_t *item, void *ud) {
  struct got *g = ud;
  const char *name = json_string_value(json_object_get(json_object_get(item, "metadata"), "name"));
  strncpy(g->names[g->n], name ? name : "?", sizeof g->names[0] - 1);
  g->n++;
  return g->stop_at && g->n == g->stop_at;
}

static void check_result(struct list_decoder *d, const struct got *g) {
  assert_int_equal(g->n, 3);
  assert_string_equal(g->names[0], "a");
  assert_string_equal(g->names[1], "b");
  assert_string_equal(g->names[2], "c");
  struct gpc_error err = {0};
  json_t *list = list_decoder_finish(d, &err);
  assert_non_null(list);
  json_t *md = json_object_get(list, "metadata");
  assert_string_equal(json_string_value(json_object_get(md, "resourceVersion")), "42");
  assert_string_equal(json_string_value(json_object_get(md, "continue")), "tok]en{\"items\":[");
  assert_int_equal(json_array_size(json_object_get(md, "items")), 2); /* nested: untouched */
  assert_true(json_is_array(json_object_get(list, "items")));
  assert_int_equal(json_array_size(json_object_get(list, "items")), 0);
  assert_int_equal(json_array_size(json_object_get(json_object_get(list, "extra"), "items")), 1);
  json_decref(list);
  assert_int_equal(list_decoder_items(d), 3);
}

static void test_every_split(void **state) {
  (void)state;
  size_t len = strlen(BODY);
  for (size_t cut = 0; cut <= len; cut++) {
    struct list_decoder *d = list_decoder_new(0, 0);
    struct got g = {0};
    struct gpc_error err = {0};
    assert_int_equal(list_decoder_feed(d, BODY, cut, on_item, &g, &err), GPC_OK);
    assert_int_equal(list_decoder_feed(d, BODY + cut, len - cut, on_item, &g, &err), GPC_OK);
    check_result(d, &g);
    list_decoder_free(d);
  }
  /* byte by byte */
  struct list_decoder *d = list_decoder_new(0, 0);
  struct got g = {0};
  for (size_t i = 0; i < len; i++)
    assert_int_equal(list_decoder_feed(d, BODY + i, 1, on_item, &g, NULL), GPC_OK);
  check_result(d, &g);
  list_decoder_free(d);
}

static void test_empty_and_null_items(void **state) {
  (void)state;
  const char *bodies[] = {"{\"kind\":\"L\",\"items\":[]}", "{\"kind\":\"L\",\"items\":null}",
                          "{\"kind\":\"L\",\"metadata\":{}}"};
  for (int i = 0; i < 3; i++) {
    struct list_decoder *d = list_decoder_new(0, 0);
    struct got g = {0};
    assert_int_equal(list_decoder_feed(d, bodies[i], strlen(bodies[i]), on_item, &g, NULL), 0);
    json_t *l = list_decoder_finish(d, NULL);
    assert_non_null(l);
    assert_int_equal(g.n, 0);
    json_decref(l);
    list_decoder_free(d);
  }
}

static void test_errors(void **state) {
  (void)state;
  struct gpc_error err = {0};
  struct got g = {0};
  /* truncated */
  struct list_decoder *d = list_decoder_new(0, 0);
  assert_int_equal(list_decoder_feed(d, BODY, 100, on_item, &g, &err), GPC_OK);
  assert_null(list_decoder_finish(d, &err));
  assert_non_null(strstr(err.msg, "truncated"));
  list_decoder_free(d);
  /* item that is not an object */
  d = list_decoder_new(0, 0);
  const char *bad = "{\"items\":[1,2]}";
  assert_int_equal(list_decoder_feed(d, bad, strlen(bad), on_item, &g, &err), GPC_E_INVAL);
  assert_non_null(strstr(err.msg, "not an object"));
  /* stays failed */
  assert_int_equal(list_decoder_feed(d, "{", 1, on_item, &g, &err), GPC_E_INVAL);
  assert_null(list_decoder_finish(d, &err));
  list_decoder_free(d);
  /* malformed item JSON */
  d = list_decoder_new(0, 0);
  bad = "{\"items\":[{\"a\":tru}]}";
  assert_int_equal(list_decoder_feed(d, bad, strlen(bad), on_item, &g, &err), GPC_E_INVAL);
  list_decoder_free(d);
  /* item cap */
  d = list_decoder_new(20, 0);
  bad = "{\"items\":[{\"a\":\"0123456789012345678901234567890\"}]}";
  assert_int_equal(list_decoder_feed(d, bad, strlen(bad), on_item, &g, &err), GPC_E_TOO_LARGE);
  list_decoder_free(d);
  /* skeleton cap */
  d = list_decoder_new(0, 16);
  bad = "{\"metadata\":{\"continue\":\"0123456789012345678901234567890\"},\"items\":[]}";
  assert_int_equal(list_decoder_feed(d, bad, strlen(bad), on_item, &g, &err), GPC_E_TOO_LARGE);
  list_decoder_free(d);
  /* unbalanced and non-object bodies */
  d = list_decoder_new(0, 0);
  assert_int_equal(list_decoder_feed(d, "}", 1, on_item, &g, &err), GPC_E_INVAL);
  list_decoder_free(d);
  d = list_decoder_new(0, 0);
  assert_int_equal(list_decoder_feed(d, "[1]", 3, on_item, &g, &err), GPC_OK);
  assert_null(list_decoder_finish(d, &err));
  list_decoder_free(d);
}

static void test_callback_stop(void **state) {
  (void)state;
  struct list_decoder *d = list_decoder_new(0, 0);
  struct got g = {.stop_at = 2};
  assert_int_equal(list_decoder_feed(d, BODY, strlen(BODY), on_item, &g, NULL), GPC_E_CANCELLED);
  assert_int_equal(g.n, 2);
  list_decoder_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_split),
      cmocka_unit_test(test_empty_and_null_items),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_callback_stop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
