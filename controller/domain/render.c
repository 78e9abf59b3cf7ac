/* render.c — structured transforms from operand templates to objects. */
#include "render.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "model.h"

/* Where the driver container installs the driver on the host (the driver
 * template's /run/nvidia mount); "/" when the host carries its own driver. */
#define DRIVER_ROOT_CONTAINERIZED "/run/nvidia/driver"
#define DRIVER_ROOT_HOST "/"
#define RUNTIME_CONFIG_DIR "/runtime/config-dir"
#define RUNTIME_SOCK_DIR "/runtime/sock-dir"
/* With a host driver the toolkit finds it under the host root, which the
 * template mounts at /host (gpu-operator cmd/nvidia-validator/driver.go
 * getDriverInfo: driverRootCtrPath "/host"). */
#define HOST_ROOT_CTR_PATH "/host"
/* CRI-O in hook mode: the toolkit writes its OCI hook into cri-o's hooks
 * directory (nvidia-container-toolkit tools/container/crio: defaultHooksDir),
 * which must be the host's. */
#define CRIO_HOOKS_DIR "/usr/share/containers/oci/hooks.d"
#define VALIDATIONS_DIR "/run/nvidia/validations"

/* One DaemonSet of an operand: the plain one, or one per node runtime / OS
 * (design.md §3 "Node side"). */
struct variant {
  char suffix[40];          /* "" plain; "crio", "docker", "rhel9.4" */
  const char *label_key;    /* GPC_LABEL_RUNTIME / GPC_LABEL_OS, NULL: no node label */
  bool exclude;             /* plain with siblings: the label must be absent */
  enum gpc_runtime runtime; /* the runtime the operand runs under */
  const char *os;           /* driver: the image's OS suffix, NULL: version as is */
};

/* ---- small helpers ----------------------------------------------------- */

static void sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
  for (unsigned int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  out[64] = '\0';
}

/* Returns obj[key] as an object, creating it (or replacing a non-object). */
static json_t *obj_child(json_t *obj, const char *key) {
  json_t *c = json_object_get(obj, key);
  if (!json_is_object(c)) {
    c = json_object();
    json_object_set_new(obj, key, c);
  }
  return c;
}

static void set_str(json_t *obj, const char *key, const char *val) {
  json_object_set_new(obj, key, json_string(val));
}

/* Copies every member of `src` (may be NULL) into `dst`. */
static void merge_into(json_t *dst, const json_t *src) {
  if (json_is_object(src)) json_object_update(dst, (json_t *)src);
}

static bool is_dns1035_label(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > GPC_NAME_MAX || !islower((unsigned char)s[0])) return false;
  for (size_t i = 0; i < n; i++)
    if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
      return false;
  return s[n - 1] != '-';
}

void render_object_name(const char *policy, const char *operand, char out[GPC_NAME_MAX + 1]) {
  char full[512];
  int n = snprintf(full, sizeof(full), "%s-%s", policy, operand);
  if (n > 0 && (size_t)n < sizeof(full) && is_dns1035_label(full)) {
    memcpy(out, full, (size_t)n + 1);
    return;
  }
  if (strlen(operand) > GPC_NAME_MAX - 12) operand = "x"; /* never: operand names are short */
  char hash[65];
  sha256_hex(policy, strlen(policy), hash);
  size_t room = GPC_NAME_MAX - 1 - 8 - 1 - strlen(operand);
  char prefix[GPC_NAME_MAX + 1];
  size_t k = 0;
  if (!isalpha((unsigned char)policy[0])) prefix[k++] = 'p';
  for (const char *c = policy; *c && k < room; c++) {
    unsigned char ch = (unsigned char)tolower((unsigned char)*c);
    prefix[k++] = (char)((islower(ch) || isdigit(ch)) ? ch : '-');
  }
  while (k > 0 && prefix[k - 1] == '-')
    k--;
  /* prefix "-" hash8 "-" operand fits in GPC_NAME_MAX by the choice of room */
  memcpy(out, prefix, k);
  out[k] = '-';
  memcpy(out + k + 1, hash, 8);
  out[k + 9] = '-';
  memcpy(out + k + 10, operand, strlen(operand) + 1);
}

void render_label_value(const char *in, char out[64]) {
  size_t k = 0;
  for (const char *c = in; *c && k < 63; c++) {
    unsigned char ch = (unsigned char)*c;
    out[k++] = (char)((isalnum(ch) || ch == '.' || ch == '_' || ch == '-') ? ch : '-');
  }
  out[k] = '\0';
  while (k > 0 && !isalnum((unsigned char)out[k - 1]))
    out[--k] = '\0';
  size_t start = 0;
  while (out[start] && !isalnum((unsigned char)out[start]))
    start++;
  if (start) memmove(out, out + start, k - start + 1);
}

