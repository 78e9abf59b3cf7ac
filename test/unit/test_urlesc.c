/* test_urlesc.c — query and path percent-encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "urlesc.h"

static void check(char *(*fn)(const char *), const char *in, const char *want) {
  char *got = fn(in);
  if (strcmp(got, want) != 0) fail_msg("\"%s\" -> \"%s\", want \"%s\"", in, got, want);
  free(got);
}

static void test_query(void **state) {
  (void)state;
  check(kube_query_escape, "a in (b,c)", "a%20in%20%28b%2Cc%29");
  check(kube_query_escape, "nvidia.com/gpu.present=true,!x",
        "nvidia.com%2Fgpu.present%3Dtrue%2C%21x");
  check(kube_query_escape, "metadata.name=a:b", "metadata.name%3Da%3Ab");
  check(kube_query_escape, "AZaz09-._~", "AZaz09-._~");
  check(kube_query_escape, "eyJ2+/=&?#%", "eyJ2%2B%2F%3D%26%3F%23%25");
  check(kube_query_escape, "\xc3\xa9", "%C3%A9");
  check(kube_query_escape, "", "");
  check(kube_query_escape, NULL, "");
}

static void test_path(void **state) {
  (void)state;
  check(kube_path_escape, "system:controller:gpu", "system:controller:gpu");
  check(kube_path_escape, "user@example.com", "user@example.com");
  check(kube_path_escape, "../etc/passwd", "..%2Fetc%2Fpasswd");
  check(kube_path_escape, "a b?c#d%e", "a%20b%3Fc%23d%25e");
  check(kube_path_escape, "gpu-1.example", "gpu-1.example");
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_query), cmocka_unit_test(test_path)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
