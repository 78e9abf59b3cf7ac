/* test_dynbuf.c — the capped buffer: its cap, its lifecycle, its reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "errors.h"

static void test_add_and_terminate(void **state) {
  struct dynbuf b;
  dynbuf_init(&b, 100);
  assert_null(dynbuf_ptr(&b));
  assert_int_equal(dynbuf_len(&b), 0);
  assert_int_equal(dynbuf_add(&b, "ab", 2), GPC_OK);
  assert_int_equal(dynbuf_addstr(&b, "cd"), GPC_OK);
  assert_int_equal(dynbuf_addc(&b, 'e'), GPC_OK);
  assert_int_equal(dynbuf_addf(&b, "-%d-%s", 42, "x"), GPC_OK);
  assert_string_equal(dynbuf_ptr(&b), "abcde-42-x");
  assert_int_equal(dynbuf_len(&b), 10);
  dynbuf_reset(&b);
  assert_int_equal(dynbuf_len(&b), 0);
  assert_string_equal(dynbuf_ptr(&b), "");
  dynbuf_release(&b);
  assert_null(dynbuf_ptr(&b));
  assert_int_equal(b.max, 100);
}

/* Exactly max fits; one byte more is refused and changes nothing. */
static void test_cap(void **state) {
  struct dynbuf b = DYNBUF_INIT(4);
  assert_int_equal(dynbuf_add(&b, "abc", 3), GPC_OK);
  assert_int_equal(dynbuf_add(&b, "de", 2), GPC_E_TOO_LARGE);
  assert_string_equal(dynbuf_ptr(&b), "abc");
  assert_int_equal(dynbuf_addf(&b, "%s", "xy"), GPC_E_TOO_LARGE);
  assert_int_equal(dynbuf_addc(&b, 'd'), GPC_OK);
  assert_int_equal(dynbuf_addc(&b, 'e'), GPC_E_TOO_LARGE);
  assert_string_equal(dynbuf_ptr(&b), "abcd");
  assert_true(b.cap <= 5);
  dynbuf_release(&b);

  struct dynbuf z = DYNBUF_INIT(0);
  assert_int_equal(dynbuf_add(&z, "", 0), GPC_OK);
  assert_int_equal(dynbuf_addc(&z, 'a'), GPC_E_TOO_LARGE);
  dynbuf_release(&z);
}

static void test_grow_large(void **state) {
  struct dynbuf b;
  dynbuf_init(&b, DYNBUF_NO_MAX);
  for (int i = 0; i < 10000; i++)
    assert_int_equal(dynbuf_addf(&b, "%04d", i % 10000), GPC_OK);
  assert_int_equal(dynbuf_len(&b), 40000);
  assert_memory_equal(dynbuf_ptr(&b) + 39996, "9999", 4);
  dynbuf_reset_keep(&b, 1024);
  assert_null(dynbuf_ptr(&b));
  assert_int_equal(dynbuf_addstr(&b, "x"), GPC_OK);
  dynbuf_reset_keep(&b, 1024);
  assert_non_null(dynbuf_ptr(&b));
  dynbuf_release(&b);
}

static void test_detach(void **state) {
  struct dynbuf b = DYNBUF_INIT(10);
  size_t len = 99;
  char *p = dynbuf_detach(&b, &len);
  assert_string_equal(p, "");
  assert_int_equal(len, 0);
  free(p);
  dynbuf_addstr(&b, "hello");
  p = dynbuf_detach(&b, &len);
  assert_string_equal(p, "hello");
  assert_int_equal(len, 5);
  assert_null(dynbuf_ptr(&b));
  assert_int_equal(b.max, 10);
  free(p);
}

/* A secret buffer grows by copying and keeps its contents across growth. */
static void test_secret(void **state) {
  struct dynbuf b;
  dynbuf_init_secret(&b, 1u << 20);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(dynbuf_addstr(&b, "0123456789"), GPC_OK);
  assert_int_equal(dynbuf_len(&b), 10000);
  assert_memory_equal(dynbuf_ptr(&b) + 9990, "0123456789", 10);
  dynbuf_release(&b);
  assert_true(b.secret);
}

static FILE *stream_of(size_t n) {
  FILE *f = tmpfile();
  assert_non_null(f);
  for (size_t i = 0; i < n; i++)
    fputc('a' + (int)(i % 26), f);
  rewind(f);
  return f;
}

static void test_read_stream(void **state) {
  /* Bigger than one read chunk, and exactly at the cap. */
  FILE *f = stream_of(40000);
  struct dynbuf b = DYNBUF_INIT(40000);
  assert_int_equal(dynbuf_read_stream(&b, f), GPC_OK);
  assert_int_equal(dynbuf_len(&b), 40000);
  assert_int_equal(dynbuf_ptr(&b)[39999], 'a' + 39999 % 26);
  assert_int_equal(dynbuf_ptr(&b)[40000], '\0');
  dynbuf_release(&b);
  fclose(f);

  f = stream_of(40001);
  dynbuf_init(&b, 40000);
  assert_int_equal(dynbuf_read_stream(&b, f), GPC_E_TOO_LARGE);
  dynbuf_release(&b);
  fclose(f);

  f = stream_of(0);
  dynbuf_init(&b, 10);
  assert_int_equal(dynbuf_read_stream(&b, f), GPC_OK);
  assert_int_equal(dynbuf_len(&b), 0);
  dynbuf_release(&b);
  fclose(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add_and_terminate),
      cmocka_unit_test(test_cap),
      cmocka_unit_test(test_grow_large),
      cmocka_unit_test(test_detach),
      cmocka_unit_test(test_secret),
      cmocka_unit_test(test_read_stream),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
