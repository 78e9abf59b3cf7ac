/* report.c — collecting checks and printing them as text or JSON. */
#include "report.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void report_init(struct val_report *r) {
  memset(r, 0, sizeof *r);
}

void report_release(struct val_report *r) {
  for (size_t i = 0; i < r->nchecks; i++) {
    free(r->checks[i].name);
    free(r->checks[i].detail);
  }
  for (size_t i = 0; i < r->ndevices; i++) {
    free(r->devices[i].name);
    free(r->devices[i].uuid);
    free(r->devices[i].pci_bus_id);
    free(r->devices[i].compute_mode);
  }
  free(r->checks);
  free(r->devices);
  free(r->driver_version);
  free(r->cuda_driver_version);
  free(r->reason);
  free(r->busy);
  memset(r, 0, sizeof *r);
}

void report_set_string(char **slot, const char *value) {
  free(*slot);
  *slot = value ? gpc_strdup(value) : NULL;
}

/* vasprintf through alloc.h, which aborts on exhaustion. Most details fit
 * the stack buffer, so they are formatted once. */
static char *vformat(const char *fmt, va_list ap) {
  char buf[256];
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (n < 0) return gpc_strdup("");
  if ((size_t)n < sizeof buf) return gpc_strdup(buf);
  char *s = gpc_malloc((size_t)n + 1);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

/* Reasons and details go into a one-line termination message and a log
 * line, so a newline from a driver string must not split them. */
static void one_line(char *s) {
  for (; *s; s++)
    if (*s == '\n' || *s == '\r') *s = ' ';
}

static struct val_check *add_check(struct val_report *r, const char *name, bool ok, char *detail) {
  gpc_grow((void **)&r->checks, &r->checks_cap, r->nchecks + 1, sizeof *r->checks);
  struct val_check *c = &r->checks[r->nchecks++];
  c->name = gpc_strdup(name);
  c->ok = ok;
  c->busy = false;
  c->detail = detail;
  one_line(c->detail);
  return c;
}

void report_check(struct val_report *r, const char *name, bool ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *detail = vformat(fmt, ap);
  va_end(ap);
  add_check(r, name, ok, detail);
}

void report_busy(struct val_report *r, const char *check, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *detail = vformat(fmt, ap);
  va_end(ap);
  struct val_check *c = add_check(r, check, false, detail);
  c->busy = true;
  if (!r->busy) r->busy = gpc_strdup(c->detail);
}

void report_finish(struct val_report *r) {
  if (r->exit_code == VAL_OK && r->busy) report_fail(r, VAL_BUSY, "%s", r->busy);
}

void report_fail(struct val_report *r, enum val_exit code, const char *fmt, ...) {
  if (r->exit_code != VAL_OK && code != VAL_TIMEOUT) return;
  va_list ap;
  va_start(ap, fmt);
  char *detail = vformat(fmt, ap);
  va_end(ap);
  char *reason = gpc_asprintf("%s: %s", report_result_name(code), detail);
  free(detail);
  one_line(reason);
  free(r->reason);
  r->reason = reason;
  r->exit_code = code;
}

struct val_device *report_device(struct val_report *r, int index, int mig_index) {
  for (size_t i = 0; i < r->ndevices; i++)
    if (r->devices[i].index == index && r->devices[i].mig_index == mig_index) return &r->devices[i];
  gpc_grow((void **)&r->devices, &r->devices_cap, r->ndevices + 1, sizeof *r->devices);
  struct val_device *d = &r->devices[r->ndevices++];
  memset(d, 0, sizeof *d);
  d->index = index;
  d->mig_index = mig_index;
  return d;
}

void report_device_label(const struct val_device *d, char *buf, size_t len) {
  if (d->mig_index >= 0)
    snprintf(buf, len, "gpu-%d/mig-%d", d->index, d->mig_index);
  else
    snprintf(buf, len, "gpu-%d", d->index);
}

bool report_outcome_ready(int exit_code) {
  return exit_code == VAL_OK || exit_code == VAL_BUSY;
}

const char *report_result_name(int exit_code) {
  switch (exit_code) {
  case VAL_OK:
    return "ok";
  case VAL_USAGE:
    return "UsageError";
  case VAL_NO_LIBRARY:
    return "NoDriverLibrary";
  case VAL_NVML:
    return "NVMLError";
  case VAL_NO_DEVICE:
    return "NoDevice";
  case VAL_CUDA:
    return "CUDAError";
  case VAL_WRONG_RESULT:
    return "WrongResult";
  case VAL_PLUGIN:
    return "PluginNotAdvertising";
  case VAL_TIMEOUT:
    return "Timeout";
  case VAL_BUSY:
    return "GPUBusy";
  case VAL_ALLOCATION:
    return "AllocationFailed";
  default:
    return "Failed";
  }
}

void report_print_text(const struct val_report *r, FILE *out) {
  for (size_t i = 0; i < r->nchecks; i++) {
    const struct val_check *c = &r->checks[i];
    fprintf(out, "%-4s  %-20s %s\n", c->ok ? "ok" : c->busy ? "busy" : "FAIL", c->name, c->detail);
  }
  if (r->exit_code == VAL_OK)
    fprintf(out, "result: ok\n");
  else if (r->exit_code == VAL_BUSY)
    fprintf(out, "result: busy (exit %d) %s\n", r->exit_code, r->reason ? r->reason : "");
  else
    fprintf(out, "result: failed (exit %d) %s\n", r->exit_code, r->reason ? r->reason : "");
}

/* Strings come from drivers and file paths; jansson refuses invalid UTF-8,
 * so such bytes are replaced rather than losing the whole field. */
static json_t *jstr(const char *s) {
  json_t *j = json_string(s);
  if (j) return j;
  char *copy = gpc_strdup(s);
  for (char *p = copy; *p; p++)
    if ((unsigned char)*p >= 0x80) *p = '?';
  j = json_string(copy);
  free(copy);
  return j;
}

static json_t *string_or_null(const char *s) {
  return s ? jstr(s) : json_null();
}

static json_t *device_json(const struct val_device *d) {
  json_t *o = json_object();
  json_object_set_new(o, "index", json_integer(d->index));
  json_object_set_new(o, "migIndex", d->mig_index >= 0 ? json_integer(d->mig_index) : json_null());
  json_object_set_new(o, "name", string_or_null(d->name));
  json_object_set_new(o, "uuid", string_or_null(d->uuid));
  json_object_set_new(o, "pciBusId", string_or_null(d->pci_bus_id));
  json_object_set_new(o, "computeMode", string_or_null(d->compute_mode));
  json_object_set_new(o, "migEnabled", json_boolean(d->mig_enabled));
  json_object_set_new(o, "busy", json_boolean(d->busy));
  json_object_set_new(o, "memoryTotalMiB",
                      d->have_memory ? json_integer((json_int_t)d->memory_total_mib) : json_null());
  json_object_set_new(o, "memoryUsedMiB",
                      d->have_memory ? json_integer((json_int_t)d->memory_used_mib) : json_null());
  json_object_set_new(o, "temperatureC",
                      d->have_temperature ? json_integer(d->temperature_c) : json_null());
  if (d->have_cc) {
    char cc[32];
    snprintf(cc, sizeof cc, "%d.%d", d->cc_major, d->cc_minor);
    json_object_set_new(o, "computeCapability", json_string(cc));
  } else {
    json_object_set_new(o, "computeCapability", json_null());
  }
  if (d->vectoradd_ran)
    json_object_set_new(o, "vectorAdd",
                        json_pack("{s:b,s:I,s:f}", "ok", d->vectoradd_ok, "elements",
                                  (json_int_t)d->vectoradd_elements, "ms", d->vectoradd_ms));
  else
    json_object_set_new(o, "vectorAdd", json_null());
  return o;
}

json_t *report_json(const struct val_report *r) {
  json_t *checks = json_array();
  for (size_t i = 0; i < r->nchecks; i++) {
    json_t *c = json_object();
    json_object_set_new(c, "name", jstr(r->checks[i].name));
    json_object_set_new(c, "ok", json_boolean(r->checks[i].ok));
    if (r->checks[i].busy) json_object_set_new(c, "busy", json_true());
    json_object_set_new(c, "detail", jstr(r->checks[i].detail));
    json_array_append_new(checks, c);
  }
  json_t *devices = json_array();
  for (size_t i = 0; i < r->ndevices; i++)
    json_array_append_new(devices, device_json(&r->devices[i]));
  json_t *o = json_object();
  json_object_set_new(o, "checks", checks);
  json_object_set_new(o, "driverVersion", string_or_null(r->driver_version));
  json_object_set_new(o, "cudaDriverVersion", string_or_null(r->cuda_driver_version));
  json_object_set_new(o, "devices", devices);
  json_object_set_new(o, "busy", string_or_null(r->busy));
  json_object_set_new(o, "result", jstr(report_result_name(r->exit_code)));
  json_object_set_new(o, "reason", string_or_null(r->reason));
  json_object_set_new(o, "exitCode", json_integer(r->exit_code));
  return o;
}

/* ---- report_from_json --------------------------------------------------- */

static int opt_string(const json_t *o, const char *key, char **slot, struct gpc_error *err) {
  const json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) return GPC_OK;
  if (!json_is_string(v)) return gpc_fail(err, GPC_E_INVAL, "report: %s: not a string", key);
  report_set_string(slot, json_string_value(v));
  return GPC_OK;
}

