/* checks.c — the validation stages, each in a check process, filling a report. */
#include "checks.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "allocpod.h"
#include "cuda.h"
#include "nvml.h"
#include "phase.h"
#include "plugin.h"
#include "vectoradd.h"

#define MIB (1024ull * 1024ull)

bool checks_uuid_match(const char *nvml_uuid, const char *cuda_uuid) {
  if (!nvml_uuid || !cuda_uuid || !*cuda_uuid) return false;
  if (strncmp(nvml_uuid, "GPU-", 4) == 0 || strncmp(nvml_uuid, "MIG-", 4) == 0) nvml_uuid += 4;
  return strlen(nvml_uuid) == 36 && strcasecmp(nvml_uuid, cuda_uuid) == 0;
}

/* Splits "dom:bus:dev.fn" into the domain's value and the rest. */
static bool split_bus_id(const char *s, unsigned long *domain, const char **rest) {
  char *end = NULL;
  *domain = strtoul(s, &end, 16);
  if (end == s || *end != ':') return false;
  *rest = end + 1;
  return true;
}

bool checks_bus_id_match(const char *a, const char *b) {
  unsigned long da, db;
  const char *ra, *rb;
  if (!a || !b || !split_bus_id(a, &da, &ra) || !split_bus_id(b, &db, &rb)) return false;
  return da == db && strcasecmp(ra, rb) == 0;
}

/* ---- NVML (in a check process) ------------------------------------------ */

static void record_device(struct val_report *r, const char *check, struct val_device *d,
                          const struct nvml_device_info *info) {
  report_set_string(&d->name, info->name);
  report_set_string(&d->uuid, info->uuid);
  report_set_string(&d->pci_bus_id, info->pci_bus_id[0] ? info->pci_bus_id : NULL);
  report_set_string(&d->compute_mode, nvml_compute_mode_name(info->compute_mode));
  d->mig_enabled = info->mig_enabled;
  d->have_memory = info->have_memory;
  d->memory_total_mib = info->memory_total / MIB;
  d->memory_used_mib = info->memory_used / MIB;
  d->have_temperature = info->have_temperature;
  d->temperature_c = (int)info->temperature_c;
  char mem[64] = "memory n/a", temp[32] = "temperature n/a", mode[48] = "";
  if (info->have_memory)
    snprintf(mem, sizeof mem, "memory %llu/%llu MiB used", d->memory_used_mib, d->memory_total_mib);
  if (info->have_temperature) snprintf(temp, sizeof temp, "%u C", info->temperature_c);
  if (d->compute_mode && strcmp(d->compute_mode, "Default") != 0)
    snprintf(mode, sizeof mode, ", compute mode %s", d->compute_mode);
  report_check(r, check, true, "%s %s, %s, %s%s%s", info->name, info->uuid, mem, temp, mode,
               info->mig_enabled ? ", MIG mode" : "");
}

static void nvml_migs(struct nvml *n, void *gpu, unsigned i, struct val_report *r) {
  void *migs[NVML_MAX_MIG];
  unsigned count = 0;
  char check[48];
  snprintf(check, sizeof check, "gpu-%u", i);
  struct gpc_error err = {0};
  if (nvml_mig_devices(n, gpu, migs, NVML_MAX_MIG, &count, &err) != GPC_OK) {
    report_check(r, check, false, "%s", err.msg);
    report_fail(r, VAL_NVML, "gpu-%u %s", i, err.msg);
    return;
  }
  if (count == 0) {
    report_check(r, check, false, "MIG mode with no MIG devices");
    report_fail(r, VAL_NO_DEVICE, "gpu-%u is in MIG mode but has no MIG devices", i);
    return;
  }
  const struct val_device *parent = report_device(r, (int)i, -1);
  char *parent_mode = parent->compute_mode ? gpc_strdup(parent->compute_mode) : NULL;
  for (unsigned j = 0; j < count; j++) {
    snprintf(check, sizeof check, "gpu-%u/mig-%u", i, j);
    struct nvml_device_info info;
    if (nvml_device_query(n, migs[j], &info, &err) != GPC_OK) {
      report_check(r, check, false, "%s", err.msg);
      report_fail(r, VAL_NVML, "%s %s", check, err.msg);
      continue;
    }
    info.mig_enabled = false;
    struct val_device *d = report_device(r, (int)i, (int)j);
    record_device(r, check, d, &info);
    /* A MIG device shares its GPU's compute mode. */
    if (!d->compute_mode && parent_mode) report_set_string(&d->compute_mode, parent_mode);
  }
  free(parent_mode);
}