void render_hash(const json_t *obj, char out[65]) {
  json_t *copy = json_deep_copy(obj);
  json_t *ann = json_object_get(json_object_get(copy, "metadata"), "annotations");
  if (json_is_object(ann)) {
    json_object_del(ann, GPC_ANNOTATION_RENDER_HASH);
    if (json_object_size(ann) == 0)
      json_object_del(json_object_get(copy, "metadata"), "annotations");
  }
  char *s = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
  sha256_hex(s, strlen(s), out);
  free(s);
  json_decref(copy);
}

const char *render_hash_of(const json_t *obj) {
  const char *h = json_string_value(
      json_object_get(json_object_get(json_object_get(obj, "metadata"), "annotations"),
                      GPC_ANNOTATION_RENDER_HASH));
  return h ? h : "";
}

/* ---- node variants ----------------------------------------------------------- */

const char *render_version_os(const char *version) {
  if (!version || strncmp(version, "sha256:", 7) == 0) return NULL;
  static const char *const oses[] = {"ubuntu", "rhel", "rocky", "centos", "sles", "amzn", NULL};
  const char *dash = strrchr(version, '-');
  if (!dash) return NULL;
  for (int i = 0; oses[i]; i++) {
    size_t n = strlen(oses[i]);
    if (strncmp(dash + 1, oses[i], n) != 0) continue;
    const char *v = dash + 1 + n;
    if (!isdigit((unsigned char)*v)) return NULL;
    while (isdigit((unsigned char)*v) || *v == '.')
      v++;
    return *v ? NULL : dash + 1;
  }
  return NULL;
}

static bool runtime_dependent(enum gpc_operand op) {
  return op == GPC_OP_TOOLKIT || op == GPC_OP_DEVICE_PLUGIN || op == GPC_OP_DCGM_EXPORTER ||
         op == GPC_OP_VALIDATOR;
}

/* The operand's DaemonSets: runtime-dependent operands one per runtime among
 * the nodes (only with spec.toolkit.runtime "detect"), the driver one per OS
 * (unless its version is a digest). The default variant (containerd; the OS
 * the version names) keeps the plain name and, when it has siblings, runs only
 * where their node label is absent, so it never changes with the fleet. */
static size_t variants(const struct gpc_policy *p, enum gpc_operand op,
                       const struct gpc_render_opts *opts, struct variant *v, size_t cap) {
  enum gpc_runtime rt = p->toolkit.runtime;
  memset(v, 0, sizeof(*v) * cap);
  for (size_t i = 0; i < cap; i++)
    v[i].runtime = rt == GPC_RUNTIME_DETECT ? GPC_RUNTIME_CONTAINERD : rt;
  if (runtime_dependent(op)) {
    if (rt != GPC_RUNTIME_DETECT) return 1;
    unsigned have = opts->runtimes ? opts->runtimes : 1u << GPC_RUNTIME_CONTAINERD;
    bool others = (have & ~(1u << GPC_RUNTIME_CONTAINERD)) != 0;
    size_t n = 0;
    if (have & (1u << GPC_RUNTIME_CONTAINERD)) {
      v[n].exclude = others;
      v[n++].label_key = GPC_LABEL_RUNTIME;
    }
    for (int r = GPC_RUNTIME_DOCKER; r <= GPC_RUNTIME_CRIO && n < cap; r++) {
      if (!(have & (1u << r))) continue;
      snprintf(v[n].suffix, sizeof(v[n].suffix), "%s", gpc_runtime_name((enum gpc_runtime)r));
      v[n].label_key = GPC_LABEL_RUNTIME;
      v[n++].runtime = (enum gpc_runtime)r;
    }
    return n;
  }
  if (op != GPC_OP_DRIVER) return 1;
  const char *version = p->operands[op].version;
  if (strncmp(version, "sha256:", 7) == 0) return 1;
  /* The plain DaemonSet is for the OS the version names, else the default
   * OS, so that dropping or adding the suffix never renames it (a rename
   * would delete every driver pod at once). */
  const char *named = render_version_os(version);
  const char *def = named ? named : GPC_DEFAULT_OS;
  size_t n = 0;
  bool def_present = opts->n_oses == 0, others = false;
  for (size_t i = 0; i < opts->n_oses; i++) {
    if (strcmp(opts->oses[i], def) == 0)
      def_present = true;
    else
      others = true;
  }
  if (def_present) {
    v[n].exclude = others;
    v[n].label_key = GPC_LABEL_OS;
    v[n++].os = named ? NULL : def;
  }
  for (size_t i = 0; i < opts->n_oses && n < cap; i++) {
    if (strcmp(opts->oses[i], def) == 0) continue;
    snprintf(v[n].suffix, sizeof(v[n].suffix), "%s", opts->oses[i]);
    v[n].label_key = GPC_LABEL_OS;
    v[n++].os = opts->oses[i];
  }
  return n;
}

