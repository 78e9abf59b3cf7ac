/* phase.h — one check in a child process, watched by its parent.
 *
 * NVML and CUDA calls cannot be cancelled, the CUDA driver cannot be
 * unloaded from a process once initialised (its threads and /dev/nvidia*
 * descriptors stay), and a failed cuInit may stay failed for the process's
 * life. So each check (NVML, each device's vectorAdd, the device-plugin
 * query) runs in a forked child:
 *
 *  - the child runs the check on its copy of the report, sends progress
 *    lines ("S <driver call>") and at the end the whole report as one JSON
 *    line ("R {...}") through a pipe, and exits; everything it opened goes
 *    with it, so the long-running validator holds no driver handle, file or
 *    mapping between checks;
 *  - the parent waits with poll() until the phase's deadline; a child still
 *    running then is sent SIGKILL by the parent itself (no signal handler
 *    involved) and reaped, and the attempt fails with a Timeout reason that
 *    names the phase and the last driver call it entered.
 *
 * A child that dies without a report (a crash inside the driver) fails the
 * phase with `fail_code`, naming the signal and the last call.
 */
#ifndef GPC_VALIDATOR_PHASE_H
#define GPC_VALIDATOR_PHASE_H

#include <signal.h>
#include <stdbool.h>

#include "report.h"

/* The check, run in the child on its copy of *r. */
typedef void (*phase_fn)(void *ctx, struct val_report *r);

enum phase_outcome {
  PHASE_DONE,      /* the child sent its report; *r is replaced by it */
  PHASE_FAILED,    /* the child died without one; *r records the failure */
  PHASE_TIMED_OUT, /* killed at the deadline; *r records VAL_TIMEOUT */
  PHASE_STOPPED,   /* *stop was set (SIGTERM) while waiting; child killed, *r records VAL_TIMEOUT */
};

struct phase_opts {
  const char *name;            /* "nvml", "vectoradd-1", "device-plugin" */
  double deadline;             /* CLOCK_MONOTONIC seconds (phase_now()) */
  int fail_code;               /* exit code when the child dies */
  volatile sig_atomic_t *stop; /* may be NULL */
  const char *const *env;      /* "NAME=value" set in the child; NULL-terminated or NULL */
  bool *unreaped;              /* set when a killed child could not be reaped */
};

double phase_now(void);
/* Runs fn(ctx, r) in a child; see above. */
enum phase_outcome phase_run(const struct phase_opts *o, phase_fn fn, void *ctx,
                             struct val_report *r);
/* In the child: report that the check is entering `what` (a driver call). */
void phase_step(const char *what);

#endif
