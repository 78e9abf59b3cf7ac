/* apply_cmd.c — `gpu-policy-controller apply` (see apply_cmd.h). */
#include "apply_cmd.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dynbuf.h"
#include "kube_client.h"
#include "kubeconfig.h"
#include "log.h"
#include "loop.h"
#include "strmap.h"
#include "yaml2json.h"

#define FIELD_MANAGER "gpu-policy-controller-cli"
#define APPLY_MAX_INPUT (16u << 20)
#define DISCOVERY_WAIT_MS 10000
#define DISCOVERY_RETRY_MS 500
#define EXIT_FAILED 1
#define EXIT_USAGE 2

/* ---- input ---- */

static char *read_stream(FILE *f, size_t *len, struct gpc_error *err, const char *name) {
  struct dynbuf b = DYNBUF_INIT(APPLY_MAX_INPUT);
  int rc = dynbuf_read_stream(&b, f);
  if (rc != GPC_OK) {
    dynbuf_release(&b);
    if (rc == GPC_E_TOO_LARGE)
      gpc_fail(err, GPC_E_TOO_LARGE, "%s: larger than %u bytes", name, APPLY_MAX_INPUT);
    else
      gpc_fail(err, GPC_E_IO, "%s: read error", name);
    return NULL;
  }
  return dynbuf_detach(&b, len);
}

/* Appends one parsed object, expanding *List kinds. */
static void add_object(json_t *docs, const char *source, json_t *obj) {
  const char *kind = json_string_value(json_object_get(obj, "kind"));
  json_t *items = json_object_get(obj, "items");
  size_t kl = kind ? strlen(kind) : 0;
  if (kl >= 4 && strcmp(kind + kl - 4, "List") == 0 && json_is_array(items)) {
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
      char *src = gpc_asprintf("%s[%zu]", source, i);
      add_object(docs, src, it);
      free(src);
    }
    return;
  }
  json_array_append_new(docs, json_pack("{s:s, s:O}", "source", source, "object", obj));
}

static int load_file(const char *path, FILE *f, json_t *docs, struct gpc_error *err) {
  size_t len = 0;
  char *data = read_stream(f, &len, err, path);
  if (!data) return err->code;
  struct gpc_error perr = {0};
  json_t *parsed = yaml2json_parse_docs(data, len, APPLY_MAX_INPUT, &perr);
  free(data);
  if (!parsed) return gpc_fail(err, GPC_E_INVAL, "%s: %s", path, perr.msg);
  size_t i;
  json_t *d;
  json_array_foreach(parsed, i, d) {
    if (json_is_null(d)) continue;
    char *src = gpc_asprintf("%s#%zu", path, i + 1);
    add_object(docs, src, d);
    free(src);
  }
  json_decref(parsed);
  return GPC_OK;
}

static bool manifest_name(const char *n) {
  size_t l = strlen(n);
  return n[0] != '.' &&
         ((l > 5 && strcmp(n + l - 5, ".yaml") == 0) || (l > 4 && strcmp(n + l - 4, ".yml") == 0) ||
          (l > 5 && strcmp(n + l - 5, ".json") == 0));
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_dir(const char *path, json_t *docs, struct gpc_error *err) {
  DIR *d = opendir(path);
  if (!d) return gpc_fail(err, GPC_E_IO, "%s: %s", path, strerror(errno));
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!manifest_name(e->d_name)) continue;
    gpc_grow((void **)&names, &cap, n + 1, sizeof *names);
    names[n++] = gpc_asprintf("%s/%s", path, e->d_name);
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, cmp_str);
  int rc = GPC_OK;
  for (size_t i = 0; i < n; i++) {
    if (rc == GPC_OK) {
      FILE *f = fopen(names[i], "rb");
      if (!f)
        rc = gpc_fail(err, GPC_E_IO, "%s: %s", names[i], strerror(errno));
      else {
        rc = load_file(names[i], f, docs, err);
        fclose(f);
      }
    }
    free(names[i]);
  }
  free(names);
  if (rc == GPC_OK && n == 0)
    rc = gpc_fail(err, GPC_E_NOT_FOUND, "%s: no .yaml, .yml or .json files", path);
  return rc;
}