/* ---- labels, metadata ----------------------------------------------------- */

/* Template labels, then the policy's spec.daemonsets.labels, then ours, which
 * nobody may override (selectors and the informers depend on them). */
static void apply_labels(json_t *labels, const struct gpc_policy *p, enum gpc_operand op) {
  const char *name = gpc_operand_name(op);
  char version[64];
  render_label_value(p->operands[op].version, version);
  merge_into(labels, p->daemonsets.labels);
  json_object_del(labels, "app.kubernetes.io/instance"); /* Argo CD's tracking label */
  set_str(labels, "app.kubernetes.io/name", name);
  set_str(labels, "app.kubernetes.io/component", name);
  set_str(labels, "app.kubernetes.io/part-of", GPC_MANAGED_BY);
  set_str(labels, "app.kubernetes.io/managed-by", GPC_MANAGED_BY);
  if (version[0]) set_str(labels, "app.kubernetes.io/version", version);
  set_str(labels, GPC_LABEL_POLICY, p->name);
}

/* The labels every selector of ours uses: stable across versions. */
static json_t *selector_labels(const struct gpc_policy *p, enum gpc_operand op) {
  return json_pack("{s:s, s:s}", "app.kubernetes.io/name", gpc_operand_name(op), GPC_LABEL_POLICY,
                   p->name);
}

static void set_metadata(json_t *obj, const struct gpc_policy *p, enum gpc_operand op,
                         const char *name, const char *ns, bool user_annotations) {
  json_t *md = obj_child(obj, "metadata");
  set_str(md, "name", name);
  if (ns)
    set_str(md, "namespace", ns);
  else
    json_object_del(md, "namespace");
  apply_labels(obj_child(md, "labels"), p, op);
  if (user_annotations && json_object_size(p->daemonsets.annotations) > 0)
    merge_into(obj_child(md, "annotations"), p->daemonsets.annotations);
  if (p->uid[0]) {
    json_t *ref = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "apiVersion", GPC_POLICY_API_VERSION,
                            "kind", GPC_POLICY_KIND, "name", p->name, "uid", p->uid, "controller",
                            1, "blockOwnerDeletion", 1);
    json_object_set_new(md, "ownerReferences", json_pack("[o]", ref));
  } else {
    json_object_del(md, "ownerReferences");
  }
}

/* ---- containers ------------------------------------------------------------ */

static json_t *find_named(json_t *arr, const char *name) {
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e) {
    const char *n = json_string_value(json_object_get(e, "name"));
    if (n && strcmp(n, name) == 0) return e;
  }
  return NULL;
}

/* Sets env `name` to a literal value, replacing any valueFrom. */
static void env_set(json_t *ctr, const char *name, const char *value) {
  json_t *env = json_object_get(ctr, "env");
  if (!json_is_array(env)) {
    env = json_array();
    json_object_set_new(ctr, "env", env);
  }
  json_t *e = find_named(env, name);
  if (e) {
    json_object_clear(e);
    set_str(e, "name", name);
    set_str(e, "value", value);
  } else {
    json_array_append_new(env, json_pack("{s:s, s:s}", "name", name, "value", value));
  }
}

static void env_del(json_t *ctr, const char *name) {
  json_t *env = json_object_get(ctr, "env");
  size_t i;
  json_t *e;
  json_array_foreach(env, i, e) {
    const char *n = json_string_value(json_object_get(e, "name"));
    if (n && strcmp(n, name) == 0) {
      json_array_remove(env, i);
      return;
    }
  }
}

static void set_host_path(json_t *pod, const char *volume, const char *path) {
  json_t *v = find_named(json_object_get(pod, "volumes"), volume);
  if (v) set_str(obj_child(v, "hostPath"), "path", path);
}

static void set_mount_path(json_t *ctr, const char *volume, const char *path) {
  json_t *m = find_named(json_object_get(ctr, "volumeMounts"), volume);
  if (m) set_str(m, "mountPath", path);
}

