/* test_render.c — templates + render: golden files per operand and per
 * sample policy, apps/v1 validity of every rendered DaemonSet, and the
 * individual transforms (names, labels, hash, env merge, strategies).
 *
 * GOLDEN_UPDATE=1 rewrites test/golden/ from the current output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "model.h"
#include "policy.h"
#include "render.h"
#include "templates.h"
#include "yaml2json.h"

static struct gpc_templates *tpl;
static const struct gpc_render_opts opts = {.namespace = "gpu-policy-system",
                                            .include_shared = true};

static struct gpc_policy *load_policy(const char *path) {
  struct gpc_policy *p = NULL;
  struct gpc_error err = {0};
  int rc = policy_from_file(path, &p, &err);
  if (rc) fail_msg("%s: %s", path, err.msg);
  return p;
}

static struct gpc_policy *policy_yaml(const char *yaml) {
  struct gpc_error err = {0};
  json_t *j = yaml2json_parse(yaml, strlen(yaml), 0, &err);
  if (!j) fail_msg("yaml: %s", err.msg);
  struct gpc_policy *p = NULL;
  if (policy_from_json(j, &p, &err)) fail_msg("policy: %s", err.msg);
  json_decref(j);
  return p;
}

static json_t *render_op(const struct gpc_policy *p, enum gpc_operand op) {
  json_t *out = NULL;
  struct gpc_error err = {0};
  if (render_operand(p, op, tpl, &opts, &out, &err)) fail_msg("render: %s", err.msg);
  return out;
}

static json_t *find_kind(const json_t *objs, const char *kind) {
  size_t i;
  json_t *o;
  json_array_foreach(objs, i, o) {
    if (strcmp(json_string_value(json_object_get(o, "kind")), kind) == 0) return o;
  }
  return NULL;
}

/* --- golden comparison ------------------------------------------------------ */

static char *to_yaml(const json_t *objs) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  size_t i;
  json_t *o;
  json_array_foreach(objs, i, o) {

    struct gpc_error err = {0};
    assert_int_equal(yaml2json_emit(o, f, &err), GPC_OK);
  }
  fclose(f);
  return buf;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = gpc_malloc((size_t)n + 1);
  size_t got = fread(s, 1, (size_t)n, f);
  s[got] = '\0';
  fclose(f);
  return s;
}

static void check_golden(const char *path, const json_t *objs) {
  char *got = to_yaml(objs);
  const char *upd = getenv("GOLDEN_UPDATE");
  if (upd && strcmp(upd, "1") == 0) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(got, f);
    fclose(f);
  }
  char *want = slurp(path);
  if (!want) fail_msg("%s missing: run with GOLDEN_UPDATE=1", path);
  if (strcmp(got, want) != 0) {
    fprintf(stderr, "golden mismatch for %s; got:\n%s\n", path, got);
    fail_msg("%s differs (GOLDEN_UPDATE=1 regenerates after review)", path);
  }
  free(got);
  free(want);
  /* The golden YAML parses back to exactly what was rendered. */
  struct gpc_error err = {0};
  char *again = slurp(path);
  json_t *docs = yaml2json_parse_docs(again, strlen(again), 0, &err);
  assert_non_null(docs);
  assert_true(json_equal(docs, (json_t *)objs));
  json_decref(docs);
  free(again);
}

/* --- apps/v1 DaemonSet validity ------------------------------------------------ */

