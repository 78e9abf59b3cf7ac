/* vectoradd.c — the embedded vectorAdd kernel and its host-side driver. */
#include "vectoradd.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"

/* c[i] = a[i] + b[i] for i < n, one thread per element. Checked with ptxas
 * for sm_75 and sm_90; the driver JITs it for whatever GPU it finds. */
const char vectoradd_ptx[] = ".version 6.0\n"
                             ".target sm_50\n"
                             ".address_size 64\n"
                             "\n"
                             ".visible .entry vectorAdd(\n"
                             "  .param .u64 vectorAdd_a,\n"
                             "  .param .u64 vectorAdd_b,\n"
                             "  .param .u64 vectorAdd_c,\n"
                             "  .param .u32 vectorAdd_n\n"
                             ")\n"
                             "{\n"
                             "  .reg .pred %p<2>;\n"
                             "  .reg .f32 %f<4>;\n"
                             "  .reg .b32 %r<6>;\n"
                             "  .reg .b64 %rd<11>;\n"
                             "\n"
                             "  ld.param.u64 %rd1, [vectorAdd_a];\n"
                             "  ld.param.u64 %rd2, [vectorAdd_b];\n"
                             "  ld.param.u64 %rd3, [vectorAdd_c];\n"
                             "  ld.param.u32 %r2, [vectorAdd_n];\n"
                             "  mov.u32 %r3, %ctaid.x;\n"
                             "  mov.u32 %r4, %ntid.x;\n"
                             "  mov.u32 %r5, %tid.x;\n"
                             "  mad.lo.u32 %r1, %r3, %r4, %r5;\n"
                             "  setp.ge.u32 %p1, %r1, %r2;\n"
                             "  @%p1 bra DONE;\n"
                             "  cvta.to.global.u64 %rd4, %rd1;\n"
                             "  cvta.to.global.u64 %rd5, %rd2;\n"
                             "  cvta.to.global.u64 %rd6, %rd3;\n"
                             "  mul.wide.u32 %rd7, %r1, 4;\n"
                             "  add.s64 %rd8, %rd4, %rd7;\n"
                             "  add.s64 %rd9, %rd5, %rd7;\n"
                             "  add.s64 %rd10, %rd6, %rd7;\n"
                             "  ld.global.f32 %f1, [%rd8];\n"
                             "  ld.global.f32 %f2, [%rd9];\n"
                             "  add.rn.f32 %f3, %f1, %f2;\n"
                             "  st.global.f32 [%rd10], %f3;\n"
                             "DONE:\n"
                             "  ret;\n"
                             "}\n";

#define BLOCK_THREADS 256u

/* Values are small integers and halves, so every sum is exact in float and
 * the tolerance only absorbs nothing-but-rounding differences. */
float vectoradd_input_a(size_t i) {
  return (float)(i % 1000u);
}

float vectoradd_input_b(size_t i) {
  return 0.5f * (float)(i % 7u) + 1.0f;
}

size_t vectoradd_check(const float *c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float want = vectoradd_input_a(i) + vectoradd_input_b(i);
    if (!(fabsf(c[i] - want) <= 1e-6f * fmaxf(1.0f, fabsf(want)))) return i;
  }
  return n;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Device-side state of one run, released by run_release whatever happened. */
struct run_state {
  int device;
  void *ctx;
  void *module;
  cuda_devptr d[3];
};

static void run_release(struct cuda *c, struct run_state *s) {
  for (int i = 0; i < 3; i++)
    if (s->d[i]) c->mem_free(s->d[i]);
  if (s->module) c->module_unload(s->module);
  if (s->ctx) {
    c->ctx_set_current(NULL);
    c->primary_ctx_release(s->device);
  }
}

static void step(struct cuda *c, const char *what) {
  if (c->step) c->step(what);
}

/* The JIT's error log, when the driver has cuModuleLoadDataEx, goes into the
 * reason: "a PTX JIT compilation failed" alone does not say that the driver
 * is too old for the PTX ISA or does not know the target. The log is cut to
 * what fits the one-line reason. */