/* The spec's image, pull policy, env, args and resources. */
static void apply_main_container(json_t *ctr, const struct gpc_operand_spec *s) {
  set_str(ctr, "image", s->image_ref);
  set_str(ctr, "imagePullPolicy", gpc_pull_policy_name(s->pull_policy));
  size_t i;
  json_t *e;
  json_array_foreach(s->env, i, e) {
    const char *v = json_string_value(json_object_get(e, "value"));
    env_set(ctr, json_string_value(json_object_get(e, "name")), v ? v : "");
  }
  if (json_array_size(s->args) > 0) json_object_set_new(ctr, "args", json_deep_copy(s->args));
  if (json_object_size(s->resources) > 0)
    json_object_set_new(ctr, "resources", json_deep_copy(s->resources));
}

/* dirname/basename into caller buffers, for host paths like
 * /etc/containerd/config.toml. */
static void split_path(const char *path, char *dir, size_t dlen, const char **base) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(dir, dlen, ".");
    *base = path;
    return;
  }
  size_t n = (size_t)(slash - path);
  snprintf(dir, dlen, "%.*s", (int)(n ? n : 1), n ? path : "/");
  *base = slash + 1;
}

/* The toolkit edits the runtime's config and signals it through its socket;
 * both host directories are mounted at fixed container paths. */
static void apply_toolkit(json_t *pod, json_t *ctr, const struct gpc_policy *p,
                          enum gpc_runtime rt) {
  const struct gpc_toolkit_opts *tk = &p->toolkit;
  char cdir[512], sdir[512], buf[600];
  const char *cbase, *sbase;
  /* With "detect" the spec's paths (when given) apply to every runtime. */
  const char *config = tk->runtime_config && tk->runtime_config[0] ? tk->runtime_config
                                                                   : gpc_runtime_config_default(rt);
  const char *socket = tk->runtime_socket && tk->runtime_socket[0] ? tk->runtime_socket
                                                                   : gpc_runtime_socket_default(rt);
  split_path(config, cdir, sizeof(cdir), &cbase);
  split_path(socket, sdir, sizeof(sdir), &sbase);
  set_host_path(pod, "runtime-config", cdir);
  set_host_path(pod, "runtime-socket", sdir);
  env_set(ctr, "RUNTIME", gpc_runtime_name(rt));
  snprintf(buf, sizeof(buf), RUNTIME_CONFIG_DIR "/%s", cbase);
  env_set(ctr, "RUNTIME_CONFIG", buf);
  char sock[600];
  snprintf(sock, sizeof(sock), RUNTIME_SOCK_DIR "/%s", sbase);
  env_set(ctr, "RUNTIME_SOCKET", sock);
  const char *per_runtime[][2] = {{"CONTAINERD_CONFIG", "CONTAINERD_SOCKET"},
                                  {"DOCKER_CONFIG", "DOCKER_SOCKET"}};
  for (int r = 0; r < 2; r++) {
    bool mine = (r == 0 && rt == GPC_RUNTIME_CONTAINERD) || (r == 1 && rt == GPC_RUNTIME_DOCKER);
    if (mine) {
      env_set(ctr, per_runtime[r][0], buf);
      env_set(ctr, per_runtime[r][1], sock);
    } else {
      env_del(ctr, per_runtime[r][0]);
      env_del(ctr, per_runtime[r][1]);
    }
  }
  if (rt != GPC_RUNTIME_CONTAINERD) env_del(ctr, "CONTAINERD_RUNTIME_CLASS");
  if (rt == GPC_RUNTIME_CRIO) {
    /* Hook mode (the toolkit's default for cri-o, and gpu-operator's without
     * CDI): the OCI hook goes into the host's hooks directory; cri-o gets no
     * "nvidia" handler, so nothing on these nodes names the RuntimeClass. */
    env_set(ctr, "CRIO_CONFIG_MODE", "hook");
    env_set(ctr, "CRIO_HOOKS_DIR", CRIO_HOOKS_DIR);
    json_array_append_new(json_object_get(pod, "volumes"),
                          json_pack("{s:s, s:{s:s, s:s}}", "name", "crio-hooks", "hostPath", "path",
                                    CRIO_HOOKS_DIR, "type", "DirectoryOrCreate"));
    json_array_append_new(
        json_object_get(ctr, "volumeMounts"),
        json_pack("{s:s, s:s}", "name", "crio-hooks", "mountPath", CRIO_HOOKS_DIR));
  }
  /* The runtime config names binaries by their host path, so the install
   * dir is mounted at the same path inside the container. */
  env_set(ctr, "ROOT", tk->install_dir);
  set_host_path(pod, "toolkit-install-dir", tk->install_dir);
  set_mount_path(ctr, "toolkit-install-dir", tk->install_dir);
  /* Ready = the runtime is configured (what the next stage needs), not just
   * a binary on a hostPath that survives restarts; toolkit-ready is what the
   * later operands' init containers wait for. */
  json_t *probe = json_object_get(json_object_get(ctr, "readinessProbe"), "exec");
  if (json_is_object(probe)) {
    char cmd[1400];
    if (rt == GPC_RUNTIME_CRIO)
      snprintf(cmd, sizeof(cmd), "test -f %s/oci-nvidia-hook.json && touch %s/toolkit-ready",
               CRIO_HOOKS_DIR, VALIDATIONS_DIR);
    else
      snprintf(cmd, sizeof(cmd),
               "test -x %s/toolkit/nvidia-container-runtime && grep -q nvidia %s && touch "
               "%s/toolkit-ready",
               tk->install_dir, buf, VALIDATIONS_DIR);
    json_object_set_new(probe, "command", json_pack("[s, s, s]", "sh", "-c", cmd));
  }
}

