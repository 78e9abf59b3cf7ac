/* stub_cuda.c — a fake libcuda.so.1 for the validator tests (switches in
 * stub_common.h). "Device memory" is host memory behind the CUdeviceptr, and
 * cuLaunchKernel really adds the arrays, so the validator's host-side check
 * sees a correct sum unless STUB_MODE=wrong corrupts one element. It checks
 * what a real driver would reject: a PTX image without the vectorAdd entry,
 * a launch without a current context or with too few threads, unknown
 * pointers; and it reports leaked allocations/contexts/modules on unload.
 *
 * Enumeration follows the driver: CUDA_VISIBLE_DEVICES (UUIDs, comma
 * separated) selects and orders devices, an unknown entry ends the list, an
 * empty result makes cuInit fail with CUDA_ERROR_NO_DEVICE; without it,
 * a MIG-mode GPU contributes only its first MIG device (CUDA enumerates one
 * MIG device per process). */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "stub_common.h"

#define CUDA_SUCCESS 0
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_OUT_OF_MEMORY 2
#define CUDA_ERROR_NOT_INITIALIZED 3
#define CUDA_ERROR_DEVICE_UNAVAILABLE 46
#define CUDA_ERROR_NO_DEVICE 100
#define CUDA_ERROR_INVALID_DEVICE 101
#define CUDA_ERROR_INVALID_CONTEXT 201
#define CUDA_ERROR_INVALID_PTX 218
#define CUDA_ERROR_NOT_FOUND 500
#define CUDA_ERROR_SYSTEM_NOT_READY 802

#define MAX_ALLOCS 64
#define MAX_DEVICES 64

struct phys {
  int gpu, mig; /* mig -1: a whole GPU */
};

static int inited, init_failed;
static int device_fd = -1;
static struct phys devices[MAX_DEVICES];
static int ndevices;
static int current = -1; /* ordinal whose primary context is current */
static int retained[MAX_DEVICES];
static int modules;
static void *allocs[MAX_ALLOCS];

static int hidden(int gpu) {
  const char *h = getenv("STUB_CUDA_HIDE");
  return (h && *h && atoi(h) == gpu) || stub_no_access(gpu);
}

static void add(int gpu, int mig) {
  if (ndevices < MAX_DEVICES) devices[ndevices++] = (struct phys){gpu, mig};
}

/* The device a CUDA_VISIBLE_DEVICES entry names, or 0. */
static int lookup(const char *want, size_t len, struct phys *out) {
  char uuid[64];
  for (int i = 0; i < stub_gpus(); i++) {
    int in_mig = i == 0 && stub_migs() > 0;
    for (int m = in_mig ? 0 : -1; m < (in_mig ? stub_migs() : 0); m++) {
      stub_uuid(uuid, sizeof uuid, i, m);
      if (strlen(uuid) == len && strncmp(uuid, want, len) == 0 && !hidden(i)) {
        *out = (struct phys){i, m};
        return 1;
      }
    }
  }
  return 0;
}

static void enumerate(void) {
  ndevices = 0;
  const char *visible = getenv("CUDA_VISIBLE_DEVICES");
  if (visible) {
    for (const char *p = visible; *p;) {
      size_t len = strcspn(p, ",");
      struct phys d;
      if (!lookup(p, len, &d)) break;
      add(d.gpu, d.mig);
      p += len;
      if (*p == ',') p++;
    }
    return;
  }
  int n = stub_gpus();
  int reverse = getenv("STUB_CUDA_ORDER") && strcmp(getenv("STUB_CUDA_ORDER"), "reverse") == 0;
  for (int k = 0; k < n; k++) {
    int i = reverse ? n - 1 - k : k;
    if (hidden(i)) continue;
    add(i, i == 0 && stub_migs() > 0 ? 0 : -1);
  }
}

int cuInit(unsigned flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (stub_is("cuda_fail")) return CUDA_ERROR_NO_DEVICE;
  if (init_failed) return CUDA_ERROR_SYSTEM_NOT_READY; /* sticky in this process */
  long until = stub_env_long("STUB_CUDA_FAIL_UNTIL", 0);
  if (until > 0 && stub_bump("STUB_CUDA_COUNTER") < until) {
    init_failed = 1;
    return CUDA_ERROR_SYSTEM_NOT_READY;
  }
  if (!inited) {
    enumerate();
    if (ndevices == 0) return CUDA_ERROR_NO_DEVICE;
    device_fd = stub_open_device_file(); /* like /dev/nvidiactl: kept until exit */
    if (stub_is("helper") && fork() == 0) {
      /* Like a daemon: stdio let go, every other descriptor kept. */
      int null = open("/dev/null", O_RDWR);
      for (int fd = 0; fd < 3 && null >= 0; fd++)
        dup2(null, fd);
      sleep((unsigned)stub_env_long("STUB_HELPER_SECONDS", 3)); /* outlives its parent */
      _exit(0);
    }
  }
  inited = 1;
  return CUDA_SUCCESS;
}

