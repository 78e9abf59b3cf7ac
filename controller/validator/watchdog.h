/* watchdog.h — ends the process when a driver call never returns.
 *
 * NVML and CUDA calls cannot be cancelled; on a wedged GPU one can block
 * forever, which would leave the pod un-Ready with no reason anywhere. The
 * watchdog is a one-shot SIGALRM (setitimer): when it fires, the handler
 * writes the pre-formatted timeout reason to stdout, the status file and the
 * termination log using only async-signal-safe calls, and _exit(16)s.
 *
 * Ownership: watchdog_arm() copies everything it needs into static storage;
 * nothing is allocated after arming. One watchdog per process.
 */
#ifndef GPC_VALIDATOR_WATCHDOG_H
#define GPC_VALIDATOR_WATCHDOG_H

#include <stdbool.h>

struct watchdog_config {
  double seconds;              /* fire after this long */
  const char *reason;          /* one line, "Timeout: ..." */
  bool json;                   /* stdout gets the JSON object instead of the text line */
  const char *status_file;     /* may be NULL */
  const char *termination_log; /* may be NULL */
};

/* The margin past --timeout before a still-running attempt counts as hung:
 * the timeout itself, clamped to 1..30 s, so a short --timeout in tests
 * stays short and a real GPU's slow first JIT is never cut off. */
double watchdog_margin(double timeout_s);

/* Arms (or re-arms) the watchdog. Returns false when the text does not fit
 * the static buffers (it is then not armed). */
bool watchdog_arm(const struct watchdog_config *cfg);
void watchdog_disarm(void);

#endif
