/* test_apply.c — when a generated object is (re)applied, and which kinds map to which paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "apply.h"
#include "kube_client.h"
#include "kubeconfig.h"
#include "loop.h"

static struct gpc_daemonset ds(const char *hash, int64_t gen) {
  struct gpc_daemonset d;
  gpc_daemonset_init(&d);
  free(d.render_hash);
  d.render_hash = gpc_strdup(hash);
  d.generation = gen;
  return d;
}

static void remember(struct apply_object_memory *m, const char *hash, int64_t gen, uint64_t at) {
  free(m->hash);
  m->hash = gpc_strdup(hash);
  m->generation = gen;
  m->seen = false;
  m->applied_at_ms = at;
}

static void test_missing_and_new(void **state) {
  (void)state;
  struct apply_object_memory m = {0};
  /* Never applied, not in the cache: apply. */
  assert_int_equal(apply_decide_object(&m, "h1", NULL, true, 0), APPLY_DECIDE_SEND);
  /* Applied, the watch has not shown it yet: wait... */
  remember(&m, "h1", 1, 1000);
  assert_int_equal(apply_decide_object(&m, "h1", NULL, true, 2000), APPLY_DECIDE_SKIP);
  /* ...but not forever. */
  assert_int_equal(apply_decide_object(&m, "h1", NULL, true, 1000 + APPLY_UNSEEN_RETRY_MS),
                   APPLY_DECIDE_SEND);
  /* Seen in the cache, then gone: someone deleted it, re-create. */
  struct gpc_daemonset d = ds("h1", 1);
  assert_int_equal(apply_decide_object(&m, "h1", &d, true, 3000), APPLY_DECIDE_SKIP);
  assert_true(m.seen);
  assert_int_equal(apply_decide_object(&m, "h1", NULL, true, 3001), APPLY_DECIDE_SEND);
  gpc_daemonset_release(&d);
  free(m.hash);
}

static void test_hash_and_generation(void **state) {
  (void)state;
  struct apply_object_memory m = {0};
  remember(&m, "h1", 2, 0);
  struct gpc_daemonset d = ds("h1", 2);
  /* Up to date: nothing. */
  assert_int_equal(apply_decide_object(&m, "h1", &d, true, 10), APPLY_DECIDE_SKIP);
  /* The policy changed: new hash. */
  assert_int_equal(apply_decide_object(&m, "h2", &d, true, 10), APPLY_DECIDE_SEND);
  /* Someone edited the spec (generation moved past our apply). */
  d.generation = 3;
  assert_int_equal(apply_decide_object(&m, "h1", &d, true, 10), APPLY_DECIDE_SEND);
  /* Someone edited our annotation. */
  d.generation = 2;
  free(d.render_hash);
  d.render_hash = gpc_strdup("tampered");
  assert_int_equal(apply_decide_object(&m, "h1", &d, true, 10), APPLY_DECIDE_SEND);
  gpc_daemonset_release(&d);
  free(m.hash);
}

static void test_adopt_after_restart(void **state) {
  (void)state;
  /* A fresh process with no memory finds the object with the desired hash. */
  struct apply_object_memory m = {0};
  struct gpc_daemonset d = ds("h1", 5);
  assert_int_equal(apply_decide_object(&m, "h1", &d, true, 10), APPLY_DECIDE_SKIP);
  assert_string_equal(m.hash, "h1");
  assert_int_equal(m.generation, 5);
  /* A later edit by someone else is noticed. */
  d.generation = 6;
  assert_int_equal(apply_decide_object(&m, "h1", &d, true, 10), APPLY_DECIDE_SEND);
  gpc_daemonset_release(&d);
  free(m.hash);
}

static void test_uncached_kinds(void **state) {
  (void)state;
  struct apply_object_memory m = {0};
  assert_int_equal(apply_decide_object(&m, "s1", NULL, false, 0), APPLY_DECIDE_SEND);
  remember(&m, "s1", 1, 0);
  assert_int_equal(apply_decide_object(&m, "s1", NULL, false, 0), APPLY_DECIDE_SKIP);
  assert_int_equal(apply_decide_object(&m, "s2", NULL, false, 0), APPLY_DECIDE_SEND);
  free(m.hash);
}

static void test_gvr(void **state) {
  (void)state;
  struct apply_gvr g;
  assert_true(apply_gvr_for("apps/v1", "DaemonSet", &g));
  assert_string_equal(g.plural, "daemonsets");
  assert_string_equal(g.group, "apps");
  assert_true(g.namespaced);
  assert_true(apply_gvr_for("node.k8s.io/v1", "RuntimeClass", &g));
  assert_false(g.namespaced);
  assert_true(apply_gvr_for("v1", "Service", &g));
  assert_string_equal(g.group, "");
  assert_true(apply_gvr_for("monitoring.coreos.com/v1", "ServiceMonitor", &g));
  assert_false(apply_gvr_for("v1", "Secret", &g));
  assert_false(apply_gvr_for(NULL, "DaemonSet", &g));
}

/* A failed write holds the next one until its retry time, unless the object
 * to apply changed (a spec edit is tried at once). */
