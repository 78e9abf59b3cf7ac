/* test_secret_wipe.c — no freed heap block still holds a credential after a
 * kubeconfig is loaded and freed (kubeconfig.h: what is wiped, what is best
 * effort).
 *
 * This binary interposes free(): every block freed through it (ours,
 * jansson's, libyaml's) is scanned for the test's marker strings before it
 * goes back to libc. Blocks that realloc moves never pass through free()
 * and are out of reach here, as they are for the code under test. Under
 * ASan or valgrind, which own the allocator, the check is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kubeconfig.h"

#if defined(__SANITIZE_ADDRESS__)
#define GPC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GPC_ASAN 1
#endif
#endif

#define TOKEN "tok-5f3a9c1e7b2d4e6f8a0b1c2d3e4f5a6b"
#define KEY_MARK "KEYMARK-9e8d7c6b5a4f3e2d1c0b"

#ifndef GPC_ASAN
static bool armed;
static int token_hits, key_hits, frees_seen;

void free(void *p) {
  static void (*real_free)(void *);
  if (!real_free) real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
  if (p && armed) {
    frees_seen++;
    size_t n = malloc_usable_size(p);
    if (memmem(p, n, TOKEN, sizeof TOKEN - 1)) token_hits++;
    if (memmem(p, n, KEY_MARK, sizeof KEY_MARK - 1)) key_hits++;
  }
  real_free(p);
}

/* base64 of a PEM-looking key whose body carries KEY_MARK. */
static char *b64(const char *in) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = strlen(in), o = 0;
  char *out = calloc(1, n / 3 * 4 + 8);
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned char)in[i] << 16;
    if (i + 1 < n) v |= (unsigned char)in[i + 1] << 8;
    if (i + 2 < n) v |= (unsigned char)in[i + 2];
    out[o++] = tbl[(v >> 18) & 63];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? tbl[v & 63] : '=';
  }
  return out;
}

static void test_load_and_free_leaves_no_copy(void **state) {
  (void)state;
  /* Under valgrind (or any tool that replaces the allocator) this free()
   * is bypassed; then there is nothing to check. */
  armed = true;
  frees_seen = 0;
  char *volatile probe = strdup("probe");
  assert_string_equal(probe, "probe");
  free(probe);
  armed = false;
  if (frees_seen == 0) skip();
  char *key = b64("-----BEGIN PRIVATE KEY-----\n" KEY_MARK "\n-----END PRIVATE KEY-----\n");
  char *cert = b64("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  char doc[4096];
  snprintf(doc, sizeof doc,
           "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
           "clusters:\n- name: k\n  cluster:\n    server: https://h:6443\n"
           "users:\n- name: u\n  user:\n    token: " TOKEN "\n"
           "    client-certificate-data: %s\n    client-key-data: %s\n"
           "contexts:\n- name: c\n  context: {cluster: k, user: u}\n",
           cert, key);
  struct kubeconfig kc;
  struct gpc_error err = {0};
  token_hits = key_hits = frees_seen = 0;
  armed = true;
  assert_int_equal(kubeconfig_load_mem(&kc, doc, strlen(doc), NULL, NULL, &err), GPC_OK);
  assert_string_equal(kc.token, TOKEN);
  kubeconfig_free(&kc);
  armed = false;
  assert_true(frees_seen > 10); /* the interposer really saw libyaml's and jansson's frees */
  assert_int_equal(token_hits, 0);
  assert_int_equal(key_hits, 0);
  /* The check itself sees an unwiped block. */
  armed = true;
  char *volatile copy = strdup(TOKEN);
  assert_string_equal(copy, TOKEN);
  free(copy);
  armed = false;
  assert_int_equal(token_hits, 1);
  free(key);
  free(cert);
}
#else
static void test_load_and_free_leaves_no_copy(void **state) {
  (void)state;
  skip(); /* ASan owns free() */
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_and_free_leaves_no_copy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