/* ---- pod and DaemonSet ------------------------------------------------------ */

static void apply_pull_secrets(json_t *pod, const json_t *names) {
  if (json_array_size(names) == 0) return;
  json_t *list = json_object_get(pod, "imagePullSecrets");
  if (!json_is_array(list)) {
    list = json_array();
    json_object_set_new(pod, "imagePullSecrets", list);
  }
  size_t i;
  json_t *n;
  json_array_foreach(names, i, n) {
    if (!find_named(list, json_string_value(n)))
      json_array_append_new(list, json_pack("{s:O}", "name", n));
  }
}

static void apply_scheduling(json_t *pod, const struct gpc_policy *p, enum gpc_operand op,
                             const struct variant *v) {
  char key[128];
  snprintf(key, sizeof(key), GPC_LABEL_PREFIX "%s", gpc_operand_name(op));
  json_object_set_new(pod, "nodeSelector",
                      json_pack("{s:s, s:s}", GPC_LABEL_POLICY, p->name, key, "true"));
  if (v->suffix[0] && v->label_key)
    set_str(json_object_get(pod, "nodeSelector"), v->label_key, v->suffix);
  if (v->exclude)
    json_object_set_new(pod, "affinity",
                        json_pack("{s:{s:{s:[{s:[{s:s, s:s}]}]}}}", "nodeAffinity",
                                  "requiredDuringSchedulingIgnoredDuringExecution",
                                  "nodeSelectorTerms", "matchExpressions", "key", v->label_key,
                                  "operator", "DoesNotExist"));
  if (json_array_size(p->daemonsets.tolerations) > 0)
    json_object_set_new(pod, "tolerations", json_deep_copy(p->daemonsets.tolerations));
  else
    json_object_del(pod, "tolerations");
  if (p->daemonsets.priority_class_name && p->daemonsets.priority_class_name[0])
    set_str(pod, "priorityClassName", p->daemonsets.priority_class_name);
  else
    json_object_del(pod, "priorityClassName");
}

static json_t *update_strategy(const struct gpc_policy *p, enum gpc_operand op) {
  /* Replacing a driver pod unloads the kernel modules under running
   * workloads: the driver only rolls when a pod is deleted on purpose. */
  if (op == GPC_OP_DRIVER || p->daemonsets.update_strategy == GPC_UPDATE_ON_DELETE)
    return json_pack("{s:s}", "type", "OnDelete");
  const char *mu = p->daemonsets.max_unavailable;
  json_t *v = p->daemonsets.max_unavailable_is_percent ? json_string(mu)
                                                       : json_integer(strtoll(mu, NULL, 10));
  return json_pack("{s:s, s:{s:o}}", "type", "RollingUpdate", "rollingUpdate", "maxUnavailable", v);
}

/* Init containers run the main image (a shell is all they need; the
 * validator's image has none, its run the toolkit's, else the driver's); a
 * "wait-<operand>" one waits for that earlier stage's file under
 * /run/nvidia/validations and goes when that operand is disabled. */
static void apply_init_containers(json_t *pod, const json_t *ctr, const struct gpc_policy *p,
                                  enum gpc_operand op) {
  json_t *inits = json_object_get(pod, "initContainers");
  json_t *image = json_object_get(ctr, "image");
  json_t *shell = NULL;
  if (op == GPC_OP_VALIDATOR) {
    enum gpc_operand from = p->operands[GPC_OP_TOOLKIT].enabled ? GPC_OP_TOOLKIT : GPC_OP_DRIVER;
    shell = json_string(p->operands[from].image_ref);
    image = shell;
  }
  for (size_t i = json_array_size(inits); i-- > 0;) {
    json_t *ic = json_array_get(inits, i);
    const char *name = json_string_value(json_object_get(ic, "name"));
    int waited = name && strncmp(name, "wait-", 5) == 0 ? gpc_operand_from_name(name + 5) : -1;
    if (waited >= 0 && !p->operands[waited].enabled) {
      json_array_remove(inits, i);
      continue;
    }
    json_object_set(ic, "image", image);
    json_object_set(ic, "imagePullPolicy", json_object_get(ctr, "imagePullPolicy"));
  }
  json_decref(shell);
  if (inits && json_array_size(inits) == 0) json_object_del(pod, "initContainers");
}