static void check_daemonset(const json_t *ds) {
  assert_string_equal(json_string_value(json_object_get(ds, "apiVersion")), "apps/v1");
  json_t *md = json_object_get(ds, "metadata");
  const char *name = json_string_value(json_object_get(md, "name"));
  assert_non_null(name);
  assert_true(strlen(name) <= GPC_NAME_MAX);
  assert_non_null(json_string_value(json_object_get(md, "namespace")));
  json_t *spec = json_object_get(ds, "spec");
  json_t *sel = json_object_get(json_object_get(spec, "selector"), "matchLabels");
  assert_true(json_object_size(sel) > 0);
  json_t *tlabels =
      json_object_get(json_object_get(json_object_get(spec, "template"), "metadata"), "labels");
  const char *k;
  json_t *v;
  json_object_foreach(sel, k, v) {
    /* the selector must select the template's pods */
    assert_true(json_equal(v, json_object_get(tlabels, k)));
  }
  assert_null(json_object_get(tlabels, "app.kubernetes.io/instance"));
  json_t *pod = json_object_get(json_object_get(spec, "template"), "spec");
  json_t *vols = json_object_get(pod, "volumes");
  const char *lists[] = {"initContainers", "containers"};
  int seen = 0;
  char names[32][64];
  for (int l = 0; l < 2; l++) {
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(pod, lists[l]), i, c) {
      const char *cn = json_string_value(json_object_get(c, "name"));
      assert_non_null(cn);
      assert_non_null(json_string_value(json_object_get(c, "image")));
      for (int j = 0; j < seen; j++)
        assert_string_not_equal(names[j], cn);
      snprintf(names[seen++], 64, "%s", cn);
      size_t m;
      json_t *mnt;
      json_array_foreach(json_object_get(c, "volumeMounts"), m, mnt) {
        const char *vn = json_string_value(json_object_get(mnt, "name"));
        bool found = false;
        size_t x;
        json_t *vol;
        json_array_foreach(vols, x, vol) {
          if (strcmp(json_string_value(json_object_get(vol, "name")), vn) == 0) found = true;
        }
        if (!found) fail_msg("%s: container %s mounts undefined volume %s", name, cn, vn);
      }
    }
  }
  assert_true(seen > 0);
  const char *strategy =
      json_string_value(json_object_get(json_object_get(spec, "updateStrategy"), "type"));
  assert_true(strcmp(strategy, "OnDelete") == 0 || strcmp(strategy, "RollingUpdate") == 0);
}

static void check_all(const json_t *objs) {
  size_t i;
  json_t *o;
  json_array_foreach(objs, i, o) {
    json_t *md = json_object_get(o, "metadata");
    assert_int_equal(strlen(render_hash_of(o)), 64);
    char h[65];
    render_hash(o, h);
    assert_string_equal(h, render_hash_of(o));
    json_t *labels = json_object_get(md, "labels");
    assert_string_equal(json_string_value(json_object_get(labels, "app.kubernetes.io/managed-by")),
                        "gpu-policy-controller");
    if (strcmp(json_string_value(json_object_get(o, "kind")), "DaemonSet") == 0) check_daemonset(o);
  }
}

/* --- tests ------------------------------------------------------------------------ */

static void test_golden_operands(void **state) {
  (void)state;
  struct gpc_policy *p = load_policy("test/data/render/reference-policy.yaml");
  for (int op = 0; op < GPC_OP_COUNT; op++) {
    json_t *objs = render_op(p, (enum gpc_operand)op);
    assert_true(json_array_size(objs) >= 1);
    check_all(objs);
    char path[256];
    snprintf(path, sizeof(path), "test/golden/%s.yaml", gpc_operand_name((enum gpc_operand)op));
    check_golden(path, objs);
    json_decref(objs);
  }
  policy_free(p);
}

/* The samples on the mixed fleet of issue 11 (containerd/ubuntu22.04,
 * cri-o/rhel9.4, docker/ubuntu20.04 and a host-driver node): one DaemonSet
 * per runtime and per driver OS. */