static int device_from_json(const json_t *o, struct val_report *r, struct gpc_error *err) {
  const json_t *index = json_object_get(o, "index");
  const json_t *mig = json_object_get(o, "migIndex");
  if (!json_is_integer(index) || (mig && !json_is_null(mig) && !json_is_integer(mig)))
    return gpc_fail(err, GPC_E_INVAL, "report: devices[].index: not an integer");
  struct val_device *d = report_device(r, (int)json_integer_value(index),
                                       json_is_integer(mig) ? (int)json_integer_value(mig) : -1);
  if (opt_string(o, "name", &d->name, err) || opt_string(o, "uuid", &d->uuid, err) ||
      opt_string(o, "pciBusId", &d->pci_bus_id, err) ||
      opt_string(o, "computeMode", &d->compute_mode, err))
    return GPC_E_INVAL;
  d->mig_enabled = json_is_true(json_object_get(o, "migEnabled"));
  d->busy = json_is_true(json_object_get(o, "busy"));
  const json_t *total = json_object_get(o, "memoryTotalMiB");
  const json_t *used = json_object_get(o, "memoryUsedMiB");
  if (json_is_integer(total) && json_is_integer(used)) {
    d->have_memory = true;
    d->memory_total_mib = (unsigned long long)json_integer_value(total);
    d->memory_used_mib = (unsigned long long)json_integer_value(used);
  }
  const json_t *temp = json_object_get(o, "temperatureC");
  if (json_is_integer(temp)) {
    d->have_temperature = true;
    d->temperature_c = (int)json_integer_value(temp);
  }
  const char *cc = json_string_value(json_object_get(o, "computeCapability"));
  if (cc && sscanf(cc, "%d.%d", &d->cc_major, &d->cc_minor) == 2) d->have_cc = true;
  const json_t *va = json_object_get(o, "vectorAdd");
  if (json_is_object(va)) {
    d->vectoradd_ran = true;
    d->vectoradd_ok = json_is_true(json_object_get(va, "ok"));
    d->vectoradd_elements = (size_t)json_integer_value(json_object_get(va, "elements"));
    d->vectoradd_ms = json_number_value(json_object_get(va, "ms"));
  }
  return GPC_OK;
}