static void driver_image(json_t *ctr, const struct gpc_operand_spec *s, const char *os) {
  const char *def = render_version_os(s->version);
  size_t base = def ? (size_t)(def - s->version) - 1 : strlen(s->version);
  char ref[1024];
  snprintf(ref, sizeof(ref), "%s/%s:%.*s-%s", s->repository, s->image, (int)base, s->version, os);
  set_str(ctr, "image", ref);
}

/* DRIVER_CONFIG_DIGEST: a restarted driver container (crash) whose
 * configuration matches the one that loaded the modules (the digest the
 * script stored in /run/nvidia/nvidia-driver.state) reinstalls userspace
 * only instead of unloading modules the other operands hold (nvidia-driver
 * _should_skip_kernel_module_reload; gpu-operator sets it the same way). */
static void driver_config_digest(json_t *ctr) {
  env_del(ctr, "DRIVER_CONFIG_DIGEST");
  json_t *cfg = json_pack("{s:O*, s:O*, s:O*, s:O*}", "image", json_object_get(ctr, "image"), "env",
                          json_object_get(ctr, "env"), "args", json_object_get(ctr, "args"),
                          "command", json_object_get(ctr, "command"));
  char *s = json_dumps(cfg, JSON_SORT_KEYS | JSON_COMPACT);
  char h[65];
  sha256_hex(s, strlen(s), h);
  h[16] = '\0';
  /* first, so the spec's variables stay last as they were given */
  json_t *env = json_object_get(ctr, "env");
  if (!json_is_array(env)) {
    env = json_array();
    json_object_set_new(ctr, "env", env);
  }
  json_array_insert_new(env, 0,
                        json_pack("{s:s, s:s}", "name", "DRIVER_CONFIG_DIGEST", "value", h));
  free(s);
  json_decref(cfg);
}

static int transform_daemonset(json_t *ds, const struct gpc_policy *p, enum gpc_operand op,
                               const struct variant *v, struct gpc_error *err) {
  json_t *spec = obj_child(ds, "spec");
  json_object_set_new(spec, "selector", json_pack("{s:o}", "matchLabels", selector_labels(p, op)));
  json_object_set_new(spec, "updateStrategy", update_strategy(p, op));
  json_t *tmpl = obj_child(spec, "template");
  json_t *tmd = obj_child(tmpl, "metadata");
  apply_labels(obj_child(tmd, "labels"), p, op);
  if (json_object_size(p->daemonsets.annotations) > 0)
    merge_into(obj_child(tmd, "annotations"), p->daemonsets.annotations);
  json_t *pod = obj_child(tmpl, "spec");
  json_t *ctr = json_array_get(json_object_get(pod, "containers"), 0);
  if (!json_is_object(ctr))
    return gpc_fail(err, GPC_E_INVAL, "template %s: spec.template.spec.containers[0] missing",
                    gpc_operand_name(op));
  apply_scheduling(pod, p, op, v);
  apply_pull_secrets(pod, p->operands[op].image_pull_secrets);
  /* Operand-specific values first, so that spec.<operand>.env can still
   * override them. */
  bool host_driver = !p->operands[GPC_OP_DRIVER].enabled;
  if (op == GPC_OP_TOOLKIT || op == GPC_OP_DEVICE_PLUGIN)
    env_set(ctr, "NVIDIA_DRIVER_ROOT", host_driver ? DRIVER_ROOT_HOST : DRIVER_ROOT_CONTAINERIZED);
  /* The toolkit looks for the driver at DRIVER_ROOT_CTR_PATH (default
   * /run/nvidia/driver); a host driver is under the host root at /host. */
  if (op == GPC_OP_TOOLKIT && host_driver) env_set(ctr, "DRIVER_ROOT_CTR_PATH", HOST_ROOT_CTR_PATH);
  if (op == GPC_OP_TOOLKIT) apply_toolkit(pod, ctr, p, v->runtime);
  /* The RuntimeClass `nvidia` is named only where the node's runtime has
   * that handler: containerd (our toolkit, or a host's `nvidia-ctk runtime
   * configure`). cri-o in hook mode has no such handler, and cri-dockerd
   * refuses any handler; there the nvidia runtime is the default. */
  if (v->runtime != GPC_RUNTIME_CONTAINERD) json_object_del(pod, "runtimeClassName");
  apply_main_container(ctr, &p->operands[op]);
  if (v->os) driver_image(ctr, &p->operands[op], v->os);
  apply_init_containers(pod, ctr, p, op);
  if (op == GPC_OP_DRIVER) driver_config_digest(ctr);
  return GPC_OK;
}

