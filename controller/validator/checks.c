/* checks.c — the validation stages, in order, filling a report. */
#include "checks.h"

#include "cuda.h"
#include "nvml.h"
#include "plugin.h"
#include "vectoradd.h"

#define MIB (1024ull * 1024ull)

static void nvml_devices(struct nvml *n, unsigned count, struct val_report *r) {
  for (unsigned i = 0; i < count; i++) {
    char name[32];
    snprintf(name, sizeof name, "gpu-%u", i);
    struct nvml_device_info info;
    struct gpc_error err = {0};
    if (nvml_device_query(n, i, &info, &err) != GPC_OK) {
      report_check(r, name, false, "%s", err.msg);
      report_fail(r, VAL_NVML, "device %u %s", i, err.msg);
      continue;
    }
    struct val_device *d = report_device(r, (int)i);
    report_set_string(&d->name, info.name);
    report_set_string(&d->uuid, info.uuid);
    d->have_memory = info.have_memory;
    d->memory_total_mib = info.memory_total / MIB;
    d->memory_used_mib = info.memory_used / MIB;
    d->have_temperature = info.have_temperature;
    d->temperature_c = (int)info.temperature_c;
    char mem[64] = "memory n/a", temp[32] = "temperature n/a";
    if (info.have_memory)
      snprintf(mem, sizeof mem, "memory %llu/%llu MiB used", d->memory_used_mib,
               d->memory_total_mib);
    if (info.have_temperature) snprintf(temp, sizeof temp, "%u C", info.temperature_c);
    report_check(r, name, true, "%s %s, %s, %s", info.name, info.uuid, mem, temp);
  }
}

/* Returns the NVML device count, or -1 when the stage failed. */
static long stage_nvml(const struct val_options *o, struct val_report *r) {
  struct nvml n;
  struct gpc_error err = {0};
  const char *lib = o->nvml_lib ? o->nvml_lib : NVML_DEFAULT_LIB;
  if (nvml_open(&n, o->nvml_lib, &err) != GPC_OK) {
    report_check(r, "nvml-library", false, "%s", err.msg);
    report_fail(r, VAL_NO_LIBRARY, "%s", err.msg);
    return -1;
  }
  report_check(r, "nvml-library", true, "%s", lib);
  long count = -1;
  char version[NVML_VERSION_LEN] = "";
  unsigned n_dev = 0;
  if (nvml_init(&n, &err) != GPC_OK) {
    report_check(r, "nvml-init", false, "%s", err.msg);
    report_fail(r, VAL_NVML, "%s", err.msg);
    goto out;
  }
  report_check(r, "nvml-init", true, "nvmlInit_v2");
  if (nvml_driver_version(&n, version, sizeof version, &err) != GPC_OK) {
    report_check(r, "driver-version", false, "%s", err.msg);
    report_fail(r, VAL_NVML, "%s", err.msg);
    goto out;
  }
  report_set_string(&r->driver_version, version);
  report_check(r, "driver-version", true, "%s", version);
  if (nvml_device_count(&n, &n_dev, &err) != GPC_OK) {
    report_check(r, "nvml-devices", false, "%s", err.msg);
    report_fail(r, VAL_NVML, "%s", err.msg);
    goto out;
  }
  if (n_dev == 0) {
    report_check(r, "nvml-devices", false, "0 GPUs");
    report_fail(r, VAL_NO_DEVICE, "NVML reports 0 GPUs");
    goto out;
  }
  report_check(r, "nvml-devices", true, "%u GPU%s", n_dev, n_dev == 1 ? "" : "s");
  nvml_devices(&n, n_dev, r);
  if (r->exit_code == VAL_OK) count = (long)n_dev;
out:
  nvml_close(&n);
  return count;
}

