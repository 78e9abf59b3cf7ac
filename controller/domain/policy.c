/* policy.c — ClusterGPUPolicy decoding, defaulting and validation.
 *
 * The decoder walks the object with a path buffer so that every error names
 * the field the way the API server does ("spec.driver.imagePullPolicy: ...").
 * Defaults here must stay equal to the `default:` entries of the CRD schema;
 * test/unit/test_policy.c checks both against each other.
 */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "decode.h"
#include "policy_fields.h"
#include "selector.h"

/* ---- names ------------------------------------------------------------ */

/* Name arrays from the X-macro tables of policy.h, indexed by enum value;
 * the NULL-terminated ones double as get_enum's list of accepted values. */
#define KEY_(e, name, key) [e] = key,
#define CONFIG_(e, name, config, socket) [e] = config,
#define SOCKET_(e, name, config, socket) [e] = socket,
static const char *const operand_names[GPC_OP_COUNT] = {GPC_OPERAND_MAP(GPC_X_NAME)};
static const char *const operand_keys[GPC_OP_COUNT] = {GPC_OPERAND_MAP(KEY_)};
static const char *const pull_names[] = {GPC_PULL_POLICY_MAP(GPC_X_NAME) NULL};
static const char *const strategy_names[] = {GPC_UPDATE_STRATEGY_MAP(GPC_X_NAME) NULL};
static const char *const runtime_names[] = {GPC_RUNTIME_MAP(GPC_X_NAME) NULL};
static const char *const service_names[] = {GPC_SERVICE_TYPE_MAP(GPC_X_NAME) NULL};
/* By runtime; with "detect" they are left empty and render uses the
 * default of each node's runtime (gpc_runtime_config_default()). */
static const char *const runtime_config_default[] = {GPC_RUNTIME_MAP(CONFIG_)};
static const char *const runtime_socket_default[] = {GPC_RUNTIME_MAP(SOCKET_)};
#undef KEY_
#undef CONFIG_
#undef SOCKET_

const char *gpc_operand_name(enum gpc_operand op) {
  return (unsigned)op < GPC_OP_COUNT ? operand_names[op] : NULL;
}

const char *gpc_operand_spec_key(enum gpc_operand op) {
  return (unsigned)op < GPC_OP_COUNT ? operand_keys[op] : NULL;
}

int gpc_operand_from_name(const char *name) {
  for (int i = 0; name && i < GPC_OP_COUNT; i++)
    if (strcmp(name, operand_names[i]) == 0) return i;
  return -1;
}

const char *gpc_pull_policy_name(enum gpc_pull_policy p) {
  return (unsigned)p <= GPC_PULL_NEVER ? pull_names[p] : NULL;
}

const char *gpc_update_strategy_name(enum gpc_update_strategy s) {
  return (unsigned)s <= GPC_UPDATE_ON_DELETE ? strategy_names[s] : NULL;
}

const char *gpc_runtime_name(enum gpc_runtime r) {
  return (unsigned)r <= GPC_RUNTIME_DETECT ? runtime_names[r] : NULL;
}

const char *gpc_service_type_name(enum gpc_service_type t) {
  return (unsigned)t <= GPC_SVC_NODE_PORT ? service_names[t] : NULL;
}

/* ---- defaults (keep equal to the CRD schema) --------------------------- */

struct operand_defaults {
  const char *repository, *image, *version;
};

static const struct operand_defaults operand_defaults[GPC_OP_COUNT] = {
    [GPC_OP_DRIVER] = {"nvcr.io/nvidia", "driver", "550.54.14-ubuntu22.04"},
    [GPC_OP_TOOLKIT] = {"nvcr.io/nvidia/k8s", "container-toolkit", "v1.15.0-ubuntu20.04"},
    [GPC_OP_DEVICE_PLUGIN] = {"nvcr.io/nvidia", "k8s-device-plugin", "v0.15.0"},
    [GPC_OP_DCGM_EXPORTER] = {"nvcr.io/nvidia/k8s", "dcgm-exporter", "3.3.5-3.4.1-ubuntu22.04"},
    [GPC_OP_VALIDATOR] = {"ghcr.io/gpu-policy-controller", "gpu-policy-controller", "v0.1.0"},
};

const char *gpc_runtime_config_default(enum gpc_runtime r) {
  return (unsigned)r <= GPC_RUNTIME_DETECT ? runtime_config_default[r] : "";
}

const char *gpc_runtime_socket_default(enum gpc_runtime r) {
  return (unsigned)r <= GPC_RUNTIME_DETECT ? runtime_socket_default[r] : "";
}

/* ---- decoding context --------------------------------------------------- */

struct dec {
  struct gpc_error *err;
  char path[256];
  size_t len;
};

/* Appends ".key" (or "key" at the root) to the path; returns the old length
 * for path_pop. A path that would overflow is truncated, which only shortens
 * error messages. */
static size_t path_push(struct dec *d, const char *key) {
  size_t old = d->len;
  int n = snprintf(d->path + d->len, sizeof d->path - d->len, "%s%s", d->len ? "." : "", key);
  if (n > 0) d->len = strlen(d->path);
  return old;
}