static void transform_service(json_t *svc, const struct gpc_policy *p, enum gpc_operand op) {
  json_t *spec = obj_child(svc, "spec");
  json_object_set_new(spec, "selector", selector_labels(p, op));
  if (op != GPC_OP_DCGM_EXPORTER) return;
  set_str(spec, "type", gpc_service_type_name(p->dcgm_exporter.service.type));
  json_t *port = json_array_get(json_object_get(spec, "ports"), 0);
  if (json_is_object(port))
    json_object_set_new(port, "port", json_integer(p->dcgm_exporter.service.port));
}

static json_t *service_monitor(const struct gpc_policy *p, const char *name, const char *ns) {
  const enum gpc_operand op = GPC_OP_DCGM_EXPORTER;
  json_t *sm = json_pack("{s:s, s:s, s:{}, s:{s:{s:o}, s:{s:[s]}, s:[{s:s, s:s, s:s}]}}",
                         "apiVersion", "monitoring.coreos.com/v1", "kind", "ServiceMonitor",
                         "metadata", "spec", "selector", "matchLabels", selector_labels(p, op),
                         "namespaceSelector", "matchNames", ns, "endpoints", "port", "metrics",
                         "path", "/metrics", "interval", p->dcgm_exporter.service_monitor.interval);
  set_metadata(sm, p, op, name, ns, false);
  /* Prometheus selects ServiceMonitors by label: the user's go on top of
   * the generic ones, under ours. */
  json_t *labels = json_object_get(json_object_get(sm, "metadata"), "labels");
  json_t *merged = json_deep_copy(p->dcgm_exporter.service_monitor.additional_labels);
  if (!json_is_object(merged)) merged = json_object();
  json_object_update(merged, labels);
  json_object_set_new(json_object_get(sm, "metadata"), "labels", merged);
  return sm;
}

/* ---- entry points ---------------------------------------------------------- */

static bool cluster_scoped(const char *kind) {
  static const char *const kinds[] = {"RuntimeClass", "ClusterRole", "ClusterRoleBinding",
                                      "PriorityClass", NULL};
  for (int i = 0; kinds[i]; i++)
    if (strcmp(kinds[i], kind) == 0) return true;
  return false;
}

static int check_policy_name(const char *name, struct gpc_error *err) {
  char v[64];
  render_label_value(name, v);
  if (name[0] == '\0' || strcmp(v, name) != 0)
    return gpc_fail(err, GPC_E_INVAL,
                    "metadata.name: \"%.80s\" must be a valid label value of at most 63 "
                    "characters (it is written as the node label %s)",
                    name, GPC_LABEL_POLICY);
  return GPC_OK;
}

/* Name for a template object: the base name for the DaemonSet, Service and
 * ServiceMonitor; "<policy>-<operand>-<template name>" for anything else
 * namespaced (ConfigMaps); the template's own name when cluster-scoped. */
static void object_name(const struct gpc_policy *p, enum gpc_operand op, const json_t *doc,
                        const char *base, char out[GPC_NAME_MAX + 1]) {
  const char *kind = json_string_value(json_object_get(doc, "kind"));
  const char *tname = json_string_value(json_object_get(json_object_get(doc, "metadata"), "name"));
  if (cluster_scoped(kind)) {
    snprintf(out, GPC_NAME_MAX + 1, "%s", tname);
  } else if (strcmp(kind, "DaemonSet") == 0 || strcmp(kind, "Service") == 0) {
    snprintf(out, GPC_NAME_MAX + 1, "%s", base);
  } else {
    char suffix[160];
    snprintf(suffix, sizeof(suffix), "%s-%s", gpc_operand_name(op), tname);
    render_object_name(p->name, suffix, out);
  }
}

static void add_hash(json_t *obj) {
  char h[65];
  render_hash(obj, h);
  set_str(obj_child(obj_child(obj, "metadata"), "annotations"), GPC_ANNOTATION_RENDER_HASH, h);
}

/* An object the API server would refuse (413) must not be sent and retried:
 * render fails instead, and the policy goes Stalled naming the operand. */
