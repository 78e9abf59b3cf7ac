/* test_loop.c — fd dispatch, stale-event suppression, timer ordering and
 * cancellation, signalfd delivery, stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

static struct gpc_loop *new_loop(void) {
  struct gpc_error err = {0};
  struct gpc_loop *l = gpc_loop_new(&err);
  assert_non_null(l);
  return l;
}

struct rec {
  int calls;
  int last_events;
  char buf[64];
  size_t len;
};

static void on_read(struct gpc_loop *l, int fd, int events, void *ud) {
  struct rec *r = ud;
  r->calls++;
  r->last_events = events;
  ssize_t n = read(fd, r->buf + r->len, sizeof r->buf - r->len - 1);
  if (n > 0) r->len += (size_t)n;
}

static void test_fd_read_write(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  int p[2];
  assert_int_equal(pipe(p), 0);
  struct rec r = {0}, w = {0};
  assert_int_equal(gpc_loop_add_fd(l, p[0], GPC_LOOP_READ, on_read, &r), GPC_OK);
  /* nothing readable yet: a poll runs no callback */
  assert_int_equal(gpc_loop_run_once(l, 0), 0);
  assert_int_equal(write(p[1], "hi", 2), 2);
  assert_int_equal(gpc_loop_run_once(l, 1000), 1);
  assert_int_equal(r.calls, 1);
  assert_true(r.last_events & GPC_LOOP_READ);
  assert_string_equal(r.buf, "hi");

  /* write side: writable at once; mod to 0 parks it */
  assert_int_equal(gpc_loop_add_fd(l, p[1], GPC_LOOP_WRITE, on_read, &w), GPC_OK);
  assert_int_equal(gpc_loop_run_once(l, 1000), 1);
  assert_true(w.last_events & GPC_LOOP_WRITE);
  assert_int_equal(gpc_loop_mod_fd(l, p[1], 0), GPC_OK);
  assert_int_equal(gpc_loop_run_once(l, 0), 0);
  assert_int_equal(gpc_loop_mod_fd(l, 999, GPC_LOOP_READ), GPC_E_NOT_FOUND);
  assert_int_equal(gpc_loop_add_fd(l, -1, GPC_LOOP_READ, on_read, &w), GPC_E_INVAL);

  gpc_loop_del_fd(l, p[1]);
  gpc_loop_del_fd(l, p[1]); /* idempotent */
  close(p[1]);
  /* EOF on the read side is still reported */
  assert_int_equal(gpc_loop_run_once(l, 1000), 1);
  assert_int_equal(r.calls, 2);
  gpc_loop_del_fd(l, p[0]);
  close(p[0]);
  gpc_loop_free(l);
}

/* Two readable fds; the first callback removes the second, whose queued event
 * must then be dropped. */
struct pair {
  int other;
  int calls_a;
};
static void on_a(struct gpc_loop *l, int fd, int events, void *ud) {
  struct pair *p = ud;
  p->calls_a++;
  gpc_loop_del_fd(l, p->other);
}

static void test_stale_events_dropped(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  int p1[2], p2[2];
  assert_int_equal(pipe(p1), 0);
  assert_int_equal(pipe(p2), 0);
  assert_int_equal(write(p1[1], "x", 1), 1);
  assert_int_equal(write(p2[1], "x", 1), 1);
  struct pair a = {.other = p2[0]}, b = {.other = p1[0]};
  assert_int_equal(gpc_loop_add_fd(l, p1[0], GPC_LOOP_READ, on_a, &a), GPC_OK);
  assert_int_equal(gpc_loop_add_fd(l, p2[0], GPC_LOOP_READ, on_a, &b), GPC_OK);
  /* whichever fires first removes the other: exactly one callback */
  assert_int_equal(gpc_loop_run_once(l, 1000), 1);
  assert_int_equal(a.calls_a + b.calls_a, 1);
  gpc_loop_del_fd(l, p1[0]);
  gpc_loop_del_fd(l, p2[0]);
  for (int i = 0; i < 2; i++) {
    close(p1[i]);
    close(p2[i]);
  }
  gpc_loop_free(l);
}

struct tlog {
  char order[32];
  int n;
  uint64_t cancel_id;
  struct gpc_loop *loop;
};
static void on_timer(struct gpc_loop *l, uint64_t id, void *ud) {
  (void)id;
  struct tlog *t = ((struct tlog **)ud)[0];
  char tag = (char)(intptr_t)((void **)ud)[1];
  t->order[t->n++] = tag;
  if (tag == 'a' && t->cancel_id) assert_true(gpc_loop_cancel_timer(l, t->cancel_id));
}