static size_t path_push_index(struct dec *d, size_t i) {
  size_t old = d->len;
  snprintf(d->path + d->len, sizeof d->path - d->len, "[%zu]", i);
  d->len = strlen(d->path);
  return old;
}

static void path_pop(struct dec *d, size_t old) {
  d->len = old;
  d->path[old] = '\0';
}

__attribute__((format(printf, 2, 3))) static int fail(struct dec *d, const char *fmt, ...) {
  char msg[GPC_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return gpc_fail(d->err, GPC_E_INVAL, "%s: %s", d->path, msg);
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "object";
  case JSON_ARRAY:
    return "array";
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
    return "integer";
  case JSON_REAL:
    return "number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "boolean";
  default:
    return "null";
  }
}

/* Field lookup treating JSON null as absent, as the API server does for
 * non-nullable fields (it drops them, then applies defaults). */
static json_t *field(const json_t *obj, const char *key) {
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  return v && !json_is_null(v) ? v : NULL;
}

static int type_error(struct dec *d, const json_t *v, const char *want) {
  return fail(d, "Invalid value: must be %s, got %s", want, json_kind(v));
}

/* Names an unknown field the way kubectl --validate=strict does. */
static int unknown_field(struct dec *d, const char *key) {
  return gpc_fail(d->err, GPC_E_INVAL, "unknown field \"%s%s%s\"", d->path, d->len ? "." : "", key);
}

/* Rejects keys not in `allowed` (NULL-terminated), naming the first one. */
static int check_keys(struct dec *d, const json_t *obj, const char *const *allowed) {
  const char *key = decode_unknown_key(obj, allowed);
  return key ? unknown_field(d, key) : GPC_OK;
}

/* Looks up obj.key, which must be an object when present; *out is NULL when
 * absent. On success the path is left pushed (caller pops with *old). */
static int sub_object(struct dec *d, const json_t *obj, const char *key, const json_t **out,
                      size_t *old) {
  json_t *v = field(obj, key);
  *old = path_push(d, key);
  *out = v;
  if (v && !json_is_object(v)) return type_error(d, v, "an object");
  return GPC_OK;
}

static int get_bool(struct dec *d, const json_t *obj, const char *key, bool def, bool *out) {
  json_t *v = field(obj, key);
  *out = def;
  if (!v) return GPC_OK;
  size_t old = path_push(d, key);
  if (!json_is_boolean(v)) return type_error(d, v, "a boolean");
  path_pop(d, old);
  *out = json_is_true(v);
  return GPC_OK;
}

static int get_int(struct dec *d, const json_t *obj, const char *key, int64_t def, int64_t min,
                   int64_t max, int32_t *out) {
  json_t *v = field(obj, key);
  *out = (int32_t)def;
  if (!v) return GPC_OK;
  size_t old = path_push(d, key);
  if (!json_is_integer(v)) return type_error(d, v, "an integer");
  json_int_t n = json_integer_value(v);
  if (n < min)
    return fail(d, "Invalid value: %lld: must be greater than or equal to %lld", (long long)n,
                (long long)min);
  if (n > max)
    return fail(d, "Invalid value: %lld: must be less than or equal to %lld", (long long)n,
                (long long)max);
  path_pop(d, old);
  *out = (int32_t)n;
  return GPC_OK;
}

/* Checks a string against a grammar; d->path must name it already. */
static int check_pattern(struct dec *d, const char *s, enum gpc_pattern p) {
  if (strlen(s) > gpc_pattern_max_len(p))
    return fail(d, "Too long: may not be more than %zu bytes", gpc_pattern_max_len(p));
  if (p == GPC_PAT_VERSION && strncmp(s, "sha256:", 7) == 0 &&
      !gpc_pattern_match(GPC_PAT_DIGEST, s))
    return fail(d, "Invalid value: \"%.80s\": a digest must be %s", s,
                gpc_pattern_what(GPC_PAT_DIGEST));
  if (!gpc_pattern_match(p, s))
    return fail(d, "Invalid value: \"%.80s\": must be %s", s, gpc_pattern_what(p));
  return GPC_OK;
}

/* A string field; `p` < 0 means any string. *out is a new string (the
 * default when absent; NULL when absent without default). */
static int get_str(struct dec *d, const json_t *obj, const char *key, const char *def, int p,
                   char **out) {
  json_t *v = field(obj, key);
  *out = NULL;
  size_t old = path_push(d, key);
  if (v && !json_is_string(v)) return type_error(d, v, "a string");
  const char *s = v ? json_string_value(v) : def;
  if (s && v && p >= 0) {
    int rc = check_pattern(d, s, (enum gpc_pattern)p);
    if (rc) return rc;
  }
  path_pop(d, old);
  *out = s ? gpc_strdup(s) : NULL;
  return GPC_OK;
}