static int check_size(const json_t *obj, enum gpc_operand op, struct gpc_error *err) {
  size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
  if (n <= GPC_MAX_REQUEST_BYTES) return GPC_OK;
  const json_t *md = json_object_get(obj, "metadata");
  return gpc_fail(err, GPC_E_TOO_LARGE,
                  "spec.%s: the rendered %s %s is %zu bytes, more than the %u bytes the API server "
                  "accepts in one request; shorten its env, args or annotations",
                  gpc_operand_spec_key(op), json_string_value(json_object_get(obj, "kind")),
                  json_string_value(json_object_get(md, "name")), n, GPC_MAX_REQUEST_BYTES);
}

int render_operand(const struct gpc_policy *p, enum gpc_operand op, const struct gpc_templates *t,
                   const struct gpc_render_opts *opts, json_t **out, struct gpc_error *err) {
  *out = NULL;
  if ((int)op < 0 || op >= GPC_OP_COUNT)
    return gpc_fail(err, GPC_E_INVAL, "render: operand %d out of range", (int)op);
  int rc = check_policy_name(p->name, err);
  if (rc) return rc;
  json_t *result = json_array();
  /* The RuntimeClass is also wanted when a host's own toolkit set up the
   * handler (toolkit disabled): the pods on containerd still name it. */
  bool shared_only = !p->operands[op].enabled && op == GPC_OP_TOOLKIT && opts->include_shared;
  if (!p->operands[op].enabled && !shared_only) {
    *out = result;
    return GPC_OK;
  }
  const json_t *docs = templates_get(t, op);
  if (!json_is_array(docs)) {
    json_decref(result);
    return gpc_fail(err, GPC_E_NOT_FOUND, "render: no template for %s", gpc_operand_name(op));
  }
  struct variant vars[GPC_MAX_OS_VARIANTS];
  size_t nv = variants(p, op, opts, vars, GPC_MAX_OS_VARIANTS);
  char base[GPC_NAME_MAX + 1], name[GPC_NAME_MAX + 1];
  for (size_t vi = 0; vi < nv; vi++) {
    const struct variant *v = &vars[vi];
    char vname[1200];
    snprintf(vname, sizeof(vname), "%s%s%s", gpc_operand_name(op), v->suffix[0] ? "-" : "",
             v->suffix);
    for (char *c = vname; *c; c++)
      if (*c == '.') *c = '-'; /* rhel9.4 -> rhel9-4: names are DNS labels */
    render_object_name(p->name, vname, base);
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc) {
      const char *kind = json_string_value(json_object_get(doc, "kind"));
      bool shared = cluster_scoped(kind);
      bool is_ds = strcmp(kind, "DaemonSet") == 0;
      if (shared && !opts->include_shared) continue;
      if (shared_only && !shared) continue;
      if (vi > 0 && !is_ds) continue; /* one Service, RuntimeClass, ... for all variants */
      json_t *obj = json_deep_copy(doc);
      char plain[GPC_NAME_MAX + 1];
      render_object_name(p->name, gpc_operand_name(op), plain);
      object_name(p, op, doc, is_ds ? base : plain, name);
      set_metadata(obj, p, op, name, shared ? NULL : opts->namespace, is_ds);
      if (is_ds) rc = transform_daemonset(obj, p, op, v, err);
      if (strcmp(kind, "Service") == 0) transform_service(obj, p, op);
      if (rc) {
        json_decref(obj);
        json_decref(result);
        return rc;
      }
      json_array_append_new(result, obj);
    }
  }
  size_t i;
  json_t *doc;
  render_object_name(p->name, gpc_operand_name(op), base);
  if (op == GPC_OP_DCGM_EXPORTER && p->dcgm_exporter.service_monitor.enabled)
    json_array_append_new(result, service_monitor(p, base, opts->namespace));
  json_array_foreach(result, i, doc) {
    add_hash(doc);
    if ((rc = check_size(doc, op, err))) {
      json_decref(result);
      return rc;
    }
  }
  *out = result;
  return GPC_OK;
}

int render_policy(const struct gpc_policy *p, const struct gpc_templates *t,
                  const struct gpc_render_opts *opts, json_t **out, struct gpc_error *err) {
  *out = NULL;
  json_t *all = json_array();
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    json_t *objs = NULL;
    int rc = render_operand(p, (enum gpc_operand)op, t, opts, &objs, err);
    if (rc) {
      json_decref(all);
      return rc;
    }
    json_array_extend(all, objs);
    json_decref(objs);
  }
  *out = all;
  return GPC_OK;
}