int apply_cmd_load_path(const char *path, json_t *docs, struct gpc_error *err) {
  if (strcmp(path, "-") == 0) return load_file("<stdin>", stdin, docs, err);
  struct stat st;
  if (stat(path, &st) != 0) return gpc_fail(err, GPC_E_NOT_FOUND, "%s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) return load_dir(path, docs, err);
  FILE *f = fopen(path, "rb");
  if (!f) return gpc_fail(err, GPC_E_IO, "%s: %s", path, strerror(errno));
  int rc = load_file(path, f, docs, err);
  fclose(f);
  return rc;
}

const char *apply_cmd_discovery_find(const json_t *list, const char *kind, bool *namespaced) {
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(list, "resources"), i, r) {
    const char *name = json_string_value(json_object_get(r, "name"));
    const char *k = json_string_value(json_object_get(r, "kind"));
    if (!name || !k || strchr(name, '/') || strcmp(k, kind) != 0) continue;
    *namespaced = json_is_true(json_object_get(r, "namespaced"));
    return name;
  }
  return NULL;
}

int apply_cmd_split_api_version(const char *api_version, char **group, char **version) {
  *group = *version = NULL;
  if (!api_version || !*api_version) return GPC_E_INVAL;
  const char *slash = strchr(api_version, '/');
  if (slash && (slash == api_version || !slash[1] || strchr(slash + 1, '/'))) return GPC_E_INVAL;
  *group = slash ? gpc_strndup(api_version, (size_t)(slash - api_version)) : gpc_strdup("");
  *version = gpc_strdup(slash ? slash + 1 : api_version);
  return GPC_OK;
}

/* ---- applying, one object at a time on the loop ---- */

struct run {
  struct gpc_loop *loop;
  struct kube_client *client;
  const char *default_ns;
  json_t *docs;
  size_t i;
  struct strmap *disc; /* apiVersion -> json_t* resource list (json null: not served) */
  FILE *out, *errf;
  int failures;
  bool abort;             /* stop after the current object */
  bool applied_crd;       /* a CRD went in earlier: new kinds may take a moment */
  uint64_t disc_deadline; /* for the current object, 0 = not waiting yet */
  /* current object */
  char *group, *version, *plural, *ns, *prior_rv;
  const char *kind, *name;
};

static void next_object(struct run *r);

static void clear_current(struct run *r) {
  free(r->group);
  free(r->version);
  free(r->plural);
  free(r->ns);
  free(r->prior_rv);
  r->group = r->version = r->plural = r->ns = r->prior_rv = NULL;
  r->disc_deadline = 0;
}

static void advance(struct run *r) {
  clear_current(r);
  r->i++;
  next_object(r);
}

static void fail_current(struct run *r, const char *msg) {
  const char *src =
      json_string_value(json_object_get(json_array_get(r->docs, r->i), "source")) ?: "?";
  if (r->kind && r->name)
    fprintf(r->errf, "error: %s (%s %s): %s\n", src, r->kind, r->name, msg);
  else
    fprintf(r->errf, "error: %s: %s\n", src, msg);
  r->failures++;
  advance(r);
}

