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
  check(urlesc_query, "a in (b,c)", "a%20in%20%28b%2Cc%29");
  check(urlesc_query, "nvidia.com/gpu.present=true,!x", "nvidia.com%2Fgpu.present%3Dtrue%2C%21x");
  check(urlesc_query, "metadata.name=a:b", "metadata.name%3Da%3Ab");
  check(urlesc_query, "AZaz09-._~", "AZaz09-._~");
  check(urlesc_query, "eyJ2+/=&?#%", "eyJ2%2B%2F%3D%26%3F%23%25");
  check(urlesc_query, "\xc3\xa9", "%C3%A9");
  check(urlesc_query, "", "");
  check(urlesc_query, NULL, "");
}

static void test_path(void **state) {
  (void)state;
  check(urlesc_path, "system:controller:gpu", "system:controller:gpu");
  check(urlesc_path, "user@example.com", "user@example.com");
  check(urlesc_path, "../etc/passwd", "..%2Fetc%2Fpasswd");
  check(urlesc_path, "a b?c#d%e", "a%20b%3Fc%23d%25e");
  check(urlesc_path, "gpu-1.example", "gpu-1.example");
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_query), cmocka_unit_test(test_path)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
