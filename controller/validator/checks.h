/* checks.h — one validation attempt: NVML, CUDA, vectorAdd, device plugin.
 *
 * Stages run in that order and each records its checks in the report. A
 * stage that fails stops the attempt (a missing NVML makes every CUDA
 * message noise), except that every device still gets its own query and
 * vectorAdd run so that one bad GPU is named among good ones. Libraries are
 * opened and closed within the attempt, so --wait picks up a driver that
 * appears while it is waiting.
 */
#ifndef GPC_VALIDATOR_CHECKS_H
#define GPC_VALIDATOR_CHECKS_H

#include <stdbool.h>
#include <stddef.h>

#include "report.h"

struct val_options {
  const char *nvml_lib;   /* NULL: libnvidia-ml.so.1 */
  const char *cuda_lib;   /* NULL: libcuda.so.1 */
  size_t elements;        /* vectorAdd size per device */
  bool check_plugin;      /* also compare the node's allocatable nvidia.com/gpu */
  const char *node;       /* required with check_plugin */
  const char *kubeconfig; /* NULL: in-cluster, else the default file */
  long api_timeout_ms;    /* per API attempt */
};

/* Runs every stage into `r` (initialised by the caller). */
void checks_run(const struct val_options *o, struct val_report *r);

#endif
