/* stub_cuda.c — a fake libcuda.so.1 for the validator tests (switches in
 * stub_common.h). "Device memory" is host memory behind the CUdeviceptr, and
 * cuLaunchKernel really adds the arrays, so the validator's host-side check
 * sees a correct sum unless STUB_MODE=wrong corrupts one element. It checks
 * what a real driver would reject: a PTX image without the vectorAdd entry,
 * a launch without a current context or with too few threads, unknown
 * pointers; and it reports leaked allocations/contexts/modules on unload. */
#include <stdint.h>
#include <unistd.h>

#include "stub_common.h"

#define CUDA_SUCCESS 0
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_NOT_INITIALIZED 3
#define CUDA_ERROR_NO_DEVICE 100
#define CUDA_ERROR_INVALID_DEVICE 101
#define CUDA_ERROR_INVALID_CONTEXT 201
#define CUDA_ERROR_INVALID_PTX 218
#define CUDA_ERROR_NOT_FOUND 500

#define MAX_ALLOCS 64

static int inited;
static int current = -1; /* device whose primary context is current */
static int retained[64];
static int modules;
static void *allocs[MAX_ALLOCS];

int cuInit(unsigned flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (stub_is("cuda_fail")) return CUDA_ERROR_NO_DEVICE;
  inited = 1;
  return CUDA_SUCCESS;
}

int cuGetErrorString(int rc, const char **text) {
  switch (rc) {
  case CUDA_SUCCESS:
    *text = "no error";
    return CUDA_SUCCESS;
  case CUDA_ERROR_NO_DEVICE:
    *text = "no CUDA-capable device is detected";
    return CUDA_SUCCESS;
  case CUDA_ERROR_INVALID_PTX:
    *text = "a PTX JIT compilation failed";
    return CUDA_SUCCESS;
  case CUDA_ERROR_INVALID_CONTEXT:
    *text = "invalid device context";
    return CUDA_SUCCESS;
  case CUDA_ERROR_NOT_INITIALIZED:
    *text = "initialization error";
    return CUDA_SUCCESS;
  default:
    *text = NULL;
    return CUDA_ERROR_INVALID_VALUE;
  }
}

int cuDriverGetVersion(int *v) {
  *v = 12040;
  return CUDA_SUCCESS;
}

int cuDeviceGetCount(int *n) {
  if (!inited) return CUDA_ERROR_NOT_INITIALIZED;
  *n = stub_gpus();
  return CUDA_SUCCESS;
}

int cuDeviceGet(int *dev, int ordinal) {
  if (!inited) return CUDA_ERROR_NOT_INITIALIZED;
  if (ordinal < 0 || ordinal >= stub_gpus()) return CUDA_ERROR_INVALID_DEVICE;
  *dev = ordinal;
  return CUDA_SUCCESS;
}

int cuDeviceGetName(char *name, int len, int dev) {
  if (dev < 0 || dev >= stub_gpus()) return CUDA_ERROR_INVALID_DEVICE;
  snprintf(name, (size_t)len, "NVIDIA H100 80GB HBM3");
  return CUDA_SUCCESS;
}

int cuDeviceGetAttribute(int *value, int attribute, int dev) {
  if (dev < 0 || dev >= stub_gpus()) return CUDA_ERROR_INVALID_DEVICE;
  if (attribute == 75)
    *value = 9;
  else if (attribute == 76)
    *value = 0;
  else
    return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}

/* A context handle is device + 1. */
int cuDevicePrimaryCtxRetain(void **ctx, int dev) {
  if (!inited) return CUDA_ERROR_NOT_INITIALIZED;
  if (dev < 0 || dev >= stub_gpus() || dev >= 64) return CUDA_ERROR_INVALID_DEVICE;
  retained[dev]++;
  *ctx = (void *)(uintptr_t)(dev + 1);
  return CUDA_SUCCESS;
}

int cuDevicePrimaryCtxRelease_v2(int dev) {
  if (dev < 0 || dev >= 64 || retained[dev] == 0) return CUDA_ERROR_INVALID_CONTEXT;
  retained[dev]--;
  return CUDA_SUCCESS;
}

int cuCtxSetCurrent(void *ctx) {
  if (!ctx) {
    current = -1;
    return CUDA_SUCCESS;
  }
  int dev = (int)((uintptr_t)ctx - 1);
  if (dev < 0 || dev >= 64 || retained[dev] == 0) return CUDA_ERROR_INVALID_CONTEXT;
  current = dev;
  return CUDA_SUCCESS;
}

int cuModuleLoadData(void **module, const void *image) {
  if (current < 0) return CUDA_ERROR_INVALID_CONTEXT;
  const char *ptx = image;
  if (stub_is("jit_fail") || !strstr(ptx, ".version ") || !strstr(ptx, ".target sm_") ||
      !strstr(ptx, ".entry vectorAdd("))
    return CUDA_ERROR_INVALID_PTX;
  modules++;
  *module = (void *)(uintptr_t)0x1000;
  return CUDA_SUCCESS;
}