/* `value` is none of `names` (NULL-terminated); d->path names the field. */
static int unsupported(struct dec *d, const char *value, const char *const *names) {
  char supported[160] = "";
  for (int i = 0; names[i]; i++) {
    size_t l = strlen(supported);
    snprintf(supported + l, sizeof supported - l, "%s\"%s\"", i ? ", " : "", names[i]);
  }
  return fail(d, "Unsupported value: \"%.80s\": supported values: %s", value, supported);
}

static int get_enum(struct dec *d, const json_t *obj, const char *key, const char *const *names,
                    int def, int *out) {
  json_t *v = field(obj, key);
  *out = def;
  if (!v) return GPC_OK;
  size_t old = path_push(d, key);
  if (!json_is_string(v)) return type_error(d, v, "a string");
  for (int i = 0; names[i]; i++) {
    if (strcmp(names[i], json_string_value(v)) == 0) {
      *out = i;
      path_pop(d, old);
      return GPC_OK;
    }
  }
  return unsupported(d, json_string_value(v), names);
}

/* int-or-percent: a JSON integer >= 1, or a string "N" / "N%". */
static int get_int_or_percent(struct dec *d, const json_t *obj, const char *key, const char *def,
                              char **out, bool *is_percent) {
  json_t *v = field(obj, key);
  size_t old = path_push(d, key);
  char buf[32];
  const char *s = def;
  if (v && json_is_integer(v)) {
    json_int_t n = json_integer_value(v);
    if (n < 1)
      return fail(d, "Invalid value: %lld: must be greater than or equal to 1", (long long)n);
    snprintf(buf, sizeof buf, "%lld", (long long)n);
    s = buf;
  } else if (v && json_is_string(v)) {
    s = json_string_value(v);
    int rc = check_pattern(d, s, GPC_PAT_INT_OR_PERCENT);
    if (rc) return rc;
  } else if (v) {
    return type_error(d, v, "an integer or a percentage string");
  }
  path_pop(d, old);
  *out = gpc_strdup(s);
  *is_percent = strchr(s, '%') != NULL;
  return GPC_OK;
}

/* An object whose values are strings; keys must be qualified names and, when
 * `label_values`, values must be label values. *out is a new reference ({}
 * when absent). */
static int get_string_map(struct dec *d, const json_t *obj, const char *key, bool label_values,
                          json_t **out) {
  json_t *v = field(obj, key);
  size_t old = path_push(d, key);
  *out = NULL;
  if (v && !json_is_object(v)) return type_error(d, v, "an object of strings");
  const char *k;
  json_t *val;
  json_object_foreach(v, k, val) {
    size_t o2 = path_push(d, k);
    if (!json_is_string(val)) return type_error(d, val, "a string");
    if (!gpc_pattern_match(GPC_PAT_QUALIFIED_NAME, k))
      return fail(d, "Invalid key: \"%.80s\": must be %s", k,
                  gpc_pattern_what(GPC_PAT_QUALIFIED_NAME));
    if (label_values) {
      int rc = check_pattern(d, json_string_value(val), GPC_PAT_LABEL_VALUE);
      if (rc) return rc;
    }
    path_pop(d, o2);
  }
  path_pop(d, old);
  *out = v ? json_deep_copy(v) : json_object();
  return GPC_OK;
}

/* An array of strings, each matching `p` (< 0: any). New reference ([] when
 * absent). Duplicates are refused when `unique`. */
static int get_string_list(struct dec *d, const json_t *obj, const char *key, int p, bool unique,
                           json_t **out) {
  json_t *v = field(obj, key);
  size_t old = path_push(d, key);
  *out = NULL;
  if (v && !json_is_array(v)) return type_error(d, v, "an array of strings");
  size_t i;
  json_t *item;
  json_array_foreach(v, i, item) {
    size_t o2 = path_push_index(d, i);
    if (!json_is_string(item)) return type_error(d, item, "a string");
    if (p >= 0) {
      int rc = check_pattern(d, json_string_value(item), (enum gpc_pattern)p);
      if (rc) return rc;
    }
    for (size_t j = 0; unique && j < i; j++)
      if (json_equal(item, json_array_get(v, j)))
        return fail(d, "Duplicate value: \"%.80s\"", json_string_value(item));
    path_pop(d, o2);
  }
  path_pop(d, old);
  *out = v ? json_deep_copy(v) : json_array();
  return GPC_OK;
}

/* env: [{name, value}], names unique (the CRD declares a map-list keyed by
 * name, which is what lets server-side apply merge entries). */
static int get_env(struct dec *d, const json_t *obj, json_t **out) {
  static const char *const keys[] = {"name", "value", NULL};
  json_t *v = field(obj, "env");
  size_t old = path_push(d, "env");
  *out = NULL;
  if (v && !json_is_array(v)) return type_error(d, v, "an array");
  size_t i;
  json_t *item;
  json_array_foreach(v, i, item) {
    size_t o2 = path_push_index(d, i);
    if (!json_is_object(item)) return type_error(d, item, "an object");
    int rc = check_keys(d, item, keys);
    if (rc) return rc;
    json_t *name = field(item, "name"), *value = field(item, "value");
    if (!name) {
      path_push(d, "name");
      return fail(d, "Required value");
    }
    char *tmp = NULL;
    rc = get_str(d, item, "name", NULL, GPC_PAT_ENV_NAME, &tmp);
    free(tmp);
    if (rc) return rc;
    if (value && !json_is_string(value)) {
      path_push(d, "value");
      return type_error(d, value, "a string");
    }
    for (size_t j = 0; j < i; j++)
      if (json_equal(name, json_object_get(json_array_get(v, j), "name")))
        return fail(d, "Duplicate value: {\"name\":\"%.80s\"}", json_string_value(name));
    path_pop(d, o2);
  }
  path_pop(d, old);
  *out = v ? json_deep_copy(v) : json_array();
  return GPC_OK;
}

