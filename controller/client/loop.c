/* loop.c — epoll + timer heap + signalfd event loop (see loop.h).
 *
 * fds live in an array indexed by fd number. Each registration gets a
 * generation number that travels in epoll's data word next to the fd, so
 * events queued for an fd that was removed (or removed and re-added with the
 * same number, which libcurl does when it reconnects) during the same round
 * are recognised as stale and dropped.
 *
 * Timers live in a slab (so an id can find its record without a hash table:
 * id = generation << 24 | slot) and a binary min-heap of slot numbers ordered
 * by (deadline, sequence).
 */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"

#define MAX_EVENTS 64
#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)

struct fd_slot {
  gpc_loop_fd_cb cb;
  void *ud;
  uint32_t gen; /* 0 = not watched */
  int events;
};

struct timer {
  uint64_t when;
  uint64_t seq;
  uint64_t id; /* 0 = free slot */
  gpc_loop_timer_cb cb;
  void *ud;
  unsigned heap_idx;
  unsigned next_free;
};

struct sig_slot {
  gpc_loop_signal_cb cb;
  void *ud;
};

struct gpc_loop {
  int epfd;
  bool stop;
  struct fd_slot *fds;
  size_t nfds;
  uint32_t fd_gen;

  struct timer *timers; /* slab */
  size_t ntimers_cap;
  unsigned free_head; /* 1-based index into the slab, 0 = none */
  unsigned *heap;     /* slab indexes */
  unsigned heap_len;
  size_t heap_cap;
  uint64_t timer_seq;
  uint64_t timer_gen;

  int sigfd;
  sigset_t sigmask;     /* signals routed through sigfd */
  sigset_t old_sigmask; /* process mask before we blocked anything */
  bool sigmask_saved;
  struct sig_slot sigs[65];

  gpc_loop_hook_cb before_sleep;
  void *before_sleep_ud;
};

uint64_t gpc_loop_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct gpc_loop *gpc_loop_new(struct gpc_error *err) {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    gpc_fail(err, GPC_E_IO, "epoll_create1: %s", strerror(errno));
    return NULL;
  }
  struct gpc_loop *l = gpc_calloc(1, sizeof *l);
  l->epfd = epfd;
  l->sigfd = -1;
  sigemptyset(&l->sigmask);
  return l;
}

void gpc_loop_free(struct gpc_loop *l) {
  if (!l) return;
  if (l->sigfd >= 0) close(l->sigfd);
  if (l->sigmask_saved) sigprocmask(SIG_SETMASK, &l->old_sigmask, NULL);
  close(l->epfd);
  free(l->fds);
  free(l->timers);
  free(l->heap);
  free(l);
}

/* ---- file descriptors ---- */

static uint32_t to_epoll(int events) {
  uint32_t e = 0;
  if (events & GPC_LOOP_READ) e |= EPOLLIN;
  if (events & GPC_LOOP_WRITE) e |= EPOLLOUT;
  return e;
}

static int epoll_update(struct gpc_loop *l, int op, int fd, int events, uint32_t gen) {
  struct epoll_event ev = {.events = to_epoll(events)};
  ev.data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd;
  return epoll_ctl(l->epfd, op, fd, &ev);
}

int gpc_loop_add_fd(struct gpc_loop *l, int fd, int events, gpc_loop_fd_cb cb, void *ud) {
  if (fd < 0 || !cb) return GPC_E_INVAL;
  if ((size_t)fd >= l->nfds) {
    size_t n = l->nfds ? l->nfds : 64;
    while (n <= (size_t)fd)
      n *= 2;
    l->fds = gpc_realloc(l->fds, n * sizeof *l->fds);
    memset(l->fds + l->nfds, 0, (n - l->nfds) * sizeof *l->fds);
    l->nfds = n;
  }
  struct fd_slot *s = &l->fds[fd];
  bool existing = s->gen != 0;
  uint32_t gen = existing ? s->gen : (++l->fd_gen ? l->fd_gen : ++l->fd_gen);
  if (epoll_update(l, existing ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, events, gen) < 0) {
    return GPC_E_IO;
  }
  s->gen = gen;
  s->cb = cb;
  s->ud = ud;
  s->events = events;
  return GPC_OK;
}

