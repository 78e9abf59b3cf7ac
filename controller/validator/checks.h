/* checks.h — one validation attempt: NVML, CUDA, vectorAdd, device plugin.
 *
 * Each check runs in its own child process (phase.h): NVML (driver version,
 * GPUs, MIG devices), then one vectorAdd per device — every GPU not in MIG
 * mode and every MIG device — and the device-plugin query. A check that
 * fails stops the attempt before the next stage (a missing NVML makes every
 * CUDA message noise), but every device still gets its own run so that one
 * bad GPU is named among good ones.
 *
 * CUDA and NVML devices are matched by UUID (cuDeviceGetUuid_v2 against
 * nvmlDeviceGetUUID), else by PCI bus id, never by index: nvml.h says the
 * NVML index "may not correlate" with CUDA's. Each device's child sees only
 * that device (CUDA_VISIBLE_DEVICES=<its UUID>), which is also how a MIG
 * device is reached at all: CUDA enumerates one MIG device per process.
 *
 * A device that is busy (compute mode Prohibited, or a driver answer that
 * means "in use": see cuda_is_busy) is recorded with report_busy(); the
 * attempt then ends VAL_BUSY unless something failed.
 *
 * Last, with check_allocation, the allocation check (allocpod.h) in its own
 * check process; its pod is deleted by the parent too when that process is
 * killed at its limit or stopped by a signal.
 */
#ifndef GPC_VALIDATOR_CHECKS_H
#define GPC_VALIDATOR_CHECKS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "report.h"

struct val_options {
  const char *nvml_lib;   /* NULL: libnvidia-ml.so.1 */
  const char *cuda_lib;   /* NULL: libcuda.so.1 */
  size_t elements;        /* vectorAdd size per device */
  bool check_plugin;      /* also compare the node's allocatable nvidia.com/gpu */
  const char *node;       /* required with check_plugin, check_allocation */
  bool check_allocation;  /* run a one-shot pod asking for nvidia.com/gpu: 1 (allocpod.h) */
  const char *ns;         /* the validator's namespace (check_allocation) */
  const char *pod;        /* the validator's Pod name (check_allocation) */
  const char *kubeconfig; /* NULL: in-cluster, else the default file */
  long api_timeout_ms;    /* per API attempt */
  double phase_timeout_s; /* per check process */
};

struct val_limits {
  double deadline;             /* phase_now() seconds: no check runs past it */
  volatile sig_atomic_t *stop; /* set by SIGTERM: abandon the attempt */
  bool unreaped;               /* out: a killed check process is stuck in the kernel */
};

/* Runs every stage into `r` (initialised by the caller), then report_finish. */
void checks_run(const struct val_options *o, struct val_limits *lim, struct val_report *r);

/* Pure: do an NVML UUID ("GPU-…" / "MIG-…", or the legacy "MIG-GPU-…/g/c")
 * and a CUDA UUID (36 hex digits and dashes) name the same device? */
bool checks_uuid_match(const char *nvml_uuid, const char *cuda_uuid);
/* Pure: the same PCI function? NVML writes "00000000:3B:00.0", CUDA
 * "0000:3b:00.0": the domain's width and the case differ. */
bool checks_bus_id_match(const char *a, const char *b);

#endif