static void test_golden_mixed_fleet(void **state) {
  (void)state;
  static const char *const oses[] = {"rhel9.4", "ubuntu20.04", "ubuntu22.04"};
  struct gpc_render_opts mixed = opts;
  mixed.runtimes = 1u << GPC_RUNTIME_CONTAINERD | 1u << GPC_RUNTIME_CRIO | 1u << GPC_RUNTIME_DOCKER;
  mixed.oses = oses;
  mixed.n_oses = 3;
  static const char *const samples[] = {"minimal", "preinstalled"};
  for (size_t i = 0; i < 2; i++) {
    char src[256], golden[256];
    snprintf(src, sizeof(src), "manifests/samples/%s.yaml", samples[i]);
    snprintf(golden, sizeof(golden), "test/golden/mixed-fleet-%s.yaml", samples[i]);
    struct gpc_policy *p = load_policy(src);
    json_t *objs = NULL;
    struct gpc_error err = {0};
    assert_int_equal(render_policy(p, tpl, &mixed, &objs, &err), GPC_OK);
    check_all(objs);
    check_golden(golden, objs);
    json_decref(objs);
    policy_free(p);
  }
}

/* The driver's plain DaemonSet keeps its name whether or not the version
 * carries an OS suffix: a rename would delete every driver pod at once. */
static void test_driver_os_variants(void **state) {
  (void)state;
  static const char *const oses[] = {"rhel9.4", "ubuntu22.04"};
  struct gpc_render_opts o = opts;
  o.oses = oses;
  o.n_oses = 2;
  const char *versions[] = {"560.35.03", "560.35.03-ubuntu22.04"};
  for (size_t i = 0; i < 2; i++) {
    char yaml[256];
    snprintf(yaml, sizeof(yaml), "metadata: {name: gpus}\nspec: {driver: {version: \"%s\"}}\n",
             versions[i]);
    struct gpc_policy *p = policy_yaml(yaml);
    json_t *objs = NULL;
    struct gpc_error err = {0};
    assert_int_equal(render_operand(p, GPC_OP_DRIVER, tpl, &o, &objs, &err), GPC_OK);
    assert_int_equal(json_array_size(objs), 2);
    const char *want[][2] = {{"gpus-driver", "nvcr.io/nvidia/driver:560.35.03-ubuntu22.04"},
                             {"gpus-driver-rhel9-4", "nvcr.io/nvidia/driver:560.35.03-rhel9.4"}};
    for (size_t k = 0; k < 2; k++) {
      json_t *ds = json_array_get(objs, k);
      assert_string_equal(
          json_string_value(json_object_get(json_object_get(ds, "metadata"), "name")), want[k][0]);
      json_t *ctr = json_array_get(
          json_object_get(
              json_object_get(json_object_get(json_object_get(ds, "spec"), "template"), "spec"),
              "containers"),
          0);
      assert_string_equal(json_string_value(json_object_get(ctr, "image")), want[k][1]);
    }
    json_decref(objs);
    policy_free(p);
  }
}

static void test_golden_samples(void **state) {
  (void)state;
  DIR *d = opendir("manifests/samples");
  if (!d) skip();
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
    char src[512], golden[512];
    snprintf(src, sizeof(src), "manifests/samples/%s", e->d_name);
    snprintf(golden, sizeof(golden), "test/golden/sample-%s", e->d_name);
    struct gpc_policy *p = load_policy(src);
    json_t *objs = NULL;
    struct gpc_error err = {0};
    assert_int_equal(render_policy(p, tpl, &opts, &objs, &err), GPC_OK);
    check_all(objs);
    check_golden(golden, objs);
    json_decref(objs);
    policy_free(p);
    n++;
  }
  closedir(d);
  assert_true(n > 0);
}

