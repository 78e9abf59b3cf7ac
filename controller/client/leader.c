/* leader.c — Lease leader election I/O: timers and requests around leader_sm. */
#include "leader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "alloc.h"
#include "backoff.h"
#include "kube_client.h"
#include "leader_sm.h"
#include "log.h"
#include "loop.h"

#define COMP "leader"

struct leader {
  struct gpc_loop *loop;
  struct kube_client *client;
  leader_change_cb on_change;
  void *ud;
  struct leader_sm sm;
  uint64_t rng;
  uint64_t tick_timer;     /* next round */
  uint64_t deadline_timer; /* renew deadline of the current leadership */
  uint64_t req_id;         /* request in flight, 0 when none */
  enum leader_step req_step;
  bool started;
  bool releasing;
  bool reported_leading; /* what on_change last said */
  char *last_holder;     /* for "leader changed" logs */
  leader_done_cb done;
  void *done_ud;
};

static int64_t wall_us(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void submit(struct leader *l, enum leader_step step, bool release);

static void report(struct leader *l) {
  bool now = l->sm.leading;
  if (now == l->reported_leading) return;
  l->reported_leading = now;
  if (now)
    log_info(COMP, "became leader", KV_S("lease", l->sm.name), KV_S("identity", l->sm.identity));
  else if (l->releasing)
    log_info(COMP, "stopped leading", KV_S("lease", l->sm.name), KV_S("identity", l->sm.identity));
  else
    log_warn(COMP, "stopped leading", KV_S("lease", l->sm.name), KV_S("identity", l->sm.identity));
  l->on_change(now, l->ud);
}

static void note_holder(struct leader *l) {
  const char *h = leader_sm_holder(&l->sm);
  if (l->last_holder && strcmp(l->last_holder, h) == 0) return;
  free(l->last_holder);
  l->last_holder = gpc_strdup(h);
  if (*h && strcmp(h, l->sm.identity) != 0) log_info(COMP, "lease held", KV_S("holder", h));
}

static void on_deadline(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)id;
  struct leader *l = ud;
  l->deadline_timer = 0;
  if (leader_sm_check_deadline(&l->sm, gpc_loop_now_ms())) {
    log_error(COMP, "failed to renew the lease within the renew deadline",
              KV_I("renew_deadline_ms", l->sm.renew_deadline_ms));
    report(l);
  }
}

static void arm_deadline(struct leader *l) {
  if (l->deadline_timer) gpc_loop_cancel_timer(l->loop, l->deadline_timer);
  l->deadline_timer = 0;
  if (l->sm.leading)
    l->deadline_timer = gpc_loop_add_timer(l->loop, l->sm.renew_deadline_ms, on_deadline, l);
}

static void on_tick(struct gpc_loop *loop, uint64_t id, void *ud);

/* A leader renews every retry period; a candidate waits retry period plus up
 * to 20 % jitter so replicas do not move in lockstep. */
static void schedule(struct leader *l) {
  if (l->releasing || l->tick_timer) return;
  uint64_t delay = l->sm.retry_ms;
  if (!l->sm.leading) delay += (uint64_t)(backoff_rand(&l->rng) * 0.2 * (double)l->sm.retry_ms);
  l->tick_timer = gpc_loop_add_timer(l->loop, delay, on_tick, l);
}

static void round_over(struct leader *l) {
  note_holder(l);
  report(l);
  schedule(l);
}

static void on_done(struct kube_client *c, const struct kube_response *r, void *ud) {
  (void)c;
  struct leader *l = ud;
  enum leader_step step = l->req_step;
  l->req_id = 0;
  uint64_t now = gpc_loop_now_ms();
  if (l->releasing) {
    if (r->http_code == 200)
      log_info(COMP, "released the lease", KV_S("lease", l->sm.name));
    else
      log_warn(COMP, "could not release the lease", KV_I("code", r->http_code),
               KV_S("error", r->error ? r->error : ""));
    l->sm.leading = false;
    report(l);
    leader_done_cb done = l->done;
    l->done = NULL;
    if (done) done(l->done_ud);
    return;
  }
  if (step == LEADER_STEP_GET) {
    enum leader_step next = leader_sm_on_get(&l->sm, now, r->http_code, r->body, r->body_len);
    log_debug(COMP, "read the lease", KV_I("code", r->http_code),
              KV_S("holder", leader_sm_holder(&l->sm)));
    if (next == LEADER_STEP_NONE && r->http_code != 200)
      log_warn(COMP, "reading the lease failed", KV_I("code", r->http_code),
               KV_S("error", r->error ? r->error : ""));
    if (next != LEADER_STEP_NONE) {
      submit(l, next, false);
      return;
    }
    round_over(l);
    return;
  }
  enum leader_step next;
  bool held = leader_sm_on_write(&l->sm, now, r->http_code, r->body, r->body_len, &next);
  log_debug(COMP, "wrote the lease", KV_S("verb", step == LEADER_STEP_CREATE ? "create" : "update"),
            KV_I("code", r->http_code), KV_B("held", held));
  if (held) {
    arm_deadline(l);
  } else if (next != LEADER_STEP_NONE) {
    submit(l, next, false);
    return;
  } else if (r->http_code != 409) {
    log_warn(COMP, "writing the lease failed", KV_I("code", r->http_code),
             KV_S("error", r->error ? r->error : ""));
  }
  round_over(l);
}

