/* loop.h — the single-threaded event loop every I/O module runs on.
 *
 * epoll for file descriptors, a binary min-heap of one-shot timers on the
 * monotonic clock, and signalfd for signals, in the spirit of valkey's ae.c.
 * No locks: every callback runs on the thread that called gpc_loop_run().
 *
 * The loop knows nothing about Kubernetes. libcurl (kube_client) and
 * libwebsockets (http_server) plug their sockets and timers into it.
 *
 * Ownership and lifetimes:
 *  - The loop never owns the file descriptors it watches; callers close them
 *    (after gpc_loop_del_fd).
 *  - `ud` pointers are borrowed; they must stay valid until the fd is removed,
 *    the timer fired or was cancelled, or the loop freed.
 *  - Any callback may add or remove any fd or timer, including its own, and may
 *    call gpc_loop_stop(). An fd removed (or removed and re-added) during a
 *    dispatch round receives no stale events from that round.
 *  - gpc_loop_free() drops all registrations without calling callbacks, and
 *    restores the signal mask the loop changed.
 */
#ifndef GPC_LOOP_H
#define GPC_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"

struct gpc_loop;

enum gpc_loop_events {
  GPC_LOOP_READ = (1 << 0),
  GPC_LOOP_WRITE = (1 << 1),
  /* Reported only (never requested): error or hang-up on the fd. */
  GPC_LOOP_ERROR = (1 << 2),
};

/* `events` is a mask of gpc_loop_events that are ready. */
typedef void (*gpc_loop_fd_cb)(struct gpc_loop *loop, int fd, int events, void *ud);
/* Called once when the timer expires; the timer is gone by then. */
typedef void (*gpc_loop_timer_cb)(struct gpc_loop *loop, uint64_t id, void *ud);
typedef void (*gpc_loop_signal_cb)(struct gpc_loop *loop, int signo, void *ud);
/* Called before each wait for events (e.g. to flush batched work). */
typedef void (*gpc_loop_hook_cb)(struct gpc_loop *loop, void *ud);

/* Returns NULL only when epoll cannot be created, with the reason in err
 * (allocation failures abort, as everywhere). */
struct gpc_loop *gpc_loop_new(struct gpc_error *err);
void gpc_loop_free(struct gpc_loop *loop);

/* Milliseconds on the monotonic clock (never jumps with wall-clock changes). */
uint64_t gpc_loop_now_ms(void);

/* Watches `fd` for `events` (GPC_LOOP_READ|GPC_LOOP_WRITE, may be 0 to park
 * it). Adding an fd already watched replaces its events, callback and ud.
 * Returns GPC_OK or GPC_E_IO / GPC_E_INVAL. */
int gpc_loop_add_fd(struct gpc_loop *loop, int fd, int events, gpc_loop_fd_cb cb, void *ud);
/* Changes the events of a watched fd. GPC_E_NOT_FOUND when not watched. */
int gpc_loop_mod_fd(struct gpc_loop *loop, int fd, int events);
/* Stops watching `fd` (no-op when not watched). Call before close(fd). */
void gpc_loop_del_fd(struct gpc_loop *loop, int fd);

/* One-shot timer firing after `delay_ms`. Returns a non-zero id, unique for
 * the loop's lifetime. Timers with equal deadlines fire in creation order.
 * A timer added from a timer callback never fires in the same round, so
 * zero-delay timers cannot starve fd events. */
uint64_t gpc_loop_add_timer(struct gpc_loop *loop, uint64_t delay_ms, gpc_loop_timer_cb cb,
                            void *ud);
/* Cancels a pending timer. Returns true when it was pending (false when it
 * already fired, was cancelled, or id is 0). */
bool gpc_loop_cancel_timer(struct gpc_loop *loop, uint64_t id);
/* Number of pending timers (for tests and leak checks). */
unsigned gpc_loop_timer_count(const struct gpc_loop *loop);

/* Delivers `signo` through the loop instead of asynchronously: the signal is
 * blocked for the process (threads created later inherit the mask) and read
 * from a signalfd. One callback per signal; a second call replaces it. */
int gpc_loop_add_signal(struct gpc_loop *loop, int signo, gpc_loop_signal_cb cb, void *ud);

/* Hook run before each wait (NULL removes it). */
void gpc_loop_set_before_sleep(struct gpc_loop *loop, gpc_loop_hook_cb cb, void *ud);

/* Runs until gpc_loop_stop(). Returns GPC_OK, or GPC_E_IO when epoll fails. */
int gpc_loop_run(struct gpc_loop *loop);
/* One round: waits at most `max_wait_ms` (-1: until something happens; 0:
 * poll) for fds, then fires due timers. Returns the number of callbacks run
 * (>= 0) or GPC_E_IO. */
int gpc_loop_run_once(struct gpc_loop *loop, int max_wait_ms);
/* Makes gpc_loop_run() return after the current callback. */
void gpc_loop_stop(struct gpc_loop *loop);
bool gpc_loop_stopped(const struct gpc_loop *loop);

#endif