static void nvml_devices(struct nvml *n, unsigned count, struct val_report *r) {
  for (unsigned i = 0; i < count; i++) {
    char check[32];
    snprintf(check, sizeof check, "gpu-%u", i);
    phase_step(check);
    struct nvml_device_info info;
    struct gpc_error err = {0};
    void *dev = NULL;
    if (nvml_device_handle(n, i, &dev, &err) != GPC_OK && n->last_rc == NVML_ERROR_NO_PERMISSION) {
      /* A GPU given to another container, not to this one: not ours to
       * check, and not a failure. */
      report_check(r, check, true, "not accessible to this container (%s), skipped", err.msg);
      continue;
    }
    if (err.msg[0] || nvml_device_query(n, dev, &info, &err) != GPC_OK) {
      report_check(r, check, false, "%s", err.msg);
      report_fail(r, VAL_NVML, "gpu-%u %s", i, err.msg);
      continue;
    }
    record_device(r, check, report_device(r, (int)i, -1), &info);
    if (info.mig_enabled) nvml_migs(n, dev, i, r);
  }
}

static void phase_nvml(void *ctx, struct val_report *r) {
  const struct val_options *o = ctx;
  struct nvml n;
  struct gpc_error err = {0};
  const char *lib = NULL;
  phase_step("dlopen");
  if (nvml_open(&n, o->nvml_lib, &lib, &err) != GPC_OK) {
    report_check(r, "nvml-library", false, "%s", err.msg);
    report_fail(r, VAL_NO_LIBRARY, "%s", err.msg);
    return;
  }
  report_check(r, "nvml-library", true, "%s", lib);
  char version[NVML_VERSION_LEN] = "";
  unsigned n_dev = 0;
  phase_step("nvmlInit_v2");
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
  if (r->exit_code == VAL_OK && r->ndevices == 0)
    report_fail(r, VAL_NO_DEVICE,
                "none of the %u GPUs NVML reports is accessible to this container", n_dev);
out:
  phase_step("nvmlShutdown");
  nvml_close(&n);
}

/* ---- CUDA, one device per check process --------------------------------- */

struct cuda_ctx {
  const struct val_options *o;
  size_t device; /* index into r->devices */
};

static bool has_check(const struct val_report *r, const char *name) {
  for (size_t i = 0; i < r->nchecks; i++)
    if (strcmp(r->checks[i].name, name) == 0) return true;
  return false;
}

/* "gpu-1 GPU-5f1c... (00000000:3B:00.0)": how a device is named in reasons. */
static void device_name(const struct val_device *d, char *buf, size_t len) {
  char label[48];
  report_device_label(d, label, sizeof label);
  if (d->pci_bus_id)
    snprintf(buf, len, "%s %s (%s)", label, d->uuid ? d->uuid : "?", d->pci_bus_id);
  else
    snprintf(buf, len, "%s %s", label, d->uuid ? d->uuid : "?");
}

/* The CUDA ordinal that is this NVML device, or -1. */
static int find_cuda_device(struct cuda *c, int count, const struct val_device *d,
                            struct cuda_device_info *info, struct gpc_error *err) {
  for (int i = 0; i < count; i++) {
    phase_step("cuDeviceGetUuid");
    if (cuda_device_info(c, i, info, err) != GPC_OK) return -2;
    if (checks_uuid_match(d->uuid, info->uuid)) return i;
    /* Without a CUDA UUID, the bus id identifies a whole GPU (a MIG device
     * shares its GPU's bus id, so it needs the UUID). */
    if (!info->uuid[0] && d->mig_index < 0 && checks_bus_id_match(d->pci_bus_id, info->pci_bus_id))
      return i;
  }
  /* Drivers before R470 name MIG devices "MIG-GPU-<uuid>/gi/ci", which no
   * CUDA UUID equals; CUDA_VISIBLE_DEVICES=<that name> leaves just it. */
  if (count == 1 && d->uuid && strncmp(d->uuid, "MIG-GPU-", 8) == 0)
    return cuda_device_info(c, 0, info, err) == GPC_OK ? 0 : -2;
  return -1;
}