static void test_transforms(void **state) {
  (void)state;
  struct gpc_policy *p = load_policy("test/data/render/reference-policy.yaml");
  json_t *drv = render_op(p, GPC_OP_DRIVER);
  json_t *ds = find_kind(drv, "DaemonSet");
  assert_string_equal(json_string_value(json_object_get(json_object_get(ds, "metadata"), "name")),
                      "reference-driver");
  json_t *spec = json_object_get(ds, "spec");
  /* the driver is always OnDelete even when the policy says RollingUpdate */
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(spec, "updateStrategy"), "type")),
      "OnDelete");
  json_t *pod = json_object_get(json_object_get(spec, "template"), "spec");
  json_t *ns = json_object_get(pod, "nodeSelector");
  assert_int_equal(json_object_size(ns), 2);
  assert_string_equal(json_string_value(json_object_get(ns, "gpupolicy.dev/policy")), "reference");
  assert_string_equal(json_string_value(json_object_get(ns, "gpupolicy.dev/driver")), "true");
  assert_int_equal(json_array_size(json_object_get(pod, "tolerations")), 2);
  assert_string_equal(json_string_value(json_object_get(pod, "priorityClassName")), "gpu-critical");
  json_t *ctr = json_array_get(json_object_get(pod, "containers"), 0);
  assert_string_equal(json_string_value(json_object_get(ctr, "image")),
                      "nvcr.io/nvidia/driver:550.54.14-ubuntu22.04");
  assert_string_equal(json_string_value(json_object_get(ctr, "imagePullPolicy")), "Always");
  /* env merged by name: the template's NVIDIA_VISIBLE_DEVICES replaced in
   * place, NODE_NAME (valueFrom) kept, the new one appended */
  json_t *env = json_object_get(ctr, "env");
  int vis = 0;
  size_t i;
  json_t *e;
  json_array_foreach(env, i, e) {
    const char *n = json_string_value(json_object_get(e, "name"));
    if (strcmp(n, "NVIDIA_VISIBLE_DEVICES") == 0) {
      vis++;
      assert_string_equal(json_string_value(json_object_get(e, "value")), "none");
    }
    if (strcmp(n, "NODE_NAME") == 0) assert_non_null(json_object_get(e, "valueFrom"));
  }
  assert_int_equal(vis, 1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(env, json_array_size(env) - 1), "name")),
      "DRIVER_EXTRA");
  json_t *secrets = json_object_get(pod, "imagePullSecrets");
  assert_int_equal(json_array_size(secrets), 1);
  /* ownerReference to the policy */
  json_t *ref =
      json_array_get(json_object_get(json_object_get(ds, "metadata"), "ownerReferences"), 0);
  assert_string_equal(json_string_value(json_object_get(ref, "kind")), "ClusterGPUPolicy");
  assert_string_equal(json_string_value(json_object_get(ref, "apiVersion")),
                      "gpupolicy.dev/v1alpha1");
  assert_true(json_is_true(json_object_get(ref, "controller")));
  assert_true(json_is_true(json_object_get(ref, "blockOwnerDeletion")));
  json_decref(drv);

  /* device plugin: percent maxUnavailable, args, resources, driver root */
  json_t *dp = render_op(p, GPC_OP_DEVICE_PLUGIN);
  ds = find_kind(dp, "DaemonSet");
  json_t *ru = json_object_get(json_object_get(json_object_get(ds, "spec"), "updateStrategy"),
                               "rollingUpdate");
  assert_string_equal(json_string_value(json_object_get(ru, "maxUnavailable")), "20%");
  ctr = json_array_get(
      json_object_get(
          json_object_get(json_object_get(json_object_get(ds, "spec"), "template"), "spec"),
          "containers"),
      0);
  assert_string_equal(json_string_value(json_array_get(json_object_get(ctr, "args"), 0)),
                      "--fail-on-init-error=false");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_object_get(ctr, "resources"), "requests"), "cpu")),
                      "50m");
  json_decref(dp);

  /* validator by digest; the version label stays a valid label value */
  json_t *val = render_op(p, GPC_OP_VALIDATOR);
  ds = find_kind(val, "DaemonSet");
  const char *ver = json_string_value(json_object_get(
      json_object_get(json_object_get(ds, "metadata"), "labels"), "app.kubernetes.io/version"));
  assert_non_null(ver);
  assert_true(strlen(ver) <= 63);
  assert_null(strchr(ver, ':'));
  json_decref(val);

  /* dcgm-exporter: Service selects the pods; ServiceMonitor when enabled */
  json_t *dc = render_op(p, GPC_OP_DCGM_EXPORTER);
  json_t *svc = find_kind(dc, "Service");
  assert_non_null(svc);
  json_t *port = json_array_get(json_object_get(json_object_get(svc, "spec"), "ports"), 0);
  assert_int_equal(json_integer_value(json_object_get(port, "port")), 9400);
  assert_string_equal(json_string_value(json_object_get(port, "name")), "metrics");
  json_t *sm = find_kind(dc, "ServiceMonitor");
  assert_non_null(sm);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_object_get(sm, "metadata"), "labels"), "release")),
                      "prometheus");
  json_decref(dc);

  /* toolkit: runtime config dir mounted, env pointing into it, RuntimeClass */
  json_t *tk = render_op(p, GPC_OP_TOOLKIT);
  json_t *rc = find_kind(tk, "RuntimeClass");
  assert_non_null(rc);
  assert_string_equal(json_string_value(json_object_get(json_object_get(rc, "metadata"), "name")),
                      "nvidia");
  assert_null(json_object_get(json_object_get(rc, "metadata"), "namespace"));
  assert_string_equal(json_string_value(json_object_get(rc, "handler")), "nvidia");
  ds = find_kind(tk, "DaemonSet");
  pod = json_object_get(json_object_get(json_object_get(ds, "spec"), "template"), "spec");
  bool found = false;
  json_array_foreach(json_object_get(pod, "volumes"), i, e) {
    if (strcmp(json_string_value(json_object_get(e, "name")), "runtime-config") == 0) {
      assert_string_equal(
          json_string_value(json_object_get(json_object_get(e, "hostPath"), "path")),
          "/etc/containerd/conf.d");
      found = true;
    }
  }
  assert_true(found);
  json_decref(tk);
  policy_free(p);
}