int gpc_loop_mod_fd(struct gpc_loop *l, int fd, int events) {
  if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].gen) return GPC_E_NOT_FOUND;
  struct fd_slot *s = &l->fds[fd];
  if (s->events == events) return GPC_OK;
  if (epoll_update(l, EPOLL_CTL_MOD, fd, events, s->gen) < 0) return GPC_E_IO;
  s->events = events;
  return GPC_OK;
}

void gpc_loop_del_fd(struct gpc_loop *l, int fd) {
  if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].gen) return;
  /* The fd may already be closed by its owner (curl closes before telling
   * us); epoll dropped it then, so ENOENT/EBADF are fine. */
  epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
  memset(&l->fds[fd], 0, sizeof l->fds[fd]);
}

/* ---- timers ---- */

static bool timer_before(const struct gpc_loop *l, unsigned a, unsigned b) {
  const struct timer *ta = &l->timers[a], *tb = &l->timers[b];
  return ta->when < tb->when || (ta->when == tb->when && ta->seq < tb->seq);
}

static void heap_set(struct gpc_loop *l, unsigned pos, unsigned slot) {
  l->heap[pos] = slot;
  l->timers[slot].heap_idx = pos;
}

static void heap_up(struct gpc_loop *l, unsigned pos) {
  unsigned slot = l->heap[pos];
  while (pos > 0) {
    unsigned parent = (pos - 1) / 2;
    if (!timer_before(l, slot, l->heap[parent])) break;
    heap_set(l, pos, l->heap[parent]);
    pos = parent;
  }
  heap_set(l, pos, slot);
}

static void heap_down(struct gpc_loop *l, unsigned pos) {
  unsigned slot = l->heap[pos];
  for (;;) {
    unsigned c = 2 * pos + 1;
    if (c >= l->heap_len) break;
    if (c + 1 < l->heap_len && timer_before(l, l->heap[c + 1], l->heap[c])) c++;
    if (!timer_before(l, l->heap[c], slot)) break;
    heap_set(l, pos, l->heap[c]);
    pos = c;
  }
  heap_set(l, pos, slot);
}

static void heap_remove(struct gpc_loop *l, unsigned pos) {
  unsigned last = l->heap[--l->heap_len];
  if (pos == l->heap_len) return;
  heap_set(l, pos, last);
  heap_up(l, pos);
  heap_down(l, l->timers[last].heap_idx);
}

static unsigned timer_alloc(struct gpc_loop *l) {
  if (l->free_head) {
    unsigned slot = l->free_head - 1;
    l->free_head = l->timers[slot].next_free;
    return slot;
  }
  if (l->ntimers_cap >= SLOT_MASK) abort(); /* 16M pending timers: a runaway bug */
  size_t old = l->ntimers_cap;
  gpc_grow((void **)&l->timers, &l->ntimers_cap, old + 1, sizeof *l->timers);
  for (size_t i = l->ntimers_cap; i-- > old + 1;) {
    l->timers[i].id = 0;
    l->timers[i].next_free = l->free_head;
    l->free_head = (unsigned)i + 1;
  }
  return (unsigned)old;
}

static void timer_release(struct gpc_loop *l, unsigned slot) {
  l->timers[slot].id = 0;
  l->timers[slot].next_free = l->free_head;
  l->free_head = slot + 1;
}

uint64_t gpc_loop_add_timer(struct gpc_loop *l, uint64_t delay_ms, gpc_loop_timer_cb cb, void *ud) {
  unsigned slot = timer_alloc(l);
  struct timer *t = &l->timers[slot];
  t->when = gpc_loop_now_ms() + delay_ms;
  t->seq = l->timer_seq++;
  t->id = (++l->timer_gen << SLOT_BITS) | slot;
  t->cb = cb;
  t->ud = ud;
  gpc_grow((void **)&l->heap, &l->heap_cap, l->heap_len + 1, sizeof *l->heap);
  l->heap[l->heap_len++] = slot;
  heap_up(l, l->heap_len - 1);
  return t->id;
}

bool gpc_loop_cancel_timer(struct gpc_loop *l, uint64_t id) {
  unsigned slot = (unsigned)(id & SLOT_MASK);
  if (!id || slot >= l->ntimers_cap || l->timers[slot].id != id) return false;
  heap_remove(l, l->timers[slot].heap_idx);
  timer_release(l, slot);
  return true;
}

unsigned gpc_loop_timer_count(const struct gpc_loop *l) {
  return l->heap_len;
}

