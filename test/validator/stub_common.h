/* stub_common.h — behaviour switches shared by the stub NVML and CUDA
 * libraries the validator tests build (test_validator.py compiles each
 * stub_*.c into a shared object named like the real driver library).
 *
 *   STUB_MODE     healthy2 (default) | nvml_fail | wrong | nodevice | cuda_fail | jit_fail |
 *                 noop (the kernel launch succeeds but writes nothing) |
 *                 hang (cuCtxSynchronize never returns)
 *   STUB_GPUS     number of GPUs (default 2; nodevice forces 0)
 *   STUB_WRONG_DEVICE / STUB_WRONG_ELEMENT   where "wrong" corrupts the sum (1 / 123)
 *   STUB_FAIL_UNTIL + STUB_COUNTER   nvmlInit_v2 fails with "Driver Not Loaded"
 *                 while the counter file (incremented per call) is below N,
 *                 which simulates a driver that finishes loading later.
 */
#ifndef STUB_COMMON_H
#define STUB_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