/* resources: {limits?, requests?}, each {resourceName: quantity}. */
static int get_quantity_map(struct dec *d, const json_t *obj, const char *key) {
  json_t *v = field(obj, key);
  size_t old = path_push(d, key);
  if (v && !json_is_object(v)) return type_error(d, v, "an object");
  const char *k;
  json_t *q;
  json_object_foreach(v, k, q) {
    size_t o2 = path_push(d, k);
    if (!gpc_pattern_match(GPC_PAT_QUALIFIED_NAME, k))
      return fail(d, "Invalid key: \"%.80s\": must be %s", k,
                  gpc_pattern_what(GPC_PAT_QUALIFIED_NAME));
    if (json_is_integer(q)) {
      if (json_integer_value(q) < 0)
        return fail(d, "Invalid value: %lld: must be greater than or equal to 0",
                    (long long)json_integer_value(q));
    } else if (json_is_string(q)) {
      int rc = check_pattern(d, json_string_value(q), GPC_PAT_QUANTITY);
      if (rc) return rc;
    } else {
      return type_error(d, q, "a quantity (string or integer)");
    }
    path_pop(d, o2);
  }
  path_pop(d, old);
  return GPC_OK;
}

static int get_resources(struct dec *d, const json_t *obj, json_t **out) {
  static const char *const keys[] = {"limits", "requests", NULL};
  const json_t *v;
  size_t old;
  *out = NULL;
  int rc = sub_object(d, obj, "resources", &v, &old);
  if (!rc && v) rc = check_keys(d, v, keys);
  if (!rc) rc = get_quantity_map(d, v, "limits");
  if (!rc) rc = get_quantity_map(d, v, "requests");
  if (rc) return rc;
  path_pop(d, old);
  *out = v ? json_deep_copy(v) : json_object();
  return GPC_OK;
}

/* ---- operands -------------------------------------------------------------- */

static int decode_operand_common(struct dec *d, const json_t *o, enum gpc_operand op,
                                 struct gpc_operand_spec *s) {
  const struct operand_defaults *def = &operand_defaults[op];
  int pull = GPC_PULL_IF_NOT_PRESENT;
  int rc = get_bool(d, o, "enabled", true, &s->enabled);
  if (!rc) rc = get_str(d, o, "repository", def->repository, GPC_PAT_REPOSITORY, &s->repository);
  if (!rc) rc = get_str(d, o, "image", def->image, GPC_PAT_IMAGE, &s->image);
  if (!rc) rc = get_str(d, o, "version", def->version, GPC_PAT_VERSION, &s->version);
  if (!rc) rc = get_enum(d, o, "imagePullPolicy", pull_names, GPC_PULL_IF_NOT_PRESENT, &pull);
  if (!rc)
    rc = get_string_list(d, o, "imagePullSecrets", GPC_PAT_DNS_SUBDOMAIN, true,
                         &s->image_pull_secrets);
  if (!rc) rc = get_env(d, o, &s->env);
  if (!rc) rc = get_string_list(d, o, "args", -1, false, &s->args);
  if (!rc) rc = get_resources(d, o, &s->resources);
  if (rc) return rc;
  s->pull_policy = (enum gpc_pull_policy)pull;
  bool digest = strncmp(s->version, "sha256:", 7) == 0;
  s->image_ref = gpc_asprintf("%s/%s%s%s", s->repository, s->image, digest ? "@" : ":", s->version);
  return GPC_OK;
}

static int compile_selector(struct dec *d, const json_t *sel, struct label_selector **out,
                            bool *empty);

/* An optional metav1.LabelSelector under `key`: NULL when absent or empty. */
static int pod_selector(struct dec *d, const json_t *obj, const char *key,
                        struct label_selector **out) {
  const json_t *sel;
  size_t old;
  bool empty = true;
  int rc = sub_object(d, obj, key, &sel, &old);
  if (!rc && sel) rc = compile_selector(d, sel, out, &empty);
  if (rc) return rc;
  path_pop(d, old);
  return GPC_OK;
}

