/* statefile.h — the files the validator leaves for Kubernetes to read.
 *
 *  - the status file (--status-file): the last attempt's JSON report,
 *    replaced atomically (write a temp file in the same directory, rename),
 *    so the readiness probe (--probe) never reads half a file;
 *  - the termination log (--termination-log, /dev/termination-log in a
 *    pod): the one-line failure reason the kubelet copies into the
 *    container's lastState, where the controller reads it for
 *    status.failingNodes.
 */
#ifndef GPC_VALIDATOR_STATEFILE_H
#define GPC_VALIDATOR_STATEFILE_H

#include <jansson.h>

#include "errors.h"

#define STATEFILE_MAX_BYTES (1024 * 1024)

/* Writes `report` (borrowed) to `path` atomically. GPC_E_IO naming the path. */
int statefile_write(const char *path, const json_t *report, struct gpc_error *err);

/* The probe: 0 when the file records exitCode 0 or 17 (GPUBusy: `why` then
 * carries the busy reason), else the recorded exit
 * code, or 1 when the file is missing, too large or not a report; `why`
 * (may be NULL) receives a one-line explanation for the probe's output. */
int statefile_probe(const char *path, struct gpc_error *why);

/* Writes `reason` and a newline to the termination log (truncating it). */
int statefile_termlog_write(const char *path, const char *reason, struct gpc_error *err);

#endif