static void cuda_device(struct cuda *c, int i, size_t elements, struct val_report *r) {
  char check[32], name[256];
  snprintf(check, sizeof check, "vectoradd-%d", i);
  struct gpc_error err = {0};
  struct val_device *d = report_device(r, i);
  int major = 0, minor = 0;
  if (cuda_device_info(c, i, name, (int)sizeof name, &major, &minor, &err) != GPC_OK) {
    report_check(r, check, false, "%s", err.msg);
    report_fail(r, VAL_CUDA, "device %d %s", i, err.msg);
    return;
  }
  d->have_cc = true;
  d->cc_major = major;
  d->cc_minor = minor;
  if (!d->name) report_set_string(&d->name, name);
  struct vectoradd_result res;
  int rc = vectoradd_run(c, i, elements, &res, &err);
  d->vectoradd_ran = true;
  d->vectoradd_elements = res.elements;
  d->vectoradd_ms = res.ms;
  d->vectoradd_ok = rc == GPC_OK && res.status == VECTORADD_OK;
  if (rc != GPC_OK) {
    report_check(r, check, false, "compute capability %d.%d, %s", major, minor, err.msg);
    report_fail(r, VAL_CUDA, "device %d %s", i, err.msg);
  } else if (res.status == VECTORADD_WRONG) {
    report_check(r, check, false, "element %zu expected %.1f got %.1f", res.bad_index,
                 (double)res.expected, (double)res.got);
    report_fail(r, VAL_WRONG_RESULT, "device %d element %zu expected %.1f got %.1f", i,
                res.bad_index, (double)res.expected, (double)res.got);
  } else {
    report_check(r, check, true, "compute capability %d.%d, %zu elements in %.3f ms", major, minor,
                 res.elements, res.ms);
  }
}

static void stage_cuda(const struct val_options *o, long nvml_count, struct val_report *r) {
  struct cuda c;
  struct gpc_error err = {0};
  const char *lib = o->cuda_lib ? o->cuda_lib : CUDA_DEFAULT_LIB;
  if (cuda_open(&c, o->cuda_lib, &err) != GPC_OK) {
    report_check(r, "cuda-library", false, "%s", err.msg);
    report_fail(r, VAL_NO_LIBRARY, "%s", err.msg);
    return;
  }
  report_check(r, "cuda-library", true, "%s", lib);
  int version = 0, count = 0;
  if (cuda_init(&c, &version, &count, &err) != GPC_OK) {
    report_check(r, "cuda-init", false, "%s", err.msg);
    report_fail(r, VAL_CUDA, "%s", err.msg);
    goto out;
  }
  char v[32];
  snprintf(v, sizeof v, "%d.%d", version / 1000, (version % 1000) / 10);
  report_set_string(&r->cuda_driver_version, v);
  report_check(r, "cuda-init", true, "CUDA driver API %s", v);
  /* MIG or CUDA_VISIBLE_DEVICES can make CUDA see a different number of
   * devices than NVML; that is reported, and only "none" fails. */
  if (count <= 0) {
    report_check(r, "cuda-devices", false, "0 devices (NVML sees %ld)", nvml_count);
    report_fail(r, VAL_CUDA, "cuDeviceGetCount: 0 devices, NVML sees %ld", nvml_count);
    goto out;
  }
  report_check(r, "cuda-devices", true, "%d device%s%s", count, count == 1 ? "" : "s",
               count == nvml_count ? "" : " (differs from NVML)");
  for (int i = 0; i < count; i++)
    cuda_device(&c, i, o->elements, r);
out:
  cuda_close(&c);
}

static void stage_plugin(const struct val_options *o, long nvml_count, struct val_report *r) {
  long gpus = 0;
  struct gpc_error err = {0};
  if (plugin_node_gpus(o->kubeconfig, o->node, o->api_timeout_ms, &gpus, &err) != GPC_OK) {
    report_check(r, "device-plugin", false, "%s", err.msg);
    report_fail(r, VAL_PLUGIN, "%s", err.msg);
    return;
  }
  bool ok = gpus >= nvml_count;
  report_check(r, "device-plugin", ok, "node %s allocatable " PLUGIN_RESOURCE " %ld, %ld GPU%s",
               o->node, gpus, nvml_count, nvml_count == 1 ? "" : "s");
  if (!ok)
    report_fail(r, VAL_PLUGIN, "node %s allocatable " PLUGIN_RESOURCE " %ld < %ld GPUs", o->node,
                gpus, nvml_count);
}

void checks_run(const struct val_options *o, struct val_report *r) {
  long count = stage_nvml(o, r);
  if (count < 0) return;
  stage_cuda(o, count, r);
  if (r->exit_code != VAL_OK || !o->check_plugin) return;
  stage_plugin(o, count, r);
}