static int decode_upgrade_policy(struct dec *d, const json_t *drv,
                                 struct gpc_driver_upgrade_policy *u) {
  static const char *const keys[] = {"autoUpgrade",    "paused", "maxParallelUpgrades",
                                     "maxUnavailable", "drain",  "waitForCompletion",
                                     "podDeletion",    NULL};
  static const char *const drain_keys[] = {"enable",         "force",       "timeoutSeconds",
                                           "deleteEmptyDir", "podSelector", NULL};
  static const char *const wait_keys[] = {"podSelector", "timeoutSeconds", NULL};
  static const char *const del_keys[] = {"force", "timeoutSeconds", "deleteEmptyDir", NULL};
  const json_t *v, *dr, *w, *pd;
  size_t old, old2;
  int rc = sub_object(d, drv, "upgradePolicy", &v, &old);
  if (!rc && v) rc = check_keys(d, v, keys);
  if (!rc) rc = get_bool(d, v, "autoUpgrade", false, &u->auto_upgrade);
  if (!rc) rc = get_bool(d, v, "paused", false, &u->paused);
  if (!rc) rc = get_int(d, v, "maxParallelUpgrades", 1, 0, 10000, &u->max_parallel_upgrades);
  if (!rc)
    rc = get_int_or_percent(d, v, "maxUnavailable", "25%", &u->max_unavailable,
                            &u->max_unavailable_is_percent);
  if (!rc) rc = sub_object(d, v, "waitForCompletion", &w, &old2);
  if (!rc && w) rc = check_keys(d, w, wait_keys);
  if (!rc) rc = pod_selector(d, w, "podSelector", &u->wait_for_completion.pod_selector);
  if (!rc)
    rc = get_int(d, w, "timeoutSeconds", 0, 0, 86400, &u->wait_for_completion.timeout_seconds);
  if (rc) return rc;
  path_pop(d, old2);
  rc = sub_object(d, v, "podDeletion", &pd, &old2);
  if (!rc && pd) rc = check_keys(d, pd, del_keys);
  if (!rc) rc = get_bool(d, pd, "force", false, &u->pod_deletion.force);
  if (!rc) rc = get_int(d, pd, "timeoutSeconds", 300, 0, 86400, &u->pod_deletion.timeout_seconds);
  if (!rc) rc = get_bool(d, pd, "deleteEmptyDir", false, &u->pod_deletion.delete_empty_dir);
  if (rc) return rc;
  path_pop(d, old2);
  rc = sub_object(d, v, "drain", &dr, &old2);
  if (!rc && dr) rc = check_keys(d, dr, drain_keys);
  if (!rc) rc = get_bool(d, dr, "enable", false, &u->drain.enable);
  if (!rc) rc = get_bool(d, dr, "force", false, &u->drain.force);
  if (!rc) rc = get_int(d, dr, "timeoutSeconds", 300, 0, 86400, &u->drain.timeout_seconds);
  if (!rc) rc = get_bool(d, dr, "deleteEmptyDir", false, &u->drain.delete_empty_dir);
  if (!rc) rc = pod_selector(d, dr, "podSelector", &u->drain.pod_selector);
  if (rc) return rc;
  path_pop(d, old2);
  path_pop(d, old);
  return GPC_OK;
}

static int decode_toolkit_opts(struct dec *d, const json_t *o, struct gpc_toolkit_opts *t) {
  int rt = GPC_RUNTIME_DETECT;
  int rc = get_enum(d, o, "runtime", runtime_names, GPC_RUNTIME_DETECT, &rt);
  if (rc) return rc;
  t->runtime = (enum gpc_runtime)rt;
  rc = get_str(d, o, "runtimeConfig", runtime_config_default[rt], GPC_PAT_ABS_PATH,
               &t->runtime_config);
  if (!rc)
    rc = get_str(d, o, "runtimeSocket", runtime_socket_default[rt], GPC_PAT_ABS_PATH,
                 &t->runtime_socket);
  if (!rc) rc = get_str(d, o, "installDir", "/usr/local/nvidia", GPC_PAT_ABS_PATH, &t->install_dir);
  return rc;
}

static int decode_dcgm_opts(struct dec *d, const json_t *o, struct gpc_dcgm_exporter_opts *x) {
  static const char *const svc_keys[] = {"type", "port", NULL};
  static const char *const sm_keys[] = {"enabled", "interval", "additionalLabels", NULL};
  const json_t *svc, *sm;
  size_t old;
  int type = GPC_SVC_CLUSTER_IP;
  int rc = sub_object(d, o, "service", &svc, &old);
  if (!rc && svc) rc = check_keys(d, svc, svc_keys);
  if (!rc) rc = get_enum(d, svc, "type", service_names, GPC_SVC_CLUSTER_IP, &type);
  if (!rc) rc = get_int(d, svc, "port", 9400, 1, 65535, &x->service.port);
  if (rc) return rc;
  x->service.type = (enum gpc_service_type)type;
  path_pop(d, old);
  rc = sub_object(d, o, "serviceMonitor", &sm, &old);
  if (!rc && sm) rc = check_keys(d, sm, sm_keys);
  if (!rc) rc = get_bool(d, sm, "enabled", false, &x->service_monitor.enabled);
  if (!rc) rc = get_str(d, sm, "interval", "15s", GPC_PAT_DURATION, &x->service_monitor.interval);
  if (!rc)
    rc = get_string_map(d, sm, "additionalLabels", true, &x->service_monitor.additional_labels);
  if (rc) return rc;
  path_pop(d, old);
  return GPC_OK;
}

