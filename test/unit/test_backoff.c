/* test_backoff.c — backoff bounds and the token bucket with a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"

static void test_backoff_bounds(void **state) {
  (void)state;
  uint64_t rng = 42;
  for (unsigned attempt = 0; attempt < 200; attempt++) {
    uint64_t d = 800;
    for (unsigned i = 0; i < attempt && d < 30000; i++)
      d *= 2;
    if (d > 30000) d = 30000;
    for (int k = 0; k < 50; k++) {
      uint64_t v = backoff_delay_ms(800, 30000, attempt, backoff_rand(&rng));
      assert_true(v >= d / 2);
      assert_true(v <= d);
      assert_true(v <= 30000);
    }
  }
  /* exact ends */
  assert_int_equal(backoff_delay_ms(100, 1000, 0, 0.0), 50);
  assert_int_equal(backoff_delay_ms(100, 1000, 2, 0.0), 200);
  assert_true(backoff_delay_ms(100, 1000, 2, 0.9999) <= 400);
  assert_int_equal(backoff_delay_ms(100, 1000, 60, 0.0), 500);
  /* huge attempt counts and caps do not overflow */
  assert_true(backoff_delay_ms(UINT64_MAX / 3, UINT64_MAX, 100, 0.5) >= UINT64_MAX / 4);
}

static void test_rand_range(void **state) {
  (void)state;
  uint64_t s = 0; /* zero seed is replaced */
  double lo = 1, hi = 0;
  for (int i = 0; i < 10000; i++) {
    double u = backoff_rand(&s);
    assert_true(u >= 0 && u < 1);
    if (u < lo) lo = u;
    if (u > hi) hi = u;
  }
  assert_true(lo < 0.01 && hi > 0.99);
  assert_true(backoff_seed() != 0);
}

static void test_token_bucket(void **state) {
  (void)state;
  struct backoff_bucket b;
  backoff_bucket_init(&b, 50, 100, 1000);
  /* starts full: a burst of 100, then empty */
  for (int i = 0; i < 100; i++)
    assert_true(backoff_bucket_take(&b, 1000));
  assert_false(backoff_bucket_take(&b, 1000));
  /* 50 qps: one token every 20 ms */
  assert_int_equal(backoff_bucket_wait_ms(&b, 1000), 20);
  assert_int_equal(backoff_bucket_wait_ms(&b, 1010), 10);
  assert_false(backoff_bucket_take(&b, 1019));
  assert_true(backoff_bucket_take(&b, 1020));
  assert_false(backoff_bucket_take(&b, 1020));
  /* refill caps at burst */
  assert_int_equal(backoff_bucket_wait_ms(&b, 1000000), 0);
  int n = 0;
  while (backoff_bucket_take(&b, 1000000))
    n++;
  assert_int_equal(n, 100);
  /* a clock that goes backwards does not mint tokens */
  assert_false(backoff_bucket_take(&b, 5));
  /* qps <= 0: unlimited */
  backoff_bucket_init(&b, 0, 1, 0);
  for (int i = 0; i < 1000; i++)
    assert_true(backoff_bucket_take(&b, 0));
  assert_int_equal(backoff_bucket_wait_ms(&b, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backoff_bounds),
      cmocka_unit_test(test_rand_range),
      cmocka_unit_test(test_token_bucket),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
