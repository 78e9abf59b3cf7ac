/* test_apply_cmd.c — the apply CLI's pure parts: apiVersion splitting,
 * discovery lookup, and loading files, directories and List kinds. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "alloc.h"
#include "apply_cmd.h"

static void test_split(void **state) {
  (void)state;
  char *g, *v;
  assert_int_equal(apply_cmd_split_api_version("apps/v1", &g, &v), GPC_OK);
  assert_string_equal(g, "apps");
  assert_string_equal(v, "v1");
  free(g);
  free(v);
  assert_int_equal(apply_cmd_split_api_version("v1", &g, &v), GPC_OK);
  assert_string_equal(g, "");
  assert_string_equal(v, "v1");
  free(g);
  free(v);
  const char *bad[] = {"", "/v1", "apps/", "a/b/c"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(apply_cmd_split_api_version(bad[i], &g, &v), GPC_E_INVAL);
    assert_null(g);
  }
  assert_int_equal(apply_cmd_split_api_version(NULL, &g, &v), GPC_E_INVAL);
}

static void test_discovery_find(void **state) {
  (void)state;
  json_t *list =
      json_loads("{\"kind\":\"APIResourceList\",\"groupVersion\":\"apps/v1\",\"resources\":["
                 "{\"name\":\"daemonsets\",\"kind\":\"DaemonSet\",\"namespaced\":true},"
                 "{\"name\":\"daemonsets/status\",\"kind\":\"DaemonSet\",\"namespaced\":true},"
                 "{\"name\":\"nodes\",\"kind\":\"Node\",\"namespaced\":false}]}",
                 0, NULL);
  bool ns = false;
  assert_string_equal(apply_cmd_discovery_find(list, "DaemonSet", &ns), "daemonsets");
  assert_true(ns);
  assert_string_equal(apply_cmd_discovery_find(list, "Node", &ns), "nodes");
  assert_false(ns);
  assert_null(apply_cmd_discovery_find(list, "Widget", &ns));
  assert_null(apply_cmd_discovery_find(json_null(), "Node", &ns));
  json_decref(list);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_load_dir_and_lists(void **state) {
  (void)state;
  char dir[] = "/tmp/gpc-apply-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char p[256];
  snprintf(p, sizeof p, "%s/b.yaml", dir);
  write_file(p, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b1}\n---\n"
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b2}\n");
  snprintf(p, sizeof p, "%s/a.json", dir);
  write_file(p, "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":["
                "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a1\"}},"
                "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a2\"}}]}");
  snprintf(p, sizeof p, "%s/notes.txt", dir);
  write_file(p, "ignored");
  json_t *docs = json_array();
  struct gpc_error err = {0};
  assert_int_equal(apply_cmd_load_path(dir, docs, &err), GPC_OK);
  /* a.json before b.yaml; the List expanded; the .txt ignored */
  const char *want[] = {"a1", "a2", "b1", "b2"};
  assert_int_equal(json_array_size(docs), 4);
  for (size_t i = 0; i < 4; i++) {
    json_t *obj = json_object_get(json_array_get(docs, i), "object");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "name")), want[i]);
  }
  assert_non_null(
      strstr(json_string_value(json_object_get(json_array_get(docs, 3), "source")), "b.yaml#2"));
  json_decref(docs);

  /* bad YAML names the file; a missing path is an error */
  snprintf(p, sizeof p, "%s/c.yaml", dir);
  write_file(p, "a: [unclosed\n");
  docs = json_array();
  assert_int_not_equal(apply_cmd_load_path(p, docs, &err), GPC_OK);
  assert_non_null(strstr(err.msg, "c.yaml"));
  snprintf(p, sizeof p, "%s/missing.yaml", dir);
  assert_int_equal(apply_cmd_load_path(p, docs, &err), GPC_E_NOT_FOUND);
  json_decref(docs);

  const char *names[] = {"a.json", "b.yaml", "c.yaml", "notes.txt"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  /* an empty directory is an error, not a silent no-op */
  docs = json_array();
  assert_int_equal(apply_cmd_load_path(dir, docs, &err), GPC_E_NOT_FOUND);
  json_decref(docs);
  rmdir(dir);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split),
      cmocka_unit_test(test_discovery_find),
      cmocka_unit_test(test_load_dir_and_lists),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