static const char *env_value(const json_t *objs, const char *name) {
  json_t *ds = find_kind(objs, "DaemonSet");
  json_t *ctr = json_array_get(
      json_object_get(
          json_object_get(json_object_get(json_object_get(ds, "spec"), "template"), "spec"),
          "containers"),
      0);
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(ctr, "env"), i, e) {
    if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
      return json_string_value(json_object_get(e, "value"));
  }
  return NULL;
}

static void test_runtime_and_driver_root(void **state) {
  (void)state;
  struct gpc_policy *p = policy_yaml("apiVersion: gpupolicy.dev/v1alpha1\n"
                                     "kind: ClusterGPUPolicy\n"
                                     "metadata: {name: docker-hosts}\n"
                                     "spec:\n"
                                     "  driver: {enabled: false}\n"
                                     "  toolkit: {runtime: docker}\n"
                                     "  daemonsets: {updateStrategy: OnDelete}\n");
  json_t *tk = render_op(p, GPC_OP_TOOLKIT);
  assert_string_equal(env_value(tk, "RUNTIME"), "docker");
  assert_string_equal(env_value(tk, "RUNTIME_CONFIG"), "/runtime/config-dir/daemon.json");
  assert_string_equal(env_value(tk, "RUNTIME_SOCKET"), "/runtime/sock-dir/docker.sock");
  assert_string_equal(env_value(tk, "DOCKER_SOCKET"), "/runtime/sock-dir/docker.sock");
  assert_null(env_value(tk, "CONTAINERD_CONFIG"));
  /* the host has its own driver */
  assert_string_equal(env_value(tk, "NVIDIA_DRIVER_ROOT"), "/");
  /* ... which the toolkit finds under the host root mounted at /host */
  assert_string_equal(env_value(tk, "DRIVER_ROOT_CTR_PATH"), "/host");
  json_t *ds = find_kind(tk, "DaemonSet");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_object_get(ds, "spec"), "updateStrategy"), "type")),
                      "OnDelete");
  /* no uid (render -f): no ownerReference rather than a broken one */
  assert_null(json_object_get(json_object_get(ds, "metadata"), "ownerReferences"));
  json_decref(tk);
  /* disabled operand renders nothing */
  json_t *drv = render_op(p, GPC_OP_DRIVER);
  assert_int_equal(json_array_size(drv), 0);
  json_decref(drv);
  json_t *dp = render_op(p, GPC_OP_DEVICE_PLUGIN);
  assert_string_equal(env_value(dp, "NVIDIA_DRIVER_ROOT"), "/");
  /* docker: cri-dockerd supports no runtime handler, nvidia is dockerd's
   * default runtime instead: no RuntimeClass named */
  assert_null(json_object_get(
      json_object_get(
          json_object_get(json_object_get(find_kind(dp, "DaemonSet"), "spec"), "template"), "spec"),
      "runtimeClassName"));
  json_decref(dp);
  policy_free(p);
}

