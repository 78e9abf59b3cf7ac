/* backoff.c — see backoff.h. */
#include "backoff.h"

#include <math.h>
#include <time.h>
#include <unistd.h>

uint64_t backoff_delay_ms(uint64_t base_ms, uint64_t cap_ms, unsigned attempt, double u) {
  uint64_t d = base_ms;
  /* Double until the cap without shifting past 64 bits. */
  for (unsigned i = 0; i < attempt && d < cap_ms; i++)
    d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
  if (d > cap_ms) d = cap_ms;
  if (u < 0) u = 0;
  if (u >= 1) u = 0.999999;
  uint64_t half = d / 2;
  return half + (uint64_t)((double)(d - half) * u);
}

double backoff_rand(uint64_t *state) {
  uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0; /* 2^53 */
}

uint64_t backoff_seed(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
  return s ? s : 1;
}

static void refill(struct backoff_bucket *b, uint64_t now_ms) {
  if (now_ms > b->last_ms) {
    b->tokens += (double)(now_ms - b->last_ms) * b->qps / 1000.0;
    if (b->tokens > b->burst) b->tokens = b->burst;
    b->last_ms = now_ms;
  }
}

void backoff_bucket_init(struct backoff_bucket *b, double qps, int burst, uint64_t now_ms) {
  b->qps = qps;
  b->burst = burst < 1 ? 1 : burst;
  b->tokens = b->burst;
  b->last_ms = now_ms;
}

bool backoff_bucket_take(struct backoff_bucket *b, uint64_t now_ms) {
  if (b->qps <= 0) return true;
  refill(b, now_ms);
  if (b->tokens < 1.0) return false;
  b->tokens -= 1.0;
  return true;
}

uint64_t backoff_bucket_wait_ms(struct backoff_bucket *b, uint64_t now_ms) {
  if (b->qps <= 0) return 0;
  refill(b, now_ms);
  if (b->tokens >= 1.0) return 0;
  return (uint64_t)ceil((1.0 - b->tokens) * 1000.0 / b->qps);
}