static void submit(struct leader *l, enum leader_step step, bool release) {
  char *body = NULL;
  struct kube_request req = {
      .group = "coordination.k8s.io",
      .version = "v1",
      .resource = "leases",
      .namespace = l->sm.namespace,
      .name = l->sm.name,
      /* A hung request must not outlive the renew deadline. */
      .timeout_ms = (long)(l->sm.renew_deadline_ms / 2),
  };
  /* Shutdown must stay within the pod's termination grace period. */
  if (release && req.timeout_ms > 2000) req.timeout_ms = 2000;
  if (step == LEADER_STEP_GET) {
    req.verb = KUBE_GET;
  } else {
    body = leader_sm_body(&l->sm, step, release, wall_us());
    req.verb = step == LEADER_STEP_CREATE ? KUBE_CREATE : KUBE_UPDATE;
    if (step == LEADER_STEP_CREATE) req.name = NULL;
    req.body = body;
    req.body_len = strlen(body);
  }
  struct gpc_error err = {0};
  l->req_step = step;
  l->req_id = kube_client_submit(l->client, &req, on_done, NULL, l, &err);
  free(body);
  if (!l->req_id) {
    log_error(COMP, "cannot submit lease request", KV_S("error", err.msg));
    if (release) {
      leader_done_cb done = l->done;
      l->done = NULL;
      if (done) done(l->done_ud);
      return;
    }
    round_over(l);
  }
}

static void on_tick(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)id;
  struct leader *l = ud;
  l->tick_timer = 0;
  if (l->releasing) return;
  if (l->req_id) { /* still waiting for the previous round */
    schedule(l);
    return;
  }
  submit(l, leader_sm_begin(&l->sm, gpc_loop_now_ms()), false);
}

struct leader *leader_new(const struct leader_config *cfg, struct gpc_error *err) {
  if (!cfg->loop || !cfg->client || !cfg->on_change || !cfg->namespace || !*cfg->namespace ||
      !cfg->name || !*cfg->name || !cfg->identity || !*cfg->identity) {
    gpc_fail(err, GPC_E_INVAL,
             "leader election: loop, client, namespace, name, identity and "
             "on_change are required");
    return NULL;
  }
  struct leader *l = gpc_calloc(1, sizeof *l);
  leader_sm_init(&l->sm, cfg->identity, cfg->namespace, cfg->name, cfg->lease_ms,
                 cfg->renew_deadline_ms, cfg->retry_ms);
  if (!(l->sm.lease_ms > l->sm.renew_deadline_ms &&
        (double)l->sm.renew_deadline_ms > 1.2 * (double)l->sm.retry_ms)) {
    gpc_fail(err, GPC_E_INVAL,
             "leader election: want lease duration > renew deadline > 1.2 x retry period");
    leader_sm_release(&l->sm);
    free(l);
    return NULL;
  }
  l->loop = cfg->loop;
  l->client = cfg->client;
  l->on_change = cfg->on_change;
  l->ud = cfg->ud;
  l->rng = backoff_seed();
  return l;
}

void leader_start(struct leader *l) {
  if (l->started) return;
  l->started = true;
  log_info(COMP, "campaigning", KV_S("lease", l->sm.name), KV_S("namespace", l->sm.namespace),
           KV_S("identity", l->sm.identity));
  l->tick_timer = gpc_loop_add_timer(l->loop, 0, on_tick, l);
}

bool leader_is_leading(const struct leader *l) {
  return l->sm.leading;
}

const char *leader_holder(const struct leader *l) {
  return leader_sm_holder(&l->sm);
}

void leader_resign(struct leader *l, leader_done_cb done, void *ud) {
  l->releasing = true;
  if (l->tick_timer) gpc_loop_cancel_timer(l->loop, l->tick_timer);
  l->tick_timer = 0;
  if (l->deadline_timer) gpc_loop_cancel_timer(l->loop, l->deadline_timer);
  l->deadline_timer = 0;
  if (l->req_id) kube_client_cancel(l->client, l->req_id);
  l->req_id = 0;
  /* Only a lease this replica still holds (as last written) is released. */
  if (!l->sm.leading || !l->sm.observed_obj) {
    l->sm.leading = false;
    report(l);
    if (done) done(ud);
    return;
  }
  l->done = done;
  l->done_ud = ud;
  submit(l, LEADER_STEP_UPDATE, true);
}

void leader_free(struct leader *l) {
  if (!l) return;
  if (l->tick_timer) gpc_loop_cancel_timer(l->loop, l->tick_timer);
  if (l->deadline_timer) gpc_loop_cancel_timer(l->loop, l->deadline_timer);
  if (l->req_id) kube_client_cancel(l->client, l->req_id);
  leader_sm_release(&l->sm);
  free(l->last_holder);
  free(l);
}

char *leader_make_identity(void) {
  char host[256] = "";
  if (gethostname(host, sizeof host - 1) != 0 || !host[0]) snprintf(host, sizeof host, "unknown");
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
    uint64_t rng = backoff_seed() ^ ((uint64_t)getpid() << 32);
    r = (uint64_t)(backoff_rand(&rng) * 4294967296.0) << 32;
    r |= (uint64_t)(backoff_rand(&rng) * 4294967296.0);
  }
  return gpc_asprintf("%s_%016llx", host, (unsigned long long)r);
}