#define COMMON_KEYS                                                                                \
  "enabled", "repository", "image", "version", "imagePullPolicy", "imagePullSecrets", "env",       \
      "args", "resources"

static int decode_operand(struct dec *d, const json_t *spec, enum gpc_operand op,
                          struct gpc_policy *p) {
  static const char *const common[] = {COMMON_KEYS, NULL};
  static const char *const driver[] = {COMMON_KEYS, "upgradePolicy", NULL};
  static const char *const toolkit[] = {COMMON_KEYS,     "runtime",    "runtimeConfig",
                                        "runtimeSocket", "installDir", NULL};
  static const char *const dcgm[] = {COMMON_KEYS, "service", "serviceMonitor", NULL};
  const char *const *keys = op == GPC_OP_DRIVER          ? driver
                            : op == GPC_OP_TOOLKIT       ? toolkit
                            : op == GPC_OP_DCGM_EXPORTER ? dcgm
                                                         : common;
  const json_t *o;
  size_t old;
  int rc = sub_object(d, spec, operand_keys[op], &o, &old);
  if (!rc && o) rc = check_keys(d, o, keys);
  if (!rc) rc = decode_operand_common(d, o, op, &p->operands[op]);
  if (!rc && op == GPC_OP_DRIVER) rc = decode_upgrade_policy(d, o, &p->driver_upgrade);
  if (!rc && op == GPC_OP_TOOLKIT) rc = decode_toolkit_opts(d, o, &p->toolkit);
  if (!rc && op == GPC_OP_DCGM_EXPORTER) rc = decode_dcgm_opts(d, o, &p->dcgm_exporter);
  if (rc) return rc;
  path_pop(d, old);
  return GPC_OK;
}

/* ---- daemonsets ------------------------------------------------------------ */

static int check_toleration(struct dec *d, const json_t *t) {
  static const char *const keys[] = {"key",    "operator",          "value",
                                     "effect", "tolerationSeconds", NULL};
  static const char *const ops[] = {"Exists", "Equal", NULL};
  static const char *const effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute", NULL};
  if (!json_is_object(t)) return type_error(d, t, "an object");
  int op = 1, eff = 0;
  char *key = NULL, *value = NULL;
  int rc = check_keys(d, t, keys);
  if (!rc) rc = get_str(d, t, "key", NULL, GPC_PAT_QUALIFIED_NAME, &key);
  if (!rc) rc = get_enum(d, t, "operator", ops, 1, &op);
  if (!rc) rc = get_str(d, t, "value", NULL, GPC_PAT_LABEL_VALUE, &value);
  if (!rc) rc = get_enum(d, t, "effect", effects, 0, &eff);
  json_t *secs = field(t, "tolerationSeconds");
  if (!rc && secs && !json_is_integer(secs)) {
    path_push(d, "tolerationSeconds");
    rc = type_error(d, secs, "an integer");
  }
  /* The API server's own rules for a Toleration. */
  if (!rc && op == 0 && value && value[0]) {
    path_push(d, "operator");
    rc = fail(d, "Invalid value: \"Exists\": value must be empty when operator is Exists");
  }
  if (!rc && !key && op != 0) {
    path_push(d, "operator");
    rc = fail(d, "Invalid value: \"Equal\": operator must be Exists when key is empty");
  }
  free(key);
  free(value);
  return rc;
}

static int get_tolerations(struct dec *d, const json_t *obj, json_t **out) {
  json_t *v = field(obj, "tolerations");
  size_t old = path_push(d, "tolerations");
  *out = NULL;
  if (!v) {
    /* Absent (not []): tolerate the taint GPU node pools commonly carry. */
    *out = json_pack("[{s:s, s:s, s:s}]", "key", "nvidia.com/gpu", "operator", "Exists", "effect",
                     "NoSchedule");
    path_pop(d, old);
    return GPC_OK;
  }
  if (!json_is_array(v)) return type_error(d, v, "an array");
  size_t i;
  json_t *t;
  json_array_foreach(v, i, t) {
    size_t o2 = path_push_index(d, i);
    int rc = check_toleration(d, t);
    if (rc) return rc;
    path_pop(d, o2);
  }
  path_pop(d, old);
  *out = json_deep_copy(v);
  return GPC_OK;
}

static int decode_daemonsets(struct dec *d, const json_t *spec, struct gpc_daemonset_common *c) {
  static const char *const keys[] = {"tolerations",
                                     "priorityClassName",
                                     "updateStrategy",
                                     "maxUnavailable",
                                     "labels",
                                     "annotations",
                                     NULL};
  const json_t *o;
  size_t old;
  int strategy = GPC_UPDATE_ROLLING;
  int rc = sub_object(d, spec, "daemonsets", &o, &old);
  if (!rc && o) rc = check_keys(d, o, keys);
  if (!rc) rc = get_tolerations(d, o, &c->tolerations);
  if (!rc)
    rc = get_str(d, o, "priorityClassName", "system-node-critical", GPC_PAT_DNS_SUBDOMAIN,
                 &c->priority_class_name);
  if (!rc) rc = get_enum(d, o, "updateStrategy", strategy_names, GPC_UPDATE_ROLLING, &strategy);
  if (!rc)
    rc = get_int_or_percent(d, o, "maxUnavailable", "1", &c->max_unavailable,
                            &c->max_unavailable_is_percent);
  if (!rc) rc = get_string_map(d, o, "labels", true, &c->labels);
  if (!rc) rc = get_string_map(d, o, "annotations", false, &c->annotations);
  if (rc) return rc;
  c->update_strategy = (enum gpc_update_strategy)strategy;
  path_pop(d, old);
  return GPC_OK;
}