static void test_timer_order_and_cancel(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  struct tlog t = {0};
  void *ua[2] = {&t, (void *)(intptr_t)'a'}, *ub[2] = {&t, (void *)(intptr_t)'b'},
       *uc[2] = {&t, (void *)(intptr_t)'c'}, *ud[2] = {&t, (void *)(intptr_t)'d'},
       *ue[2] = {&t, (void *)(intptr_t)'e'};
  uint64_t id_c = gpc_loop_add_timer(l, 30, on_timer, uc);
  uint64_t id_a = gpc_loop_add_timer(l, 0, on_timer, ua);
  uint64_t id_b = gpc_loop_add_timer(l, 0, on_timer, ub); /* same deadline: after a */
  uint64_t id_d = gpc_loop_add_timer(l, 10, on_timer, ud);
  uint64_t id_e = gpc_loop_add_timer(l, 20, on_timer, ue);
  assert_true(id_a && id_b && id_c && id_d && id_e);
  assert_true(id_a != id_b);
  assert_int_equal(gpc_loop_timer_count(l), 5);
  t.cancel_id = id_e; /* a cancels e from inside a callback */
  assert_true(gpc_loop_cancel_timer(l, id_c));
  assert_false(gpc_loop_cancel_timer(l, id_c)); /* twice */
  assert_false(gpc_loop_cancel_timer(l, 0));
  while (gpc_loop_timer_count(l) > 0)
    assert_true(gpc_loop_run_once(l, -1) >= 0);
  t.order[t.n] = 0;
  assert_string_equal(t.order, "abd");
  /* a fired timer's id is not reusable for cancel, even after slot reuse */
  uint64_t id_f = gpc_loop_add_timer(l, 1000, on_timer, ua);
  assert_false(gpc_loop_cancel_timer(l, id_a));
  assert_true(id_f != id_a);
  assert_true(gpc_loop_cancel_timer(l, id_f));
  gpc_loop_free(l);
}

/* Many timers with random delays come out sorted. */
struct sorted {
  uint64_t last_when;
  int n;
  int bad;
};
static void on_sorted(struct gpc_loop *l, uint64_t id, void *ud) {
  struct sorted *s = ud;
  uint64_t now = gpc_loop_now_ms();
  if (now + 1 < s->last_when) s->bad++;
  s->last_when = now;
  s->n++;
}

static void test_timer_heap_many(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  struct sorted s = {0};
  uint64_t ids[500];
  srand(7);
  for (int i = 0; i < 500; i++)
    ids[i] = gpc_loop_add_timer(l, (uint64_t)(rand() % 40), on_sorted, &s);
  for (int i = 0; i < 500; i += 5)
    assert_true(gpc_loop_cancel_timer(l, ids[i]));
  assert_int_equal(gpc_loop_timer_count(l), 400);
  while (gpc_loop_timer_count(l) > 0)
    gpc_loop_run_once(l, -1);
  assert_int_equal(s.n, 400);
  assert_int_equal(s.bad, 0);
  gpc_loop_free(l);
}

/* A timer that re-arms itself with zero delay must not starve the loop:
 * each round fires it once. */
static void on_rearm(struct gpc_loop *l, uint64_t id, void *ud) {
  int *n = ud;
  (*n)++;
  gpc_loop_add_timer(l, 0, on_rearm, ud);
}

static void test_zero_delay_no_starvation(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  int n = 0;
  gpc_loop_add_timer(l, 0, on_rearm, &n);
  assert_int_equal(gpc_loop_run_once(l, 0), 1);
  assert_int_equal(gpc_loop_run_once(l, 0), 1);
  assert_int_equal(n, 2);
  gpc_loop_free(l);
}

static void on_sig(struct gpc_loop *l, int signo, void *ud) {
  *(int *)ud = signo;
  gpc_loop_stop(l);
}
static void on_stop_timer(struct gpc_loop *l, uint64_t id, void *ud) {
  (*(int *)ud)++;
  gpc_loop_stop(l);
}

static void test_signal_and_stop(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  int got = 0;
  assert_int_equal(gpc_loop_add_signal(l, SIGUSR1, on_sig, &got), GPC_OK);
  assert_int_equal(gpc_loop_add_signal(l, SIGTERM, on_sig, &got), GPC_OK);
  assert_int_equal(gpc_loop_add_signal(l, 0, on_sig, &got), GPC_E_INVAL);
  kill(getpid(), SIGTERM); /* blocked: queued for the signalfd, not fatal */
  assert_int_equal(gpc_loop_run(l), GPC_OK);
  assert_int_equal(got, SIGTERM);
  assert_true(gpc_loop_stopped(l));
  gpc_loop_free(l);
  /* the mask is restored: SIGUSR1 is no longer blocked */
  sigset_t cur;
  sigprocmask(SIG_SETMASK, NULL, &cur);
  assert_false(sigismember(&cur, SIGUSR1));

  l = new_loop();
  int fired = 0;
  gpc_loop_add_timer(l, 5, on_stop_timer, &fired);
  assert_int_equal(gpc_loop_run(l), GPC_OK);
  assert_int_equal(fired, 1);
  gpc_loop_free(l);
}

static void on_hook(struct gpc_loop *l, void *ud) {
  (*(int *)ud)++;
}

static void test_before_sleep(void **state) {
  (void)state;
  struct gpc_loop *l = new_loop();
  int n = 0;
  gpc_loop_set_before_sleep(l, on_hook, &n);
  gpc_loop_run_once(l, 0);
  gpc_loop_run_once(l, 0);
  assert_int_equal(n, 2);
  gpc_loop_set_before_sleep(l, NULL, NULL);
  gpc_loop_run_once(l, 0);
  assert_int_equal(n, 2);
  gpc_loop_free(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fd_read_write),
      cmocka_unit_test(test_stale_events_dropped),
      cmocka_unit_test(test_timer_order_and_cancel),
      cmocka_unit_test(test_timer_heap_many),
      cmocka_unit_test(test_zero_delay_no_starvation),
      cmocka_unit_test(test_signal_and_stop),
      cmocka_unit_test(test_before_sleep),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