/* "customresourcedefinition.apiextensions.k8s.io/name" as kubectl prints it. */
static void print_result(struct run *r, const char *what) {
  char kind[128];
  snprintf(kind, sizeof kind, "%s", r->kind);
  for (char *p = kind; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  if (*r->group)
    fprintf(r->out, "%s.%s/%s %s\n", kind, r->group, r->name, what);
  else
    fprintf(r->out, "%s/%s %s\n", kind, r->name, what);
  fflush(r->out);
}

static const char *resp_error(const struct kube_response *resp) {
  if (resp->status && resp->status->message && *resp->status->message) return resp->status->message;
  return resp->error ? resp->error : "request failed";
}

static const char *rv_of(const struct kube_response *resp) {
  static char rv[128];
  rv[0] = 0;
  json_t *o = resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
  const char *s =
      json_string_value(json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
  if (s) snprintf(rv, sizeof rv, "%s", s);
  json_decref(o);
  return rv;
}

static void on_applied(struct kube_client *c, const struct kube_response *resp, void *ud) {
  (void)c;
  struct run *r = ud;
  if (resp->rc != GPC_OK) {
    fail_current(r, resp_error(resp));
    return;
  }
  const char *rv = rv_of(resp);
  if (strcmp(r->kind, "CustomResourceDefinition") == 0) r->applied_crd = true;
  print_result(r, !r->prior_rv                   ? "created"
                  : strcmp(r->prior_rv, rv) == 0 ? "unchanged"
                                                 : "configured");
  advance(r);
}

static void send_apply(struct run *r) {
  json_t *obj = json_object_get(json_array_get(r->docs, r->i), "object");
  char *body = json_dumps(obj, JSON_COMPACT);
  struct kube_request req = {
      .verb = KUBE_PATCH,
      .patch_type = KUBE_PATCH_APPLY,
      .group = r->group,
      .version = r->version,
      .resource = r->plural,
      .namespace = r->ns,
      .name = r->name,
      .field_manager = FIELD_MANAGER,
      .force = true,
      .body = body,
      .body_len = strlen(body),
  };
  struct gpc_error err = {0};
  uint64_t id = kube_client_submit(r->client, &req, on_applied, NULL, r, &err);
  free(body);
  if (!id) fail_current(r, err.msg);
}

static void on_prior(struct kube_client *c, const struct kube_response *resp, void *ud) {
  (void)c;
  struct run *r = ud;
  if (resp->rc == GPC_OK) r->prior_rv = gpc_strdup(rv_of(resp));
  send_apply(r);
}

static void resolve(struct run *r);

static void on_retry_timer(struct gpc_loop *loop, uint64_t id, void *ud) {
  (void)loop;
  (void)id;
  resolve(ud);
}

static void on_discovery(struct kube_client *c, const struct kube_response *resp, void *ud) {
  (void)c;
  struct run *r = ud;
  const char *api_version = json_string_value(
      json_object_get(json_object_get(json_array_get(r->docs, r->i), "object"), "apiVersion"));
  json_t *list = NULL;
  if (resp->rc == GPC_OK) list = json_loadb(resp->body, resp->body_len, 0, NULL);
  if (!list && resp->http_code != 404 && resp->rc != GPC_OK) {
    char msg[600];
    snprintf(msg, sizeof msg, "discovery failed: %s", resp_error(resp));
    /* no server to talk to: the remaining objects would fail the same way */
    if (resp->http_code == 0) r->abort = true;
    fail_current(r, msg);
    return;
  }
  json_t *old = strmap_put(r->disc, api_version, list ? list : json_null());
  json_decref(old);
  resolve(r);
}

static void resolve(struct run *r) {
  json_t *obj = json_object_get(json_array_get(r->docs, r->i), "object");
  const char *api_version = json_string_value(json_object_get(obj, "apiVersion"));
  json_t *list = strmap_get(r->disc, api_version);
  if (!list) {
    struct kube_request req = {.verb = KUBE_LIST, .group = r->group, .version = r->version};
    struct gpc_error err = {0};
    if (!kube_client_submit(r->client, &req, on_discovery, NULL, r, &err)) fail_current(r, err.msg);
    return;
  }
  bool namespaced = false;
  const char *plural = apply_cmd_discovery_find(list, r->kind, &namespaced);
  if (!plural) {
    uint64_t now = gpc_loop_now_ms();
    if (!r->disc_deadline) r->disc_deadline = now + DISCOVERY_WAIT_MS;
    if (r->applied_crd && now < r->disc_deadline) {
      /* maybe a CRD applied just before is not established yet: ask again */
      json_decref(strmap_del(r->disc, api_version));
      gpc_loop_add_timer(r->loop, DISCOVERY_RETRY_MS, on_retry_timer, r);
      return;
    }
    char what[300];
    snprintf(what, sizeof what, "no matches for kind \"%s\" in version \"%s\"", r->kind,
             api_version);
    fail_current(r, what);
    return;
  }
  r->plural = gpc_strdup(plural);
  if (namespaced) {
    const char *ns =
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
    r->ns = gpc_strdup(ns && *ns ? ns : r->default_ns);
  }
  struct kube_request req = {.verb = KUBE_GET,
                             .group = r->group,
                             .version = r->version,
                             .resource = r->plural,
                             .namespace = r->ns,
                             .name = r->name};
  struct gpc_error err = {0};
  if (!kube_client_submit(r->client, &req, on_prior, NULL, r, &err)) fail_current(r, err.msg);
}

static void next_object(struct run *r) {
  if (r->abort) r->i = json_array_size(r->docs);
  if (r->i >= json_array_size(r->docs)) {
    gpc_loop_stop(r->loop);
    return;
  }
  json_t *obj = json_object_get(json_array_get(r->docs, r->i), "object");
  const char *api_version = json_string_value(json_object_get(obj, "apiVersion"));
  r->kind = json_string_value(json_object_get(obj, "kind"));
  r->name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
  if (!json_is_object(obj) || !r->kind || !*r->kind || !r->name || !*r->name) {
    fail_current(r, "object needs apiVersion, kind and metadata.name");
    return;
  }
  if (apply_cmd_split_api_version(api_version, &r->group, &r->version) != GPC_OK) {
    char msg[300];
    snprintf(msg, sizeof msg, "invalid apiVersion \"%s\"", api_version ? api_version : "");
    fail_current(r, msg);
    return;
  }
  resolve(r);
}

/* ---- command line ---- */

struct apply_args {
  const char *kubeconfig, *context, *ns;
  const char **files;
  size_t n_files;
};

static void usage(FILE *f) {
  fprintf(f, "Usage: gpu-policy-controller apply [--kubeconfig PATH] [--context NAME] "
             "[-n NAMESPACE] -f FILE|DIR|- ...\n\n"
             "Server-side applies every document (field manager " FIELD_MANAGER
             ", force) in order.\n");
}

/* Returns 0 to go on, -1 after --help, EXIT_USAGE on a bad command line. */
static int parse_args(int argc, char **argv, struct apply_args *a, FILE *errf, FILE *out) {
  memset(a, 0, sizeof *a);
  a->files = gpc_calloc((size_t)argc + 1, sizeof *a->files);
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *val = NULL;
    const char *eq = strchr(arg, '=');
    size_t nlen = eq && strncmp(arg, "--", 2) == 0 ? (size_t)(eq - arg) : strlen(arg);
#define IS(s) (strlen(s) == nlen && strncmp(arg, s, nlen) == 0)
    if (IS("--help") || IS("-h")) {
      usage(out);
      return -1;
    }
    bool known = IS("--kubeconfig") || IS("--context") || IS("-n") || IS("--namespace") ||
                 IS("-f") || IS("--filename");
    if (!known) {
      fprintf(errf, "gpu-policy-controller apply: unknown flag %s\n", arg);
      return EXIT_USAGE;
    }
    if (eq && nlen < strlen(arg)) {
      val = eq + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      fprintf(errf, "gpu-policy-controller apply: %.*s needs a value\n", (int)nlen, arg);
      return EXIT_USAGE;
    }
    if (IS("--kubeconfig"))
      a->kubeconfig = val;
    else if (IS("--context"))
      a->context = val;
    else if (IS("-n") || IS("--namespace"))
      a->ns = val;
    else
      a->files[a->n_files++] = val;
#undef IS
  }
  if (a->n_files == 0) {
    fprintf(errf, "gpu-policy-controller apply: -f FILE|DIR|- is required\n");
    return EXIT_USAGE;
  }
  return 0;
}

static int run_apply(const struct apply_args *a, json_t *docs, FILE *out, FILE *errf) {
  struct gpc_error err = {0};
  struct kubeconfig kc;
  memset(&kc, 0, sizeof kc);
  if (kubeconfig_load_auto(&kc, a->kubeconfig, a->context, &err) != GPC_OK) {
    fprintf(errf, "gpu-policy-controller apply: %s\n", err.msg);
    return EXIT_USAGE;
  }
  int rc = EXIT_FAILED;
  struct run r = {.docs = docs, .out = out, .errf = errf};
  r.default_ns = a->ns ? a->ns : (kc.namespace && *kc.namespace ? kc.namespace : "default");
  r.loop = gpc_loop_new(&err);
  if (r.loop) {
    /* Its own user agent: what the CLI does is not what the controller's
     * RBAC must allow. */
    struct kube_client_config cc = {.kc = &kc, .user_agent = FIELD_MANAGER "/" GPC_VERSION};
    r.client = kube_client_new(r.loop, &cc, &err);
  }
  if (!r.loop || !r.client) {
    fprintf(errf, "gpu-policy-controller apply: %s\n", err.msg);
  } else {
    r.disc = strmap_new();
    next_object(&r);
    if (!gpc_loop_stopped(r.loop) && gpc_loop_run(r.loop) != GPC_OK) r.failures++;
    rc = r.failures ? EXIT_FAILED : 0;
    clear_current(&r);
    struct strmap_iter it;
    strmap_iter_init(&it, r.disc);
    void *v;
    while (strmap_next(&it, NULL, &v))
      json_decref(v);
    strmap_free(r.disc, NULL, NULL);
  }
  kube_client_free(r.client);
  gpc_loop_free(r.loop);
  kubeconfig_free(&kc);
  return rc;
}

int apply_cmd_main_io(int argc, char **argv, FILE *out, FILE *errf) {
  struct apply_args a;
  int rc = parse_args(argc, argv, &a, errf, out);
  if (rc) {
    free(a.files);
    return rc < 0 ? 0 : rc;
  }
  /* The CLI speaks through its output lines; only warnings go to the log. */
  log_configure("warn");
  log_set_format_name("text");
  json_t *docs = json_array();
  struct gpc_error err = {0};
  for (size_t i = 0; i < a.n_files && rc == 0; i++) {
    if (apply_cmd_load_path(a.files[i], docs, &err) != GPC_OK) {
      fprintf(errf, "gpu-policy-controller apply: %s\n", err.msg);
      rc = EXIT_USAGE;
    }
  }
  if (rc == 0) rc = run_apply(&a, docs, out, errf);
  json_decref(docs);
  free(a.files);
  return rc;
}

int apply_cmd_main(int argc, char **argv) {
  return apply_cmd_main_io(argc, argv, stdout, stderr);
}