/* ---- metadata and top level ------------------------------------------------ */

static int decode_metadata(struct dec *d, const json_t *obj, struct gpc_policy *p) {
  const json_t *m;
  size_t old;
  int rc = sub_object(d, obj, "metadata", &m, &old);
  if (rc) return rc;
  if (!m || !field(m, "name")) {
    path_push(d, "name");
    return fail(d, "Required value: name is required");
  }
  /* The name becomes the value of the gpupolicy.dev/policy node label, so it
   * must also be a label value (63 characters at most). */
  rc = get_str(d, m, "name", NULL, GPC_PAT_DNS_SUBDOMAIN, &p->name);
  if (!rc && (strlen(p->name) > 63 || !gpc_pattern_match(GPC_PAT_LABEL_VALUE, p->name))) {
    path_push(d, "name");
    return fail(d,
                "Invalid value: \"%.80s\": must be at most 63 characters (it is used as a "
                "node label value)",
                p->name);
  }
  if (!rc) rc = get_str(d, m, "uid", "", -1, &p->uid);
  if (!rc) rc = get_str(d, m, "resourceVersion", "", -1, &p->resource_version);
  if (!rc) rc = get_str(d, m, "creationTimestamp", "", -1, &p->creation_timestamp);
  if (rc) return rc;
  json_t *gen = field(m, "generation");
  if (gen && !json_is_integer(gen)) {
    path_push(d, "generation");
    return type_error(d, gen, "an integer");
  }
  p->generation = gen ? json_integer_value(gen) : 0;
  p->deleting = field(m, "deletionTimestamp") != NULL;
  size_t i;
  json_t *f;
  json_array_foreach(field(m, "finalizers"), i, f) {
    if (json_is_string(f) && strcmp(json_string_value(f), GPC_POLICY_FINALIZER) == 0)
      p->has_finalizer = true;
  }
  path_pop(d, old);
  return GPC_OK;
}

static int check_type_meta(struct dec *d, const json_t *obj) {
  json_t *av = field(obj, "apiVersion"), *kind = field(obj, "kind");
  if (av && (!json_is_string(av) || strcmp(json_string_value(av), GPC_POLICY_API_VERSION) != 0)) {
    path_push(d, "apiVersion");
    return fail(d, "Unsupported value: must be \"%s\"", GPC_POLICY_API_VERSION);
  }
  if (kind && (!json_is_string(kind) || strcmp(json_string_value(kind), GPC_POLICY_KIND) != 0)) {
    path_push(d, "kind");
    return fail(d, "Unsupported value: must be \"%s\"", GPC_POLICY_KIND);
  }
  return GPC_OK;
}

/* A selector_check_json fault in the API server's words, with the path of
 * the offending field (d->path names the selector). */
static int selector_fault_error(struct dec *d, const struct selector_fault *f) {
  if (f->list) path_push(d, f->list);
  if (f->label) path_push(d, f->label);
  if (f->expr >= 0) path_push_index(d, (size_t)f->expr);
  if (f->member) path_push(d, f->member);
  if (f->value >= 0) path_push_index(d, (size_t)f->value);
  bool in_labels = f->list && strcmp(f->list, "matchLabels") == 0;
  bool in_values = f->member && strcmp(f->member, "values") == 0;
  int rc;
  switch (f->kind) {
  case SELECTOR_FAULT_UNKNOWN_FIELD:
    return unknown_field(d, f->text);
  case SELECTOR_FAULT_TYPE:
    if (!f->list || (f->expr >= 0 && !f->member)) return type_error(d, f->node, "an object");
    if (in_labels && !f->label) return type_error(d, f->node, "an object of strings");
    if (!in_labels && f->expr < 0) return type_error(d, f->node, "an array");
    if (in_values && f->value < 0) return type_error(d, f->node, "an array of strings");
    return type_error(d, f->node, "a string");
  case SELECTOR_FAULT_REQUIRED:
    if (in_values)
      return fail(d, "Required value: must be specified when `operator` is 'In' or 'NotIn'");
    return fail(d, "Required value");
  case SELECTOR_FAULT_FORBIDDEN:
    return fail(d, "Forbidden: may not be specified when `operator` is 'Exists' or "
                   "'DoesNotExist'");
  case SELECTOR_FAULT_UNSUPPORTED:
    return unsupported(d, f->text, selector_operators);
  case SELECTOR_FAULT_BAD_KEY:
    if (in_labels)
      return fail(d, "Invalid key: \"%.80s\": must be %s", f->text,
                  gpc_pattern_what(GPC_PAT_QUALIFIED_NAME));
    rc = check_pattern(d, f->text, GPC_PAT_QUALIFIED_NAME);
    break;
  case SELECTOR_FAULT_BAD_VALUE:
    rc = check_pattern(d, f->text, GPC_PAT_LABEL_VALUE);
    break;
  default:
    rc = GPC_OK;
  }
  /* selector.c and the CRD's patterns state the same grammar; should they
   * ever disagree, selector.c's reason is still an error. */
  return rc ? rc : fail(d, "Invalid value: \"%.80s\": %s", f->text ? f->text : "", f->why);
}

