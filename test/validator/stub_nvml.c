/* stub_nvml.c — a fake libnvidia-ml.so.1 for the validator tests (see
 * stub_common.h for the switches). It exports exactly the symbols the
 * validator resolves, with NVML's signatures. */
#include <stdint.h>

#include "stub_common.h"

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_DRIVER_NOT_LOADED 9

struct nvml_memory {
  unsigned long long total, free, used;
};

static int initialized;

/* Counts calls in a file (survives dlclose between --wait attempts). */
static long bump_counter(void) {
  const char *path = getenv("STUB_COUNTER");
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

int nvmlInit_v2(void) {
  if (stub_is("nvml_fail")) return NVML_ERROR_DRIVER_NOT_LOADED;
  long until = stub_env_long("STUB_FAIL_UNTIL", 0);
  if (until > 0 && bump_counter() < until) return NVML_ERROR_DRIVER_NOT_LOADED;
  initialized++;
  return NVML_SUCCESS;
}

int nvmlShutdown(void) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  initialized--;
  return NVML_SUCCESS;
}

const char *nvmlErrorString(int rc) {
  switch (rc) {
  case NVML_SUCCESS:
    return "Success";
  case NVML_ERROR_UNINITIALIZED:
    return "Uninitialized";
  case NVML_ERROR_INVALID_ARGUMENT:
    return "Invalid Argument";
  case NVML_ERROR_DRIVER_NOT_LOADED:
    return "Driver Not Loaded";
  default:
    return "Unknown Error";
  }
}

int nvmlSystemGetDriverVersion(char *version, unsigned len) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  snprintf(version, len, "550.54.15");
  return NVML_SUCCESS;
}

int nvmlDeviceGetCount_v2(unsigned *count) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  *count = (unsigned)stub_gpus();
  return NVML_SUCCESS;
}

/* A device handle is its index + 1, so NULL is never a valid handle. */
int nvmlDeviceGetHandleByIndex_v2(unsigned index, void **device) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  if (index >= (unsigned)stub_gpus()) return NVML_ERROR_INVALID_ARGUMENT;
  *device = (void *)(uintptr_t)(index + 1);
  return NVML_SUCCESS;
}

static int dev_index(void *device) {
  uintptr_t h = (uintptr_t)device;
  return h >= 1 && h <= (uintptr_t)stub_gpus() ? (int)(h - 1) : -1;
}

int nvmlDeviceGetName(void *device, char *name, unsigned len) {
  if (dev_index(device) < 0) return NVML_ERROR_INVALID_ARGUMENT;
  snprintf(name, len, "NVIDIA H100 80GB HBM3");
  return NVML_SUCCESS;
}

int nvmlDeviceGetUUID(void *device, char *uuid, unsigned len) {
  int i = dev_index(device);
  if (i < 0) return NVML_ERROR_INVALID_ARGUMENT;
  snprintf(uuid, len, "GPU-5f1c0a2e-0000-4000-8000-%012d", i);
  return NVML_SUCCESS;
}

int nvmlDeviceGetMemoryInfo(void *device, struct nvml_memory *mem) {
  int i = dev_index(device);
  if (i < 0) return NVML_ERROR_INVALID_ARGUMENT;
  mem->total = 81559ull << 20;
  mem->used = (unsigned long long)(1 + i) << 20;
  mem->free = mem->total - mem->used;
  return NVML_SUCCESS;
}

int nvmlDeviceGetTemperature(void *device, int sensor, unsigned *celsius) {
  int i = dev_index(device);
  if (i < 0 || sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
  *celsius = 30u + (unsigned)i;
  return NVML_SUCCESS;
}

/* An init without a shutdown is a leak the tests look for on stderr. */
__attribute__((destructor)) static void stub_nvml_unload(void) {
  if (initialized) fprintf(stderr, "stub-nvml: leaked %d nvmlInit\n", initialized);
}
