/* leader_sm.h — the Lease leader-election algorithm of client-go
 * (tools/leaderelection), as a pure state machine.
 *
 * One round of tryAcquireOrRenew is driven by the I/O side (leader.c):
 *
 *   step = leader_sm_begin(now)      UPDATE (fast path: I lead and my lease
 *                                    is valid) or GET
 *   GET done   -> leader_sm_on_get() CREATE (404), UPDATE (free, expired or
 *                                    mine) or NONE (held by another: wait)
 *   CREATE/UPDATE done -> leader_sm_on_write(): true when I now hold it;
 *                                    a failed fast-path UPDATE falls back to GET
 *   every tick -> leader_sm_check_deadline(): a leader that has not renewed
 *                 for renew_deadline stops leading at once.
 *
 * Expiry of another holder's lease is judged as client-go does: from the
 * LOCAL monotonic time at which this replica last saw the lease record change,
 * plus the record's leaseDurationSeconds — never from renewTime, so clock
 * skew between replicas cannot make two leaders.
 *
 * Bodies (leader_sm_body) are whole Lease objects for POST/PUT: the last seen
 * object with its spec replaced (metadata such as labels kept, resourceVersion
 * for optimistic locking), acquireTime/renewTime as MicroTime with exactly
 * six fractional digits. Acquiring another holder's lease bumps
 * leaseTransitions and sets acquireTime; renewing keeps both. Release
 * (client-go ReleaseOnCancel): holderIdentity "", leaseDurationSeconds 1,
 * transitions kept.
 *
 * No I/O, no clock: times are passed in (now_ms monotonic, wall_us realtime
 * microseconds since the epoch). Memory: the struct owns its strings and the
 * cached object (leader_sm_release).
 */
#ifndef GPC_LEADER_SM_H
#define GPC_LEADER_SM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEADER_DEFAULT_LEASE_MS 15000
#define LEADER_DEFAULT_RENEW_MS 10000
#define LEADER_DEFAULT_RETRY_MS 2000

enum leader_step { LEADER_STEP_NONE, LEADER_STEP_GET, LEADER_STEP_CREATE, LEADER_STEP_UPDATE };

struct leader_record {
  char *holder; /* "" when free; never NULL once observed */
  long duration_s;
  char *acquire_time;
  char *renew_time;
  long transitions;
};

struct leader_sm {
  char *identity;
  char *namespace;
  char *name;
  uint64_t lease_ms, renew_deadline_ms, retry_ms;

  bool leading;
  bool have_observed;
  struct leader_record observed;
  json_t *observed_obj; /* last Lease object seen (GET or write response) */
  uint64_t observed_ms; /* local time the record last changed */
  uint64_t renewed_ms;  /* local time of the last successful acquire/renew */
  bool fast_path;       /* the current round started with a fast-path UPDATE */
};

/* Timings 0 = defaults (15 s / 10 s / 2 s). Strings are copied. */
void leader_sm_init(struct leader_sm *sm, const char *identity, const char *namespace,
                    const char *name, uint64_t lease_ms, uint64_t renew_deadline_ms,
                    uint64_t retry_ms);
void leader_sm_release(struct leader_sm *sm);

enum leader_step leader_sm_begin(struct leader_sm *sm, uint64_t now_ms);
/* http_code 0 = no response. `body` is the response (may be NULL). */
enum leader_step leader_sm_on_get(struct leader_sm *sm, uint64_t now_ms, long http_code,
                                  const char *body, size_t len);
/* Result of a CREATE or UPDATE. Returns true when this replica now holds the
 * lease; on failure *next is GET when a fast-path UPDATE failed (retry the
 * round the slow way), else NONE. */
bool leader_sm_on_write(struct leader_sm *sm, uint64_t now_ms, long http_code, const char *body,
                        size_t len, enum leader_step *next);
/* True (and leading cleared) when a leader missed its renew deadline. */
bool leader_sm_check_deadline(struct leader_sm *sm, uint64_t now_ms);

/* The request body for `step` (CREATE or UPDATE); `release` builds the
 * ReleaseOnCancel record. Returns a new JSON string the caller frees. */
char *leader_sm_body(const struct leader_sm *sm, enum leader_step step, bool release,
                     int64_t wall_us);

/* MicroTime "2026-11-28T20:01:02.123456Z" into buf (>= 32 bytes); returns
 * buf. */
char *leader_sm_microtime(int64_t wall_us, char *buf, size_t size);
/* The holder the cache last saw ("" when none or never observed). Borrowed:
 * owned by sm, valid until its next observation or leader_sm_release. */
const char *leader_sm_holder(const struct leader_sm *sm);

#endif