static void test_preinstalled_toolkit(void **state) {
  (void)state;
  struct gpc_policy *p =
      policy_yaml("metadata: {name: pre}\n"
                  "spec: {driver: {enabled: false}, toolkit: {enabled: false}}\n");
  for (int op = GPC_OP_DEVICE_PLUGIN; op < GPC_OP_COUNT; op++) {
    json_t *objs = render_op(p, (enum gpc_operand)op);
    json_t *pod = json_object_get(
        json_object_get(json_object_get(find_kind(objs, "DaemonSet"), "spec"), "template"), "spec");
    /* containerd hosts whose own toolkit has the handler: still named */
    assert_string_equal(json_string_value(json_object_get(pod, "runtimeClassName")), "nvidia");
    /* no wait for operands that are not ours */
    assert_null(json_object_get(pod, "initContainers"));
    json_decref(objs);
  }
  policy_free(p);
}

static void test_names(void **state) {
  (void)state;
  char out[GPC_NAME_MAX + 1], out2[GPC_NAME_MAX + 1];
  render_object_name("gpus", "driver", out);
  assert_string_equal(out, "gpus-driver");
  /* dots are fine in a policy name but not in a Service name */
  render_object_name("a.b", "dcgm-exporter", out);
  assert_null(strchr(out, '.'));
  assert_true(strncmp(out, "a-b-", 4) == 0);
  /* long names are truncated and disambiguated by a hash */
  const char *l1 = "a-very-long-policy-name-that-goes-on-and-on-and-on-for-many-chars-1";
  const char *l2 = "a-very-long-policy-name-that-goes-on-and-on-and-on-for-many-chars-2";
  render_object_name(l1, "container-toolkit", out);
  render_object_name(l2, "container-toolkit", out2);
  assert_true(strlen(out) <= GPC_NAME_MAX);
  assert_string_not_equal(out, out2);
  assert_true(strstr(out, "-container-toolkit") != NULL);
  render_object_name("9lives", "driver", out);
  assert_true(out[0] >= 'a' && out[0] <= 'z');

  char v[64];
  render_label_value("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", v);
  assert_true(strlen(v) == 63);
  assert_true(strncmp(v, "sha256-", 7) == 0);
  render_label_value("-v1.2+x-", v);
  assert_string_equal(v, "v1.2-x");
}