static int load_module(struct cuda *c, void **module, struct gpc_error *err) {
  int rc;
  if (!c->module_load_data_ex) {
    rc = c->module_load_data(module, vectoradd_ptx);
    return rc == CUDA_SUCCESS ? GPC_OK : cuda_fail(c, err, "cuModuleLoadData", rc);
  }
  char log[2048] = "";
  int options[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[2] = {log, (void *)(uintptr_t)sizeof log};
  rc = c->module_load_data_ex(module, vectoradd_ptx, 2, options, values);
  if (rc == CUDA_SUCCESS) return GPC_OK;
  log[sizeof log - 1] = '\0';
  cuda_fail(c, err, "cuModuleLoadDataEx", rc);
  size_t n = strlen(log);
  while (n && (log[n - 1] == '\n' || log[n - 1] == ' '))
    log[--n] = '\0';
  if (n) {
    for (char *p = log; *p; p++)
      if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    size_t used = strlen(err->msg), room = sizeof err->msg - 1 - used;
    static const char sep[] = "; JIT log: ";
    if (room > sizeof sep) {
      memcpy(err->msg + used, sep, sizeof sep - 1);
      used += sizeof sep - 1;
      room -= sizeof sep - 1;
      size_t take = n < room ? n : room;
      memcpy(err->msg + used, log, take);
      err->msg[used + take] = '\0';
    }
  }
  return GPC_E_IO;
}

/* Fills the host staging buffer with one input and copies it to `dst`. */
static int upload(struct cuda *c, cuda_devptr dst, float *host, size_t n, float (*input)(size_t),
                  struct gpc_error *err) {
  for (size_t i = 0; i < n; i++)
    host[i] = input(i);
  int rc = c->memcpy_htod(dst, host, n * sizeof(float));
  return rc == CUDA_SUCCESS ? GPC_OK : cuda_fail(c, err, "cuMemcpyHtoD_v2", rc);
}

/* Context, module, function, and the three device buffers, a and b filled
 * through the one host buffer. */
static int run_setup(struct cuda *c, int ordinal, struct run_state *s, void **fn, float *host,
                     size_t n, struct gpc_error *err) {
  size_t bytes = n * sizeof(float);
  int rc = c->device_get(&s->device, ordinal);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuDeviceGet", rc);
  step(c, "cuDevicePrimaryCtxRetain");
  rc = c->primary_ctx_retain(&s->ctx, s->device);
  if (rc != CUDA_SUCCESS) {
    s->ctx = NULL;
    return cuda_fail(c, err, "cuDevicePrimaryCtxRetain", rc);
  }
  rc = c->ctx_set_current(s->ctx);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuCtxSetCurrent", rc);
  step(c, "PTX JIT (cuModuleLoadData)");
  if (load_module(c, &s->module, err) != GPC_OK) {
    s->module = NULL;
    return GPC_E_IO;
  }
  rc = c->module_get_function(fn, s->module, "vectorAdd");
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuModuleGetFunction", rc);
  step(c, "cuMemAlloc_v2");
  for (int i = 0; i < 3; i++) {
    rc = c->mem_alloc(&s->d[i], bytes);
    if (rc != CUDA_SUCCESS) {
      s->d[i] = 0;
      return cuda_fail(c, err, "cuMemAlloc_v2", rc);
    }
  }
  if (upload(c, s->d[0], host, n, vectoradd_input_a, err) != GPC_OK ||
      upload(c, s->d[1], host, n, vectoradd_input_b, err) != GPC_OK)
    return GPC_E_IO;
  /* c starts as -1s: device memory is not cleared, and a kernel that writes
   * nothing must not pass on a sum left behind by an earlier attempt. */
  for (size_t i = 0; i < n; i++)
    host[i] = -1.0f;
  rc = c->memcpy_htod(s->d[2], host, bytes);
  return rc == CUDA_SUCCESS ? GPC_OK : cuda_fail(c, err, "cuMemcpyHtoD_v2", rc);
}

static int run_kernel(struct cuda *c, struct run_state *s, void *fn, unsigned n, float *out,
                      size_t bytes, double *ms, struct gpc_error *err) {
  void *params[] = {&s->d[0], &s->d[1], &s->d[2], &n};
  unsigned grid = (n + BLOCK_THREADS - 1) / BLOCK_THREADS;
  step(c, "cuLaunchKernel");
  double t0 = now_ms();
  int rc = c->launch_kernel(fn, grid, 1, 1, BLOCK_THREADS, 1, 1, 0, NULL, params, NULL);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuLaunchKernel", rc);
  step(c, "cuCtxSynchronize");
  rc = c->ctx_synchronize();
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuCtxSynchronize", rc);
  *ms = now_ms() - t0;
  rc = c->memcpy_dtoh(out, s->d[2], bytes);
  if (rc != CUDA_SUCCESS) return cuda_fail(c, err, "cuMemcpyDtoH_v2", rc);
  return GPC_OK;
}

int vectoradd_run(struct cuda *c, int ordinal, size_t n, struct vectoradd_result *out,
                  struct gpc_error *err) {
  memset(out, 0, sizeof *out);
  out->elements = n;
  if (n == 0 || n > VECTORADD_MAX_ELEMENTS) {
    out->status = VECTORADD_CUDA_ERROR;
    return gpc_fail(err, GPC_E_INVAL, "elements: %zu is outside 1..%zu", n,
                    (size_t)VECTORADD_MAX_ELEMENTS);
  }
  size_t bytes = n * sizeof(float);
  float *host = gpc_malloc(bytes);
  struct run_state s = {0};
  void *fn = NULL;
  int rc = run_setup(c, ordinal, &s, &fn, host, n, err);
  if (rc == GPC_OK) rc = run_kernel(c, &s, fn, (unsigned)n, host, bytes, &out->ms, err);
  run_release(c, &s);
  if (rc != GPC_OK) {
    out->status = c->last_rc && cuda_is_busy(c->last_rc) ? VECTORADD_BUSY : VECTORADD_CUDA_ERROR;
  } else {
    size_t bad = vectoradd_check(host, n);
    if (bad < n) {
      out->status = VECTORADD_WRONG;
      out->bad_index = bad;
      out->expected = vectoradd_input_a(bad) + vectoradd_input_b(bad);
      out->got = host[bad];
    }
  }
  free(host);
  return rc;
}
