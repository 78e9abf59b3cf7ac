/* stub_common.h — behaviour switches shared by the stub NVML and CUDA
 * libraries the validator tests build (test_validator.py compiles each
 * stub_*.c into a shared object named like the real driver library).
 *
 *   STUB_MODE     healthy2 (default) | nvml_fail | wrong | nodevice | cuda_fail | jit_fail |
 *                 noop (the kernel launch succeeds but writes nothing) |
 *                 hang (cuCtxSynchronize never returns) |
 *                 crash (cuLaunchKernel aborts the process on NVML GPU STUB_CRASH_DEVICE, default
 * 0) | busy_prohibited | busy_exclusive | busy_oom (STUB_BUSY_DEVICE, default 1, is in compute mode
 * Prohibited / ExclusiveProcess and taken / out of memory; with STUB_BUSY_FILE, only while that
 * file exists) STUB_GPUS     number of GPUs (default 2; nodevice forces 0) STUB_MIG      N > 0: GPU
 * 0 is in MIG mode with N MIG devices; as for an unprivileged caller, nvmlDeviceGetMemoryInfo on
 * GPU 0 answers NO_PERMISSION STUB_CUDA_ORDER  "reverse": CUDA enumerates the GPUs in the opposite
 * order to NVML STUB_CUDA_HIDE   an NVML index CUDA does not enumerate (a GPU CUDA cannot see)
 *   STUB_WRONG_DEVICE / STUB_WRONG_ELEMENT   where "wrong" corrupts the sum: the
 *                 NVML index of the GPU (1) and the element (123)
 *   STUB_FAIL_UNTIL + STUB_COUNTER   nvmlInit_v2 fails with "Driver Not Loaded"
 *                 while the counter file (incremented per call) is below N,
 *                 which simulates a driver that finishes loading later.
 *   STUB_CUDA_FAIL_UNTIL + STUB_CUDA_COUNTER   the same for cuInit (System not yet
 *                 initialized, 802), and sticky: once cuInit failed in a process it keeps
 *                 failing there, as the real driver's can.
 *   STUB_DEVICE_FILE  a file both stubs open like /dev/nvidiactl: NVML from nvmlInit to
 *                 nvmlShutdown, CUDA from cuInit until the process exits (never closed).
 *
 * Device identities: GPU i has UUID GPU-5f1c0a2e-0000-4000-8000-<i, 12 digits> and PCI
 * bus 0x3B + i; MIG device j of GPU 0 has UUID MIG-6a2b0c3d-0000-4000-8000-<j, 12 digits>.
 */
#ifndef STUB_COMMON_H
#define STUB_COMMON_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline const char *stub_mode(void) {
  const char *m = getenv("STUB_MODE");
  return m && *m ? m : "healthy2";
}

static inline int stub_is(const char *mode) {
  return strcmp(stub_mode(), mode) == 0;
}

static inline long stub_env_long(const char *name, long def) {
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : def;
}

static inline int stub_gpus(void) {
  return stub_is("nodevice") ? 0 : (int)stub_env_long("STUB_GPUS", 2);
}

static inline int stub_no_access(int gpu) {
  const char *v = getenv("STUB_NO_ACCESS");
  return v && *v && (strcmp(v, "all") == 0 || atoi(v) == gpu);
}

static inline int stub_migs(void) {
  return stub_gpus() > 0 ? (int)stub_env_long("STUB_MIG", 0) : 0;
}

static inline int stub_busy_device(void) {
  const char *f = getenv("STUB_BUSY_FILE");
  if (f && *f && access(f, F_OK) != 0) return -1; /* the other user has finished */
  return (int)stub_env_long("STUB_BUSY_DEVICE", 1);
}

/* "GPU-..." for GPU i (mig < 0) or "MIG-..." for MIG device mig of GPU 0. */
static inline void stub_uuid(char *buf, size_t len, int gpu, int mig) {
  if (mig < 0)
    snprintf(buf, len, "GPU-5f1c0a2e-0000-4000-8000-%012d", gpu);
  else
    snprintf(buf, len, "MIG-6a2b0c3d-0000-4000-8000-%012d", mig);
}

/* Counts calls in a file (survives the end of a process); returns the count
 * before this call. */
static inline long stub_bump(const char *env) {
  const char *path = getenv(env);
  if (!path) return 0;
  long n = 0;
  FILE *f = fopen(path, "r");
  if (f) {
    if (fscanf(f, "%ld", &n) != 1) n = 0;
    fclose(f);
  }
  f = fopen(path, "w");
  if (f) {
    fprintf(f, "%ld\n", n + 1);
    fclose(f);
  }
  return n;
}

static inline int stub_open_device_file(void) {
  const char *path = getenv("STUB_DEVICE_FILE");
  return path && *path ? open(path, O_RDONLY) : -1;
}

#endif
