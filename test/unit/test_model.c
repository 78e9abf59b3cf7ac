/* test_model.c — the label arena: lookup, iteration, equality, round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "alloc.h"
#include "model.h"

static void test_labels_roundtrip(void **state) {
  (void)state;
  json_t *in =
      json_pack("{s:s, s:s, s:i, s:s}", "a", "1", "gpupolicy.dev/policy", "p", "n", 3, "empty", "");
  struct gpc_labels l = {0};
  gpc_labels_set_json(&l, in);
  assert_int_equal(l.count, 3); /* the integer is skipped */
  assert_string_equal(gpc_labels_get(&l, "a"), "1");
  assert_string_equal(gpc_labels_lookup(&l, "gpupolicy.dev/policy"), "p");
  assert_string_equal(gpc_labels_get(&l, "empty"), "");
  assert_null(gpc_labels_get(&l, "n"));
  assert_null(gpc_labels_get(&l, "missing"));

  const char *k, *v;
  int n = 0;
  for (uint32_t p = 0; gpc_labels_next(&l, &p, &k, &v);)
    n++;
  assert_int_equal(n, 3);

  json_t *out = gpc_labels_to_json(&l);
  assert_int_equal(json_object_size(out), 3);
  assert_string_equal(json_string_value(json_object_get(out, "a")), "1");

  struct gpc_labels l2 = {0};
  gpc_labels_set_json(&l2, out);
  assert_true(gpc_labels_equal(&l, &l2));
  json_object_set_new(out, "a", json_string("2"));
  gpc_labels_set_json(&l2, out); /* replaces, no leak */
  assert_false(gpc_labels_equal(&l, &l2));

  gpc_labels_release(&l);
  gpc_labels_release(&l2);
  assert_null(gpc_labels_get(&l, "a"));
  json_decref(in);
  json_decref(out);
}

static void test_empty_and_structs(void **state) {
  (void)state;
  struct gpc_labels l = {0};
  gpc_labels_set_json(&l, NULL);
  assert_int_equal(l.count, 0);
  struct gpc_labels l2 = {0};
  assert_true(gpc_labels_equal(&l, &l2));

  struct gpc_node n;
  gpc_node_init(&n);
  assert_int_equal(n.gpu_allocatable, -1);
  assert_string_equal(n.name, "");
  gpc_node_release(&n);
  struct gpc_pod p;
  gpc_pod_init(&p);
  assert_int_equal(p.operand, -1);
  gpc_pod_release(&p);
  struct gpc_daemonset d;
  gpc_daemonset_init(&d);
  assert_string_equal(d.render_hash, "");
  gpc_daemonset_release(&d);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_labels_roundtrip),
      cmocka_unit_test(test_empty_and_structs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