static void run_vectoradd(struct cuda *c, int ordinal, const struct cuda_device_info *info,
                          const char *check, const char *who, struct val_device *d, size_t elements,
                          struct val_report *r) {
  d->have_cc = true;
  d->cc_major = info->cc_major;
  d->cc_minor = info->cc_minor;
  if (!d->name) report_set_string(&d->name, info->name);
  struct vectoradd_result res;
  struct gpc_error err = {0};
  int rc = vectoradd_run(c, ordinal, elements, &res, &err);
  d->vectoradd_ran = true;
  d->vectoradd_elements = res.elements;
  d->vectoradd_ms = res.ms;
  d->vectoradd_ok = rc == GPC_OK && res.status == VECTORADD_OK;
  if (rc != GPC_OK && res.status == VECTORADD_BUSY) {
    d->busy = true;
    report_busy(r, check, "%s: in use%s%s: %s", who, d->compute_mode ? ", compute mode " : "",
                d->compute_mode ? d->compute_mode : "", err.msg);
  } else if (rc != GPC_OK) {
    report_check(r, check, false, "compute capability %d.%d, %s", info->cc_major, info->cc_minor,
                 err.msg);
    report_fail(r, VAL_CUDA, "%s %s", who, err.msg);
  } else if (res.status == VECTORADD_WRONG) {
    report_check(r, check, false, "element %zu expected %.1f got %.1f", res.bad_index,
                 (double)res.expected, (double)res.got);
    report_fail(r, VAL_WRONG_RESULT, "%s element %zu expected %.1f got %.1f", who, res.bad_index,
                (double)res.expected, (double)res.got);
  } else {
    report_check(r, check, true, "compute capability %d.%d, %zu elements in %.3f ms",
                 info->cc_major, info->cc_minor, res.elements, res.ms);
  }
}

#define CUDA_ERROR_NO_DEVICE 100

static void phase_cuda(void *ctx, struct val_report *r) {
  const struct cuda_ctx *x = ctx;
  struct val_device *d = &r->devices[x->device];
  char label[48], check[64], who[256];
  report_device_label(d, label, sizeof label);
  snprintf(check, sizeof check, "vectoradd-%s", label + 4); /* "vectoradd-0/mig-1" */
  device_name(d, who, sizeof who);
  struct cuda c;
  struct gpc_error err = {0};
  const char *lib = NULL;
  phase_step("dlopen");
  if (cuda_open(&c, x->o->cuda_lib, &lib, &err) != GPC_OK) {
    report_check(r, "cuda-library", false, "%s", err.msg);
    report_fail(r, VAL_NO_LIBRARY, "%s", err.msg);
    return;
  }
  c.step = phase_step;
  if (!has_check(r, "cuda-library")) report_check(r, "cuda-library", true, "%s", lib);
  int version = 0, count = 0;
  phase_step("cuInit");
  int rc = cuda_init(&c, &version, &count, &err);
  if (rc == GPC_OK && count == 0) {
    c.last_rc = CUDA_ERROR_NO_DEVICE;
    snprintf(err.msg, sizeof err.msg, "cuDeviceGetCount: 0 devices");
  }
  if ((rc != GPC_OK || count == 0) && c.last_rc == CUDA_ERROR_NO_DEVICE && r->cuda_driver_version) {
    /* CUDA works (an earlier device ran) but not on this one. */
    report_check(r, check, false, "not visible to CUDA: %s", err.msg);
    report_fail(r, VAL_CUDA, "%s is not visible to CUDA (%s)", who, err.msg);
    goto out;
  }
  if (rc != GPC_OK || count == 0) {
    report_check(r, "cuda-init", false, "%s", err.msg);
    if (c.last_rc == CUDA_ERROR_NO_DEVICE)
      report_fail(r, VAL_CUDA, "%s (%s is not visible to CUDA)", err.msg, who);
    else
      report_fail(r, VAL_CUDA, "%s", err.msg);
    goto out;
  }
  if (!r->cuda_driver_version) {
    char v[32];
    snprintf(v, sizeof v, "%d.%d", version / 1000, (version % 1000) / 10);
    report_set_string(&r->cuda_driver_version, v);
    report_check(r, "cuda-init", true, "CUDA driver API %s", v);
  }
  struct cuda_device_info info;
  int ordinal = find_cuda_device(&c, count, d, &info, &err);
  if (ordinal == -2) {
    report_check(r, check, false, "%s", err.msg);
    report_fail(r, VAL_CUDA, "%s %s", who, err.msg);
  } else if (ordinal < 0) {
    report_check(r, check, false, "not visible to CUDA (%d other device%s)", count,
                 count == 1 ? "" : "s");
    report_fail(r, VAL_CUDA, "%s is not visible to CUDA", who);
  } else {
    run_vectoradd(&c, ordinal, &info, check, who, d, x->o->elements, r);
  }
out:
  cuda_close(&c);
}

/* ---- device plugin -------------------------------------------------------- */

static long gpu_count(const struct val_report *r) {
  long n = 0;
  for (size_t i = 0; i < r->ndevices; i++)
    n += r->devices[i].mig_index < 0;
  return n;
}