/* Fires timers due now that existed before this round started. */
static int fire_timers(struct gpc_loop *l) {
  uint64_t now = gpc_loop_now_ms();
  uint64_t seq_limit = l->timer_seq;
  int fired = 0;
  while (l->heap_len && !l->stop) {
    unsigned slot = l->heap[0];
    struct timer *t = &l->timers[slot];
    if (t->when > now || t->seq >= seq_limit) break;
    gpc_loop_timer_cb cb = t->cb;
    void *ud = t->ud;
    uint64_t id = t->id;
    heap_remove(l, 0);
    timer_release(l, slot);
    cb(l, id, ud);
    fired++;
  }
  return fired;
}

/* ---- signals ---- */

static void on_signalfd(struct gpc_loop *l, int fd, int events, void *ud) {
  struct signalfd_siginfo si;
  while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    int signo = (int)si.ssi_signo;
    if (signo > 0 && signo < 65 && l->sigs[signo].cb)
      l->sigs[signo].cb(l, signo, l->sigs[signo].ud);
  }
}

int gpc_loop_add_signal(struct gpc_loop *l, int signo, gpc_loop_signal_cb cb, void *ud) {
  if (signo <= 0 || signo >= 65 || !cb) return GPC_E_INVAL;
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, signo);
  sigset_t old;
  if (sigprocmask(SIG_BLOCK, &one, &old) < 0) return GPC_E_IO;
  if (!l->sigmask_saved) {
    l->old_sigmask = old;
    l->sigmask_saved = true;
  }
  sigaddset(&l->sigmask, signo);
  int fd = signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return GPC_E_IO;
  if (l->sigfd < 0) {
    l->sigfd = fd;
    int rc = gpc_loop_add_fd(l, fd, GPC_LOOP_READ, on_signalfd, NULL);
    if (rc) return rc;
  }
  l->sigs[signo].cb = cb;
  l->sigs[signo].ud = ud;
  return GPC_OK;
}

/* ---- running ---- */

void gpc_loop_set_before_sleep(struct gpc_loop *l, gpc_loop_hook_cb cb, void *ud) {
  l->before_sleep = cb;
  l->before_sleep_ud = ud;
}

static int wait_timeout(const struct gpc_loop *l, int max_wait_ms) {
  if (!l->heap_len) return max_wait_ms;
  uint64_t when = l->timers[l->heap[0]].when, now = gpc_loop_now_ms();
  uint64_t d = when > now ? when - now : 0;
  if (d > (uint64_t)INT32_MAX) d = INT32_MAX;
  if (max_wait_ms >= 0 && (uint64_t)max_wait_ms < d) return max_wait_ms;
  return (int)d;
}

static int dispatch_fds(struct gpc_loop *l, const struct epoll_event *evs, int n) {
  int ran = 0;
  for (int i = 0; i < n && !l->stop; i++) {
    int fd = (int)(uint32_t)evs[i].data.u64;
    uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
    if ((size_t)fd >= l->nfds || l->fds[fd].gen != gen) continue; /* stale */
    int mask = 0;
    if (evs[i].events & EPOLLIN) mask |= GPC_LOOP_READ;
    if (evs[i].events & EPOLLOUT) mask |= GPC_LOOP_WRITE;
    if (evs[i].events & (EPOLLERR | EPOLLHUP)) mask |= GPC_LOOP_ERROR;
    l->fds[fd].cb(l, fd, mask, l->fds[fd].ud);
    ran++;
  }
  return ran;
}

int gpc_loop_run_once(struct gpc_loop *l, int max_wait_ms) {
  if (l->before_sleep) l->before_sleep(l, l->before_sleep_ud);
  struct epoll_event evs[MAX_EVENTS];
  int n = epoll_wait(l->epfd, evs, MAX_EVENTS, l->stop ? 0 : wait_timeout(l, max_wait_ms));
  if (n < 0) {
    if (errno != EINTR) return GPC_E_IO;
    n = 0;
  }
  int ran = dispatch_fds(l, evs, n);
  return ran + fire_timers(l);
}

int gpc_loop_run(struct gpc_loop *l) {
  l->stop = false;
  while (!l->stop) {
    int rc = gpc_loop_run_once(l, -1);
    if (rc < 0) return rc;
  }
  return GPC_OK;
}

void gpc_loop_stop(struct gpc_loop *l) {
  l->stop = true;
}

bool gpc_loop_stopped(const struct gpc_loop *l) {
  return l->stop;
}