static void test_retry_decision(void **state) {
  (void)state;
  /* never failed */
  assert_int_equal(apply_decide_retry(0, 0, NULL, "h1", 10), APPLY_DECIDE_SEND);
  /* failed, retry at 5000 */
  assert_int_equal(apply_decide_retry(1, 5000, "h1", "h1", 4999), APPLY_DECIDE_SKIP);
  assert_int_equal(apply_decide_retry(1, 5000, "h1", "h1", 5000), APPLY_DECIDE_SEND);
  /* a different object: at once */
  assert_int_equal(apply_decide_retry(3, 5000, "h1", "h2", 10), APPLY_DECIDE_SEND);
  /* patches and deletes: per object, whatever the body */
  assert_int_equal(apply_decide_retry(2, 5000, "", NULL, 10), APPLY_DECIDE_SKIP);
  assert_int_equal(apply_decide_retry(2, 5000, "", NULL, 6000), APPLY_DECIDE_SEND);
}

static void test_failure_classes(void **state) {
  (void)state;
  /* refusals: shown at once */
  assert_true(apply_failure_is_refusal(APPLY_KIND_OBJECT, 403));
  assert_true(apply_failure_is_refusal(APPLY_KIND_OBJECT, 404));
  assert_true(apply_failure_is_refusal(APPLY_KIND_OBJECT, 422));
  assert_true(apply_failure_is_refusal(APPLY_KIND_OBJECT, 400));
  assert_true(apply_failure_is_refusal(APPLY_KIND_NODE_LABELS, 403));
  /* transient */
  assert_false(apply_failure_is_refusal(APPLY_KIND_OBJECT, 0));
  assert_false(apply_failure_is_refusal(APPLY_KIND_OBJECT, 409));
  assert_false(apply_failure_is_refusal(APPLY_KIND_OBJECT, 429));
  assert_false(apply_failure_is_refusal(APPLY_KIND_OBJECT, 500));
  assert_false(apply_failure_is_refusal(APPLY_KIND_OBJECT, 503));
  /* a node that is gone: the watch says so */
  assert_false(apply_failure_is_refusal(APPLY_KIND_NODE_LABELS, 404));
}

/* ---- with a client: a write to a server that is not there ---------------- */

struct done_ctx {
  struct gpc_loop *loop;
  int calls;
  struct apply_completion last;
};

static void on_write_done(const struct apply_completion *c, void *ud) {
  struct done_ctx *d = ud;
  d->calls++;
  d->last = *c;
  d->last.key = d->last.policy = d->last.message = NULL; /* borrowed */
  gpc_loop_stop(d->loop);
}

/* A failed write is held for its backoff and reported to the policy's
 * reconcile; a deleted node's entry is forgotten, failure included. */
static void test_failed_write_backoff_and_forget(void **state) {
  (void)state;
  struct gpc_error err = {0};
  struct gpc_loop *loop = gpc_loop_new(&err);
  assert_non_null(loop);
  struct kubeconfig kc = {.server = gpc_strdup("http://127.0.0.1:1")};
  struct kube_client_config kcc = {.kc = &kc, .max_attempts = 1};
  struct kube_client *client = kube_client_new(loop, &kcc, &err);
  assert_non_null(client);
  struct done_ctx d = {.loop = loop};
  struct apply_config ac = {.client = client, .done = on_write_done, .ud = &d};
  struct gpc_apply *a = apply_new(&ac);
  json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "labels", "gpupolicy.dev/policy", "p");

  apply_begin_reconcile(a);
  assert_int_equal(apply_node_labels(a, "p", "gpu-1", "7", patch, &err), APPLY_SENT);
  assert_int_equal(apply_entries(a), 1);
  apply_forget(a, "node/gpu-1"); /* in flight: kept */
  assert_int_equal(apply_entries(a), 1);
  gpc_loop_run(loop); /* connection refused */
  assert_int_equal(d.calls, 1);
  assert_int_not_equal(d.last.rc, GPC_OK);
  assert_int_equal(d.last.failures, 1);
  assert_true(d.last.retry_in_ms >= APPLY_RETRY_BASE_MS / 2 &&
              d.last.retry_in_ms <= APPLY_RETRY_BASE_MS);
  /* The same write again at once: held. */
  apply_begin_reconcile(a);
  assert_int_equal(apply_node_labels(a, "p", "gpu-1", "7", patch, &err), APPLY_BACKOFF);
  assert_int_equal(apply_policy_failures(a, "p", NULL, NULL), 1);
  assert_int_equal(apply_policy_failures(a, "other", NULL, NULL), 0);
  /* A reconcile that no longer asks for it does not count it. */
  apply_begin_reconcile(a);
  assert_int_equal(apply_policy_failures(a, "p", NULL, NULL), 0);
  /* The node is deleted: forgotten. */
  apply_forget(a, "node/gpu-1");
  assert_int_equal(apply_entries(a), 0);
  assert_int_equal(apply_node_labels(a, "p", "gpu-1", "7", patch, &err), APPLY_SENT);
  json_decref(patch);
  apply_free(a); /* cancels the write in flight */
  kube_client_free(client);
  kubeconfig_free(&kc);
  gpc_loop_free(loop);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_missing_and_new),
      cmocka_unit_test(test_hash_and_generation),
      cmocka_unit_test(test_adopt_after_restart),
      cmocka_unit_test(test_uncached_kinds),
      cmocka_unit_test(test_gvr),
      cmocka_unit_test(test_retry_decision),
      cmocka_unit_test(test_failure_classes),
      cmocka_unit_test(test_failed_write_backoff_and_forget),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
