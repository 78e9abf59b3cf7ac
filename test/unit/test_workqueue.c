/* test_workqueue.c — strmap basics; workqueue ordering, de-duplication,
 * one-in-flight per key, delayed adds and backoff bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "workqueue.h"

static void count_free(void *val, void *ud) {
  (*(int *)ud)++;
  free(val);
}

static void test_strmap(void **state) {
  (void)state;
  struct strmap *m = strmap_new();
  char key[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "ns/obj-%d", i);
    int *v = malloc(sizeof *v);
    *v = i;
    assert_null(strmap_put(m, key, v));
  }
  assert_int_equal(strmap_size(m), 1000);
  assert_int_equal(*(int *)strmap_get(m, "ns/obj-777"), 777);
  assert_string_equal(strmap_key(m, "ns/obj-5"), "ns/obj-5");
  assert_null(strmap_get(m, "ns/obj-1000"));
  free(strmap_del(m, "ns/obj-10"));
  assert_null(strmap_del(m, "ns/obj-10"));
  assert_int_equal(strmap_size(m), 999);
  /* replace returns the old value */
  int *nv = malloc(sizeof *nv);
  *nv = -1;
  free(strmap_put(m, "ns/obj-1", nv));
  assert_int_equal(*(int *)strmap_get(m, "ns/obj-1"), -1);
  /* iterate, deleting odd values */
  struct strmap_iter it;
  strmap_iter_init(&it, m);
  const char *k;
  void *v;
  int seen = 0;
  while (strmap_next(&it, &k, &v)) {
    seen++;
    if (*(int *)v % 2) free(strmap_iter_del(&it));
  }
  assert_int_equal(seen, 999);
  assert_int_equal(strmap_size(m), 499); /* evens of 0..999 but 10 */
  int freed = 0;
  strmap_free(m, count_free, &freed);
  assert_int_equal(freed, 499);
}

static struct gpc_loop *new_loop(void) {
  struct gpc_loop *l = gpc_loop_new(NULL);
  assert_non_null(l);
  return l;
}

static void test_fifo_and_dedup(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  struct workqueue *q = workqueue_new(l, 0, 0, NULL, NULL);
  workqueue_add(q, "a");
  workqueue_add(q, "b");
  workqueue_add(q, "a"); /* already queued: no second copy */
  workqueue_add(q, "c");
  assert_int_equal(workqueue_len(q), 3);
  const char *k = workqueue_get(q);
  assert_string_equal(k, "a");
  /* added while processing: not handed out again until done */
  workqueue_add(q, "a");
  workqueue_add(q, "a");
  assert_int_equal(workqueue_len(q), 2);
  assert_string_equal(workqueue_get(q), "b");
  assert_string_equal(workqueue_get(q), "c");
  assert_null(workqueue_get(q));
  workqueue_done(q, "a"); /* dirty → re-queued once */
  assert_int_equal(workqueue_len(q), 1);
  workqueue_done(q, "b");
  workqueue_done(q, "c");
  assert_string_equal(workqueue_get(q), "a");
  workqueue_done(q, "a");
  assert_int_equal(workqueue_len(q), 0);
  struct workqueue_stats st;
  workqueue_get_stats(q, &st);
  assert_int_equal(st.adds, 6);
  assert_int_equal(st.depth, 0);
  assert_int_equal(st.processing, 0);
  workqueue_done(q, "zzz"); /* unknown: ignored */
  workqueue_free(q);
  gpc_loop_free(l);
}

static void test_many_keys_ring_growth(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  struct workqueue *q = workqueue_new(l, 0, 0, NULL, NULL);
  char key[16];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 100; i++) {
      snprintf(key, sizeof key, "k%d", i);
      workqueue_add(q, key);
    }
    for (int i = 0; i < 100; i++) {
      snprintf(key, sizeof key, "k%d", i);
      const char *got = workqueue_get(q);
      assert_non_null(got);
      assert_string_equal(got, key);
      workqueue_done(q, got);
    }
  }
  assert_null(workqueue_get(q));
  workqueue_free(q);
  gpc_loop_free(l);
}

static void on_ready(struct workqueue *q, void *ud) {
  (*(int *)ud)++;
}

static void test_delayed_and_ready(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  int ready = 0;
  struct workqueue *q = workqueue_new(l, 0, 0, on_ready, &ready);
  workqueue_add_after(q, "late", 40);
  workqueue_add_after(q, "soon", 10);
  workqueue_add_after(q, "late", 200); /* later deadline ignored */
  assert_int_equal(workqueue_len(q), 0);
  struct workqueue_stats st;
  workqueue_get_stats(q, &st);
  assert_int_equal(st.waiting, 2);
  while (workqueue_len(q) < 2)
    gpc_loop_run_once(l, 500);
  gpc_loop_run_once(l, 0); /* let the ready timer fire */
  assert_true(ready >= 1);
  assert_string_equal(workqueue_get(q), "soon");
  assert_string_equal(workqueue_get(q), "late");
  workqueue_done(q, "soon");
  workqueue_done(q, "late");
  /* add_after(0) is a plain add */
  workqueue_add_after(q, "now", 0);
  assert_int_equal(workqueue_len(q), 1);
  /* a pending delayed add is freed with the queue (no leak, no callback) */
  workqueue_add_after(q, "never", 100000);
  workqueue_free(q);
  gpc_loop_free(l);
}

/* A retry at the caller's delay counts as a failure and a retry, and a
 * success forgets it. */
static void test_retry_after(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  struct workqueue *q = workqueue_new(l, 100, 1000, NULL, NULL);
  workqueue_add_retry_after(q, "k", 7000);
  workqueue_add_retry_after(q, "k", 9000); /* the earlier deadline stays */
  assert_int_equal(workqueue_failures(q, "k"), 2);
  assert_int_equal(workqueue_len(q), 0);
  struct workqueue_stats st;
  workqueue_get_stats(q, &st);
  assert_int_equal(st.retries, 2);
  assert_int_equal(st.waiting, 1);
  workqueue_forget(q, "k");
  assert_int_equal(workqueue_failures(q, "k"), 0);
  workqueue_free(q);
  gpc_loop_free(l);
}

static void test_rate_limited_backoff(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  struct workqueue *q = workqueue_new(l, 100, 1000, NULL, NULL);
  uint64_t want[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    assert_int_equal(workqueue_add_rate_limited(q, "k"), want[i]);
  assert_int_equal(workqueue_failures(q, "k"), 7);
  /* another key has its own count */
  assert_int_equal(workqueue_add_rate_limited(q, "other"), 100);
  workqueue_forget(q, "k");
  assert_int_equal(workqueue_failures(q, "k"), 0);
  assert_int_equal(workqueue_add_rate_limited(q, "k"), 100);
  struct workqueue_stats st;
  workqueue_get_stats(q, &st);
  assert_int_equal(st.retries, 9);
  workqueue_free(q);
  gpc_loop_free(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strmap),
      cmocka_unit_test(test_fifo_and_dedup),
      cmocka_unit_test(test_many_keys_ring_growth),
      cmocka_unit_test(test_delayed_and_ready),
      cmocka_unit_test(test_rate_limited_backoff),
      cmocka_unit_test(test_retry_after),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