int report_from_json(const json_t *o, struct val_report *r, struct gpc_error *err) {
  const json_t *checks = json_object_get(o, "checks");
  const json_t *devices = json_object_get(o, "devices");
  const json_t *code = json_object_get(o, "exitCode");
  if (!json_is_object(o) || !json_is_array(checks) || !json_is_array(devices) ||
      !json_is_integer(code))
    return gpc_fail(err, GPC_E_INVAL, "report: not a validator report");
  size_t i;
  const json_t *v;
  json_array_foreach(checks, i, v) {
    const char *name = json_string_value(json_object_get(v, "name"));
    const char *detail = json_string_value(json_object_get(v, "detail"));
    if (!name || !detail) return gpc_fail(err, GPC_E_INVAL, "report: checks[%zu]: bad check", i);
    struct val_check *c =
        add_check(r, name, json_is_true(json_object_get(v, "ok")), gpc_strdup(detail));
    c->busy = json_is_true(json_object_get(v, "busy"));
  }
  json_array_foreach(devices, i, v) {
    if (device_from_json(v, r, err) != GPC_OK) return GPC_E_INVAL;
  }
  if (opt_string(o, "driverVersion", &r->driver_version, err) ||
      opt_string(o, "cudaDriverVersion", &r->cuda_driver_version, err) ||
      opt_string(o, "reason", &r->reason, err) || opt_string(o, "busy", &r->busy, err))
    return GPC_E_INVAL;
  r->exit_code = (int)json_integer_value(code);
  return GPC_OK;
}