static void phase_plugin(void *ctx, struct val_report *r) {
  const struct val_options *o = ctx;
  long nvml_count = gpu_count(r);
  long gpus = 0;
  struct gpc_error err = {0};
  phase_step("GET node");
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

/* ---- allocation ------------------------------------------------------------- */

/* The check process's share of the phase: the rest is left for deleting the
 * pod, and for the parent to delete it should the process be killed. */
static struct allocpod_opts alloc_opts(const struct val_options *o) {
  double wait = o->phase_timeout_s - (o->phase_timeout_s > 20 ? 10 : o->phase_timeout_s / 2);
  return (struct allocpod_opts){.kubeconfig = o->kubeconfig,
                                .ns = o->ns,
                                .self = o->pod,
                                .node = o->node,
                                .api_timeout_ms = o->api_timeout_ms,
                                .wait_s = wait};
}

static void phase_allocation(void *ctx, struct val_report *r) {
  struct allocpod_opts ao = alloc_opts(ctx);
  allocpod_check(&ao, r);
}

/* ---- the attempt ------------------------------------------------------------ */

static enum phase_outcome run_phase(const char *name, int fail_code, const char *const *env,
                                    phase_fn fn, void *ctx, const struct val_options *o,
                                    struct val_limits *lim, struct val_report *r) {
  double deadline = phase_now() + o->phase_timeout_s;
  if (deadline > lim->deadline) deadline = lim->deadline;
  struct phase_opts po = {.name = name,
                          .deadline = deadline,
                          .fail_code = fail_code,
                          .stop = lim->stop,
                          .env = env,
                          .unreaped = &lim->unreaped};
  return phase_run(&po, fn, ctx, r);
}

/* Go on with the next check after this outcome? Not after a time-out or a
 * signal: the attempt is over. */
static bool go_on(enum phase_outcome out) {
  return out == PHASE_DONE || out == PHASE_FAILED;
}

static bool is_target(const struct val_device *d) {
  return d->mig_index >= 0 || !d->mig_enabled;
}

/* Compute mode Prohibited: no context can be made, so nothing to run. */
static bool prohibited(struct val_report *r, size_t i) {
  struct val_device *d = &r->devices[i];
  if (!d->compute_mode || strcmp(d->compute_mode, "Prohibited") != 0) return false;
  char label[48], check[64], who[256];
  report_device_label(d, label, sizeof label);
  snprintf(check, sizeof check, "vectoradd-%s", label + 4);
  device_name(d, who, sizeof who);
  d->busy = true;
  report_busy(r, check, "%s: compute mode Prohibited", who);
  return true;
}

void checks_run(const struct val_options *o, struct val_limits *lim, struct val_report *r) {
  if (!go_on(run_phase("nvml", VAL_NVML, NULL, phase_nvml, (void *)o, o, lim, r))) goto out;
  if (r->exit_code != VAL_OK) goto out;
  size_t n = r->ndevices;
  for (size_t i = 0; i < n && i < r->ndevices; i++) {
    if (!is_target(&r->devices[i]) || prohibited(r, i)) continue;
    char label[48], name[64];
    report_device_label(&r->devices[i], label, sizeof label);
    snprintf(name, sizeof name, "vectoradd-%s", label + 4);
    char *visible =
        gpc_asprintf("CUDA_VISIBLE_DEVICES=%s", r->devices[i].uuid ? r->devices[i].uuid : "");
    const char *env[] = {visible, NULL};
    struct cuda_ctx ctx = {.o = o, .device = i};
    enum phase_outcome res = run_phase(name, VAL_CUDA, env, phase_cuda, &ctx, o, lim, r);
    free(visible);
    if (!go_on(res) || r->exit_code == VAL_NO_LIBRARY) goto out;
    /* cuInit failed before any device ran: the driver, not a device, is
     * broken; the other devices would only repeat it. */
    if (res == PHASE_DONE && r->exit_code != VAL_OK && !r->cuda_driver_version) goto out;
  }
  if (r->exit_code == VAL_OK && o->check_plugin &&
      !go_on(run_phase("device-plugin", VAL_PLUGIN, NULL, phase_plugin, (void *)o, o, lim, r)))
    goto out;
  if (r->exit_code != VAL_OK || !o->check_allocation) goto out;
  if (run_phase("allocation", VAL_ALLOCATION, NULL, phase_allocation, (void *)o, o, lim, r) !=
      PHASE_DONE) {
    /* killed or stopped mid-check: its pod may be left, remove it here */
    struct allocpod_opts ao = alloc_opts(o);
    struct gpc_error err = {0};
    if (allocpod_delete(&ao, &err) != GPC_OK)
      report_check(r, "allocation-cleanup", false, "%s", err.msg);
  }
out:
  report_finish(r);
}