static void test_hash_and_stability(void **state) {
  (void)state;
  json_t *a = json_pack("{s:i, s:{s:s, s:{s:s}}}", "x", 1, "metadata", "name", "n", "annotations",
                        GPC_ANNOTATION_RENDER_HASH, "old");
  json_t *b = json_pack("{s:{s:s}, s:i}", "metadata", "name", "n", "x", 1);
  char ha[65], hb[65];
  render_hash(a, ha);
  render_hash(b, hb);
  assert_string_equal(ha, hb); /* key order and the hash annotation do not count */
  json_object_set_new(b, "x", json_integer(2));
  render_hash(b, hb);
  assert_string_not_equal(ha, hb);
  json_decref(a);
  json_decref(b);

  /* a version bump changes the hash and the pod template, not the selector */
  struct gpc_policy *p1 =
      policy_yaml("metadata: {name: p}\nspec: {devicePlugin: {version: v0.15.0}}\n");
  struct gpc_policy *p2 =
      policy_yaml("metadata: {name: p}\nspec: {devicePlugin: {version: v0.16.1}}\n");
  json_t *r1 = render_op(p1, GPC_OP_DEVICE_PLUGIN), *r2 = render_op(p2, GPC_OP_DEVICE_PLUGIN);
  json_t *d1 = find_kind(r1, "DaemonSet"), *d2 = find_kind(r2, "DaemonSet");
  assert_string_not_equal(render_hash_of(d1), render_hash_of(d2));
  assert_true(json_equal(json_object_get(json_object_get(d1, "spec"), "selector"),
                         json_object_get(json_object_get(d2, "spec"), "selector")));
  json_t *r1b = render_op(p1, GPC_OP_DEVICE_PLUGIN);
  assert_true(json_equal(r1, r1b)); /* deterministic */
  json_decref(r1);
  json_decref(r1b);
  json_decref(r2);
  policy_free(p1);
  policy_free(p2);
}

static void test_shared_objects_opt_in(void **state) {
  (void)state;
  struct gpc_policy *p = policy_yaml("metadata: {name: p}\nspec: {}\n");
  struct gpc_render_opts o = {.namespace = "ns", .include_shared = false};
  json_t *out = NULL;
  struct gpc_error err = {0};
  assert_int_equal(render_operand(p, GPC_OP_TOOLKIT, tpl, &o, &out, &err), GPC_OK);
  assert_null(find_kind(out, "RuntimeClass"));
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(find_kind(out, "DaemonSet"), "metadata"), "namespace")),
                      "ns");
  json_decref(out);
  policy_free(p);
}

static void test_long_policy_name_rejected(void **state) {
  (void)state;
  /* policy.c refuses such names already; render does not rely on it */
  struct gpc_policy *p = policy_yaml("metadata: {name: p}\nspec: {}\n");
  free(p->name);
  p->name =
      gpc_strdup("a-policy-name-which-is-far-too-long-to-be-a-label-value-of-sixty-three-chars");
  json_t *out = NULL;
  struct gpc_error err = {0};
  assert_int_equal(render_operand(p, GPC_OP_DRIVER, tpl, &opts, &out, &err), GPC_E_INVAL);
  assert_null(out);
  assert_non_null(strstr(err.msg, "metadata.name"));
  policy_free(p);
}

static void write_file(const char *path, const char *s) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(s, f);
  fclose(f);
}