int cuModuleGetFunction(void **fn, void *module, const char *name) {
  if (module != (void *)(uintptr_t)0x1000) return CUDA_ERROR_INVALID_VALUE;
  if (strcmp(name, "vectorAdd") != 0) return CUDA_ERROR_NOT_FOUND;
  *fn = (void *)(uintptr_t)0x2000;
  return CUDA_SUCCESS;
}

int cuModuleUnload(void *module) {
  if (module != (void *)(uintptr_t)0x1000 || modules == 0) return CUDA_ERROR_INVALID_VALUE;
  modules--;
  return CUDA_SUCCESS;
}

static int find_alloc(unsigned long long p) {
  for (int i = 0; i < MAX_ALLOCS; i++)
    if (allocs[i] && (uintptr_t)allocs[i] == p) return i;
  return -1;
}

int cuMemAlloc_v2(unsigned long long *ptr, size_t bytes) {
  if (current < 0) return CUDA_ERROR_INVALID_CONTEXT;
  for (int i = 0; i < MAX_ALLOCS; i++)
    if (!allocs[i]) {
      allocs[i] = malloc(bytes);
      if (!allocs[i]) return 2; /* CUDA_ERROR_OUT_OF_MEMORY */
      *ptr = (uintptr_t)allocs[i];
      return CUDA_SUCCESS;
    }
  return 2;
}

int cuMemFree_v2(unsigned long long ptr) {
  int i = find_alloc(ptr);
  if (i < 0) return CUDA_ERROR_INVALID_VALUE;
  free(allocs[i]);
  allocs[i] = NULL;
  return CUDA_SUCCESS;
}

int cuMemcpyHtoD_v2(unsigned long long dst, const void *src, size_t bytes) {
  if (find_alloc(dst) < 0) return CUDA_ERROR_INVALID_VALUE;
  memcpy((void *)(uintptr_t)dst, src, bytes);
  return CUDA_SUCCESS;
}

int cuMemcpyDtoH_v2(void *dst, unsigned long long src, size_t bytes) {
  if (find_alloc(src) < 0) return CUDA_ERROR_INVALID_VALUE;
  memcpy(dst, (void *)(uintptr_t)src, bytes);
  return CUDA_SUCCESS;
}

/* vectorAdd(const float *a, const float *b, float *c, unsigned n). */
int cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, unsigned shared, void *stream, void **params, void **extra) {
  (void)shared;
  (void)stream;
  if (current < 0) return CUDA_ERROR_INVALID_CONTEXT;
  if (fn != (void *)(uintptr_t)0x2000 || !params || extra) return CUDA_ERROR_INVALID_VALUE;
  if (bx == 0 || bx > 1024 || by != 1 || bz != 1 || gy != 1 || gz != 1)
    return CUDA_ERROR_INVALID_VALUE;
  unsigned long long pa = *(unsigned long long *)params[0];
  unsigned long long pb = *(unsigned long long *)params[1];
  unsigned long long pc = *(unsigned long long *)params[2];
  unsigned n = *(unsigned *)params[3];
  if (find_alloc(pa) < 0 || find_alloc(pb) < 0 || find_alloc(pc) < 0)
    return CUDA_ERROR_INVALID_VALUE;
  unsigned long long threads = (unsigned long long)gx * bx;
  unsigned long long done = threads < n ? threads : n; /* too few threads: a tail stays unset */
  const float *a = (const float *)(uintptr_t)pa, *b = (const float *)(uintptr_t)pb;
  float *c = (float *)(uintptr_t)pc;
  if (stub_is("noop")) return CUDA_SUCCESS; /* "launches" but computes nothing */
  for (unsigned long long i = 0; i < done; i++)
    c[i] = a[i] + b[i];
  long wrong_dev = stub_env_long("STUB_WRONG_DEVICE", 1);
  unsigned long long wrong_at = (unsigned long long)stub_env_long("STUB_WRONG_ELEMENT", 123);
  if (stub_is("wrong") && current == wrong_dev && wrong_at < n) c[wrong_at] = 0.0f;
  return CUDA_SUCCESS;
}

int cuCtxSynchronize(void) {
  if (stub_is("hang")) /* a wedged GPU: the call never returns */
    for (;;)
      pause();
  return current < 0 ? CUDA_ERROR_INVALID_CONTEXT : CUDA_SUCCESS;
}

__attribute__((destructor)) static void stub_cuda_unload(void) {
  int leaked = 0;
  for (int i = 0; i < MAX_ALLOCS; i++)
    leaked += allocs[i] != NULL;
  int ctx = 0;
  for (int i = 0; i < 64; i++)
    ctx += retained[i];
  if (leaked || ctx || modules)
    fprintf(stderr, "stub-cuda: leaked %d allocations, %d contexts, %d modules\n", leaked, ctx,
            modules);
}
