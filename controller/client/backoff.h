/* backoff.h — jittered exponential backoff and a token bucket (pure).
 *
 * Shared by kube_client (retries, QPS/burst), informer (re-list/re-watch) and
 * workqueue (per-key requeue). No clock and no global random state: callers
 * pass the time and a PRNG state, so tests are exact.
 */
#ifndef GPC_BACKOFF_H
#define GPC_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

/* Exponential backoff with "equal jitter": d = min(cap_ms, base_ms * 2^attempt),
 * result uniformly in [d/2, d] using u in [0, 1). attempt 0 is the first
 * retry. Never exceeds cap_ms; never overflows for any attempt. */
uint64_t backoff_delay_ms(uint64_t base_ms, uint64_t cap_ms, unsigned attempt, double u);

/* xorshift64* PRNG: returns a double in [0, 1) and advances *state. A zero
 * state is replaced by a fixed non-zero seed. */
double backoff_rand(uint64_t *state);
/* A seed from the clock and pid, for production use. */
uint64_t backoff_seed(void);

/* Token bucket as in client-go's flowcontrol (golang.org/x/time/rate):
 * starts full with `burst` tokens, refills at `qps` per second up to `burst`.
 * qps <= 0 disables limiting (take always succeeds). */
struct backoff_bucket {
  double qps;
  double burst;
  double tokens;
  uint64_t last_ms;
};

void backoff_bucket_init(struct backoff_bucket *b, double qps, int burst, uint64_t now_ms);
/* Takes one token if available at now_ms. */
bool backoff_bucket_take(struct backoff_bucket *b, uint64_t now_ms);
/* Milliseconds until one token is available (0 when one is now). */
uint64_t backoff_bucket_wait_ms(struct backoff_bucket *b, uint64_t now_ms);

#endif