static void test_templates_dir(void **state) {
  (void)state;
  char dir[] = "/tmp/gpc-tpl-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof(path), "%s/validator.yaml", dir);
  write_file(path, "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: v}\n"
                   "spec: {template: {spec: {containers: [{name: site-check, image: x}]}}}\n");
  struct gpc_templates *t = NULL;
  struct gpc_error err = {0};
  assert_int_equal(templates_load(dir, &t, &err), GPC_OK);
  assert_string_equal(templates_source(t, GPC_OP_VALIDATOR), path);
  assert_string_equal(templates_source(t, GPC_OP_DRIVER), "embedded:driver.yaml");
  struct gpc_policy *p = policy_yaml("metadata: {name: p}\nspec: {}\n");
  json_t *out = NULL;
  assert_int_equal(render_operand(p, GPC_OP_VALIDATOR, t, &opts, &out, &err), GPC_OK);
  json_t *ctr = json_array_get(
      json_object_get(
          json_object_get(
              json_object_get(json_object_get(find_kind(out, "DaemonSet"), "spec"), "template"),
              "spec"),
          "containers"),
      0);
  assert_string_equal(json_string_value(json_object_get(ctr, "name")), "site-check");
  json_decref(out);
  templates_free(t);

  /* broken YAML: the error names the file */
  write_file(path, "kind: [unclosed\n");
  assert_int_not_equal(templates_load(dir, &t, &err), GPC_OK);
  assert_null(t);
  assert_non_null(strstr(err.msg, "validator.yaml"));
  /* no DaemonSet */
  write_file(path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
  assert_int_equal(templates_load(dir, &t, &err), GPC_E_INVAL);
  assert_non_null(strstr(err.msg, "exactly one DaemonSet"));
  /* a document without a name */
  write_file(path, "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {}\n");
  assert_int_equal(templates_load(dir, &t, &err), GPC_E_INVAL);
  assert_non_null(strstr(err.msg, "metadata.name"));
  unlink(path);
  rmdir(dir);
  assert_int_equal(templates_load("/nonexistent-dir", &t, &err), GPC_E_NOT_FOUND);
  assert_non_null(strstr(err.msg, "--templates-dir"));
  policy_free(p);
}

static int setup(void **state) {
  (void)state;
  struct gpc_error err = {0};
  if (templates_load(NULL, &tpl, &err)) {
    fprintf(stderr, "templates: %s\n", err.msg);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  templates_free(tpl);
  return 0;
}

/* An object the API server would refuse for its size is a render error
 * naming the operand (the controller then reports Stalled), not a request. */
static void test_request_size_limit(void **state) {
  (void)state;
  json_t *j = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:{s:[{s:s, s:s}]}}}", "apiVersion",
                        "gpupolicy.dev/v1alpha1", "kind", "ClusterGPUPolicy", "metadata", "name",
                        "huge", "uid", "u1", "spec", "driver", "env", "name", "BIG", "value", "");
  size_t big = GPC_MAX_REQUEST_BYTES + 1;
  char *v = malloc(big + 1);
  memset(v, 'x', big);
  v[big] = 0;
  json_t *env0 = json_array_get(
      json_object_get(json_object_get(json_object_get(j, "spec"), "driver"), "env"), 0);
  json_object_set_new(env0, "value", json_string(v));
  free(v);
  struct gpc_error err = {0};
  struct gpc_policy *p = NULL;
  assert_int_equal(policy_from_json(j, &p, &err), GPC_OK);
  json_decref(j);
  json_t *out = NULL;
  assert_int_equal(render_policy(p, tpl, &opts, &out, &err), GPC_E_TOO_LARGE);
  assert_null(out);
  assert_non_null(strstr(err.msg, "spec.driver: the rendered DaemonSet huge-driver"));
  assert_non_null(strstr(err.msg, "3145728 bytes"));
  policy_free(p);
  /* just under the limit renders */
  p = policy_yaml("apiVersion: gpupolicy.dev/v1alpha1\nkind: ClusterGPUPolicy\n"
                  "metadata: {name: small}\nspec: {driver: {env: [{name: A, value: b}]}}\n");
  assert_int_equal(render_policy(p, tpl, &opts, &out, &err), GPC_OK);
  json_decref(out);
  policy_free(p);
}

int main(void) {
  gpc_alloc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden_operands),
      cmocka_unit_test(test_golden_samples),
      cmocka_unit_test(test_golden_mixed_fleet),
      cmocka_unit_test(test_driver_os_variants),
      cmocka_unit_test(test_transforms),
      cmocka_unit_test(test_runtime_and_driver_root),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_preinstalled_toolkit),
      cmocka_unit_test(test_hash_and_stability),
      cmocka_unit_test(test_shared_objects_opt_in),
      cmocka_unit_test(test_long_policy_name_rejected),
      cmocka_unit_test(test_templates_dir),
      cmocka_unit_test(test_request_size_limit),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