/* Validates a metav1.LabelSelector with selector.c's one validator (strict:
 * unknown keys are refused) and reports its fault in the API server's words,
 * then compiles it with selector.c, which is what the planner matches nodes
 * with. *empty tells whether it selects "everything" (for a policy: default
 * GPU detection); an empty selector is not compiled. */
static int compile_selector(struct dec *d, const json_t *sel, struct label_selector **out,
                            bool *empty) {
  struct selector_fault f;
  *out = NULL;
  *empty = json_object_size(field(sel, "matchLabels")) == 0 &&
           json_array_size(field(sel, "matchExpressions")) == 0;
  if (!selector_check_json(sel, true, &f)) return selector_fault_error(d, &f);
  if (*empty) return GPC_OK;
  *out = selector_from_json(sel, d->path, d->err);
  return *out ? GPC_OK : GPC_E_INVAL;
}

static int decode_node_selector(struct dec *d, const json_t *spec, struct gpc_policy *p) {
  const json_t *sel;
  size_t old;
  int rc = sub_object(d, spec, "nodeSelector", &sel, &old);
  if (rc) return rc;
  p->node_selector = sel ? json_deep_copy(sel) : json_object();
  rc = compile_selector(d, p->node_selector, &p->selector, &p->node_selector_empty);
  if (rc) return rc;
  path_pop(d, old);
  return GPC_OK;
}

static int decode_spec(struct dec *d, const json_t *obj, struct gpc_policy *p) {
  static const char *const keys[] = {"nodeSelector", "daemonsets",   "driver",    "toolkit",
                                     "devicePlugin", "dcgmExporter", "validator", NULL};
  const json_t *spec;
  size_t old;
  int rc = sub_object(d, obj, "spec", &spec, &old);
  if (!rc && spec) rc = check_keys(d, spec, keys);
  if (!rc) rc = decode_node_selector(d, spec, p);
  if (!rc) rc = decode_daemonsets(d, spec, &p->daemonsets);
  for (int op = 0; !rc && op < GPC_OP_COUNT; op++)
    rc = decode_operand(d, spec, (enum gpc_operand)op, p);
  if (rc) return rc;
  path_pop(d, old);
  return GPC_OK;
}

int policy_from_json(const json_t *obj, struct gpc_policy **out, struct gpc_error *err) {
  struct dec d = {.err = err};
  *out = NULL;
  if (!json_is_object(obj))
    return gpc_fail(err, GPC_E_INVAL, "ClusterGPUPolicy: must be an object, got %s",
                    obj ? json_kind(obj) : "nothing");
  struct gpc_policy *p = gpc_calloc(1, sizeof *p);
  int rc = check_type_meta(&d, obj);
  if (!rc) rc = decode_metadata(&d, obj, p);
  if (!rc) rc = decode_spec(&d, obj, p);
  if (rc) {
    policy_free(p);
    return rc;
  }
  *out = p;
  return GPC_OK;
}

/* ---- freeing ----------------------------------------------------- */

static void operand_spec_free(struct gpc_operand_spec *s) {
  free(s->repository);
  free(s->image);
  free(s->version);
  free(s->image_ref);
  json_decref(s->image_pull_secrets);
  json_decref(s->env);
  json_decref(s->args);
  json_decref(s->resources);
}

void policy_free(struct gpc_policy *p) {
  if (!p) return;
  free(p->name);
  free(p->uid);
  free(p->resource_version);
  free(p->creation_timestamp);
  json_decref(p->node_selector);
  selector_free(p->selector);
  json_decref(p->daemonsets.tolerations);
  free(p->daemonsets.priority_class_name);
  free(p->daemonsets.max_unavailable);
  json_decref(p->daemonsets.labels);
  json_decref(p->daemonsets.annotations);
  for (int i = 0; i < GPC_OP_COUNT; i++)
    operand_spec_free(&p->operands[i]);
  free(p->driver_upgrade.max_unavailable);
  selector_free(p->driver_upgrade.wait_for_completion.pod_selector);
  selector_free(p->driver_upgrade.drain.pod_selector);
  free(p->toolkit.runtime_config);
  free(p->toolkit.runtime_socket);
  free(p->toolkit.install_dir);
  free(p->dcgm_exporter.service_monitor.interval);
  json_decref(p->dcgm_exporter.service_monitor.additional_labels);
  free(p);
}
