/* test_render_cmd.c — the `render` subcommand end to end on files. */
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
#include "render_cmd.h"

static char dir[] = "/tmp/gpc-render-cmd-XXXXXX";

static const char *path(const char *name) {
  static char buf[4][256];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
  return buf[i];
}

static void write_file(const char *name, const char *s) {
  FILE *f = fopen(path(name), "w");
  assert_non_null(f);
  fputs(s, f);
  fclose(f);
}

/* Runs the subcommand; out and err receive what it printed (caller frees). */
static int run(char **out, char **err, int argc, ...) {
  char *argv[16] = {"render"};
  va_list ap;
  va_start(ap, argc);
  for (int i = 1; i < argc; i++)
    argv[i] = va_arg(ap, char *);
  va_end(ap);
  size_t ol = 0, el = 0;
  FILE *fo = open_memstream(out, &ol), *fe = open_memstream(err, &el);
  int rc = render_cmd_main_io(argc, argv, fo, fe);
  fclose(fo);
  fclose(fe);
  return rc;
}

static void test_objects_and_label_plan(void **state) {
  (void)state;
  write_file("p.yaml", "apiVersion: gpupolicy.dev/v1alpha1\nkind: ClusterGPUPolicy\n"
                       "metadata: {name: gpus}\nspec: {driver: {enabled: false}}\n");
  write_file("nodes.json",
             "{\"kind\":\"NodeList\",\"items\":["
             "{\"metadata\":{\"name\":\"gpu-1\",\"labels\":{\"nvidia.com/gpu.present\":\"true\"}}},"
             "{\"metadata\":{\"name\":\"gpu-2\",\"labels\":{\"nvidia.com/gpu.present\":\"true\","
             "\"gpupolicy.dev/operands\":\"false\"}}},"
             "{\"metadata\":{\"name\":\"cpu-1\",\"labels\":{}}}]}");
  char *out, *err;
  int rc = run(&out, &err, 5, "-f", (char *)path("p.yaml"), "--nodes", (char *)path("nodes.json"));
  if (rc) fail_msg("rc %d: %s", rc, err);
  assert_non_null(strstr(out, "kind: DaemonSet"));
  assert_non_null(strstr(out, "name: gpus-container-toolkit"));
  assert_null(strstr(out, "name: gpus-driver")); /* disabled */
  assert_non_null(strstr(out, "namespace: gpu-policy-system"));
  assert_non_null(
      strstr(out, "# Node label plan for policy gpus: 1 matched, 0 conflicted, 1 opted out"));
  assert_non_null(
      strstr(out, "#   gpu-1: gpupolicy.dev/policy=gpus gpupolicy.dev/container-toolkit=true\n"));
  assert_null(strstr(out, "cpu-1"));
  assert_null(strstr(out, "#   gpu-2"));
  free(out);
  free(err);

  /* without --nodes: objects only; --namespace honoured */
  rc = run(&out, &err, 5, "-f", (char *)path("p.yaml"), "--namespace", "gpu-ops");
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, "namespace: gpu-ops"));
  assert_null(strstr(out, "# Node label plan"));
  free(out);
  free(err);
}

static void test_errors(void **state) {
  (void)state;
  char *out, *err;
  assert_int_equal(run(&out, &err, 1), 2);
  assert_non_null(strstr(err, "-f POLICY.yaml is required"));
  free(out);
  free(err);
  assert_int_equal(run(&out, &err, 2, "--bogus"), 2);
  free(out);
  free(err);
  write_file("bad.yaml", "metadata: {name: gpus}\nspec: {driver: {imagePullPolicy: Sometimes}}\n");
  assert_int_equal(run(&out, &err, 3, "-f", (char *)path("bad.yaml")), 1);
  assert_non_null(strstr(err, "bad.yaml"));
  assert_non_null(strstr(err, "spec.driver.imagePullPolicy"));
  assert_string_equal(out, ""); /* nothing half-printed */
  free(out);
  free(err);
  write_file("p2.yaml", "metadata: {name: gpus}\nspec: {}\n");
  write_file("n.json", "{\"kind\": \"Pod\"}");
  assert_int_equal(
      run(&out, &err, 5, "-f", (char *)path("p2.yaml"), "--nodes", (char *)path("n.json")), 1);
  assert_non_null(strstr(err, "n.json"));
  free(out);
  free(err);
  assert_int_equal(run(&out, &err, 3, "-f", (char *)path("missing.yaml")), 1);
  assert_non_null(strstr(err, "missing.yaml"));
  free(out);
  free(err);
}

static int setup(void **state) {
  (void)state;
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  const char *files[] = {"p.yaml", "nodes.json", "bad.yaml", "p2.yaml", "n.json"};
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
    unlink(path(files[i]));
  rmdir(dir);
  return 0;
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_objects_and_label_plan),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