static int busy_here(int dev) {
  return dev >= 0 && dev < ndevices && devices[dev].mig < 0 &&
         devices[dev].gpu == stub_busy_device();
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
  case CUDA_ERROR_OUT_OF_MEMORY:
    *text = "out of memory";
    return CUDA_SUCCESS;
  case CUDA_ERROR_DEVICE_UNAVAILABLE:
    *text = "CUDA-capable device(s) is/are busy or unavailable";
    return CUDA_SUCCESS;
  case CUDA_ERROR_SYSTEM_NOT_READY:
    *text = "system not yet initialized";
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
  *n = ndevices;
  return CUDA_SUCCESS;
}

int cuDeviceGet(int *dev, int ordinal) {
  if (!inited) return CUDA_ERROR_NOT_INITIALIZED;
  if (ordinal < 0 || ordinal >= ndevices) return CUDA_ERROR_INVALID_DEVICE;
  *dev = ordinal;
  return CUDA_SUCCESS;
}

int cuDeviceGetName(char *name, int len, int dev) {
  if (dev < 0 || dev >= ndevices) return CUDA_ERROR_INVALID_DEVICE;
  snprintf(name, (size_t)len,
           devices[dev].mig < 0 ? "NVIDIA H100 80GB HBM3" : "NVIDIA H100 80GB HBM3 MIG 1g.10gb");
  return CUDA_SUCCESS;
}

/* cuDeviceGetUuid_v2: the 16 bytes of the UUID NVML prints (the MIG UUID for
 * a MIG device). */
int cuDeviceGetUuid_v2(unsigned char uuid[16], int dev) {
  if (dev < 0 || dev >= ndevices) return CUDA_ERROR_INVALID_DEVICE;
  char text[64];
  stub_uuid(text, sizeof text, devices[dev].gpu, devices[dev].mig);
  const char *p = text + 4;
  for (int i = 0; i < 16; i++) {
    if (*p == '-') p++;
    unsigned byte = 0;
    sscanf(p, "%2x", &byte);
    uuid[i] = (unsigned char)byte;
    p += 2;
  }
  return CUDA_SUCCESS;
}

int cuDeviceGetPCIBusId(char *bus_id, int len, int dev) {
  if (dev < 0 || dev >= ndevices) return CUDA_ERROR_INVALID_DEVICE;
  snprintf(bus_id, (size_t)len, "0000:%02x:00.0", 0x3Bu + (unsigned)devices[dev].gpu);
  return CUDA_SUCCESS;
}

int cuDeviceGetAttribute(int *value, int attribute, int dev) {
  if (dev < 0 || dev >= ndevices) return CUDA_ERROR_INVALID_DEVICE;
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
  if (dev < 0 || dev >= ndevices) return CUDA_ERROR_INVALID_DEVICE;
  if (busy_here(dev) && (stub_is("busy_exclusive") || stub_is("busy_prohibited")))
    return CUDA_ERROR_DEVICE_UNAVAILABLE;
  retained[dev]++;
  *ctx = (void *)(uintptr_t)(dev + 1);
  return CUDA_SUCCESS;
}

int cuDevicePrimaryCtxRelease_v2(int dev) {
  if (dev < 0 || dev >= MAX_DEVICES || retained[dev] == 0) return CUDA_ERROR_INVALID_CONTEXT;
  retained[dev]--;
  return CUDA_SUCCESS;
}

int cuCtxSetCurrent(void *ctx) {
  if (!ctx) {
    current = -1;
    return CUDA_SUCCESS;
  }
  int dev = (int)((uintptr_t)ctx - 1);
  if (dev < 0 || dev >= MAX_DEVICES || retained[dev] == 0) return CUDA_ERROR_INVALID_CONTEXT;
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

/* CU_JIT_ERROR_LOG_BUFFER (5) and its size (6, in/out, passed in the value
 * slot itself) get what ptxas would say about an ISA the driver lacks. */
int cuModuleLoadDataEx(void **module, const void *image, unsigned n, int *options, void **values) {
  char *log = NULL;
  int size_slot = -1;
  for (unsigned i = 0; i < n; i++) {
    if (options[i] == 5) log = values[i];
    if (options[i] == 6) size_slot = (int)i;
  }
  int rc = cuModuleLoadData(module, image);
  if (rc == CUDA_ERROR_INVALID_PTX && log && size_slot >= 0) {
    size_t cap = (size_t)(uintptr_t)values[size_slot];
    int w =
        snprintf(log, cap,
                 "ptxas application ptx input, line 1; fatal   : Unsupported .version 6.0; "
                 "current version is '5.0'\nptxas fatal   : Ptx assembly aborted due to errors\n");
    values[size_slot] = (void *)(uintptr_t)(w < 0 ? 0 : (size_t)w < cap ? (size_t)w : cap);
  }
  return rc;
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
  if (busy_here(current) && stub_is("busy_oom")) return CUDA_ERROR_OUT_OF_MEMORY;
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
  if (stub_is("crash") && devices[current].gpu == stub_env_long("STUB_CRASH_DEVICE", 0)) abort();
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
  if (stub_is("wrong") && devices[current].mig < 0 && devices[current].gpu == wrong_dev &&
      wrong_at < n)
    c[wrong_at] = 0.0f;
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
  for (int i = 0; i < MAX_DEVICES; i++)
    ctx += retained[i];
  if (leaked || ctx || modules)
    fprintf(stderr, "stub-cuda: leaked %d allocations, %d contexts, %d modules\n", leaked, ctx,
            modules);
}
