/* kubeconfig.c — kubeconfig files and in-cluster configuration (see kubeconfig.h).
 *
 * Credentials are read into memory only. Every buffer of ours that held a
 * secret (file contents, the parsed YAML tree, replaced tokens) is wiped with
 * OPENSSL_cleanse before it is freed; what is best effort is listed in
 * kubeconfig.h.
 */
#include "kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "dynbuf.h"
#include "log.h"
#include "yaml2json.h"

#define KC_MAX_FILE (1024u * 1024u) /* kubeconfig, CA, cert, key, token files */
#define KC_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define KC_TOKEN_REFRESH_S 60

/* ---- small helpers ------------------------------------------------------ */

static void wipe_free(void *p, size_t n) {
  if (!p) return;
  OPENSSL_cleanse(p, n);
  free(p);
}

static void wipe_str(char **s) {
  if (*s) wipe_free(*s, strlen(*s));
  *s = NULL;
}

static void blob_free(struct kc_blob *b) {
  wipe_free(b->data, b->len);
  b->data = NULL;
  b->len = 0;
}

/* Wipes every string in a parsed tree: the YAML held tokens and key data. */
static void json_cleanse(json_t *j) {
  if (json_is_string(j)) {
    OPENSSL_cleanse((char *)json_string_value(j), json_string_length(j));
  } else if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
      json_cleanse(v);
    }
  } else if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
      json_cleanse(v);
    }
  }
}

/* Reads a whole (small) file; NULL with err naming `field` and the path. */
static unsigned char *read_file(const char *path, const char *field, size_t *len,
                                struct gpc_error *err) {
  /* O_NONBLOCK so that a FIFO cannot stall the open; only regular files
   * (Secret mounts are symlinks to them) are read. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int e = fd < 0 ? errno : EINVAL;
    if (fd >= 0) close(fd);
    gpc_fail(err, e == ENOENT ? GPC_E_NOT_FOUND : GPC_E_IO, "%s: %s: %s", field, path,
             e == EINVAL ? "not a regular file" : strerror(e));
    return NULL;
  }
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    gpc_fail(err, GPC_E_IO, "%s: %s: %s", field, path, strerror(errno));
    return NULL;
  }
  /* A secret buffer: no realloc, which could leave a copy of a key behind. */
  struct dynbuf b;
  dynbuf_init_secret(&b, KC_MAX_FILE);
  int rc = dynbuf_read_stream(&b, f);
  fclose(f);
  if (rc != GPC_OK) {
    dynbuf_release(&b);
    if (rc == GPC_E_IO)
      gpc_fail(err, GPC_E_IO, "%s: %s: read error", field, path);
    else
      gpc_fail(err, GPC_E_TOO_LARGE, "%s: %s: larger than %u bytes", field, path, KC_MAX_FILE);
    return NULL;
  }
  return (unsigned char *)dynbuf_detach(&b, len);
}

static char *join_path(const char *base_dir, const char *p) {
  if (p[0] == '/' || !base_dir || !*base_dir) return gpc_strdup(p);
  return gpc_asprintf("%s/%s", base_dir, p);
}

/* Strict standard base64 (RFC 4648 §4): line breaks are skipped as Go's
 * decoder does; any other stray character or bad padding is an error. */
static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

static bool b64_decode(const char *in, size_t inlen, struct kc_blob *out) {
  char *clean = gpc_malloc(inlen + 1);
  size_t m = 0;
  for (size_t i = 0; i < inlen; i++)
    if (in[i] != '\n' && in[i] != '\r') clean[m++] = in[i];
  unsigned char *buf = gpc_malloc(m / 4 * 3 + 1);
  size_t n = 0;
  bool ok = m > 0 && m % 4 == 0;
  for (size_t q = 0; ok && q < m; q += 4) {
    bool last = q + 4 == m;
    int v[4];
    for (int k = 0; k < 4; k++)
      v[k] = b64_value((unsigned char)clean[q + k]);
    /* '=' only at the end of the last quad: "xx==" or "xxx=". */
    bool pad2 = last && clean[q + 2] == '=' && clean[q + 3] == '=';
    bool pad1 = last && !pad2 && clean[q + 3] == '=';
    if (v[0] < 0 || v[1] < 0 || (!pad2 && v[2] < 0) || (!pad1 && !pad2 && v[3] < 0)) {
      ok = false;
      break;
    }
    unsigned int acc = (unsigned int)v[0] << 18 | (unsigned int)v[1] << 12;
    if (!pad2) acc |= (unsigned int)v[2] << 6;
    if (!pad1 && !pad2) acc |= (unsigned int)v[3];
    buf[n++] = (unsigned char)(acc >> 16);
    if (!pad2) buf[n++] = (unsigned char)(acc >> 8);
    if (!pad1 && !pad2) buf[n++] = (unsigned char)acc;
  }
  wipe_free(clean, inlen + 1);
  if (!ok) {
    wipe_free(buf, m / 4 * 3 + 1);
    return false;
  }
  out->data = buf;
  out->len = n;
  return true;
}

/* ---- kubeconfig document ------------------------------------------------ */

/* Fetches an optional string member; a non-string value is an error. */
static int get_str(const json_t *obj, const char *key, const char *where, const char **out,
                   struct gpc_error *err) {
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  if (!v || json_is_null(v)) return GPC_OK;
  if (!json_is_string(v))
    return gpc_fail(err, GPC_E_INVAL, "%s.%s: must be a string (quote it)", where, key);
  *out = json_string_value(v);
  if (!**out) *out = NULL;
  return GPC_OK;
}

/* Finds the entry named `name` in a list of {name, <member>: {...}}. */
static const json_t *find_named(const json_t *doc, const char *list, const char *member,
                                const char *name, char *where, size_t where_len) {
  const json_t *arr = json_object_get(doc, list);
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e) {
    const json_t *n = json_object_get(e, "name");
    if (json_is_string(n) && strcmp(json_string_value(n), name) == 0) {
      snprintf(where, where_len, "%s[%zu].%s", list, i, member);
      const json_t *body = json_object_get(e, member);
      return body ? body : json_null();
    }
  }
  return NULL;
}

/* Loads a PEM blob from `<field>-data` (base64) or `<field>` (a file path). */
static int load_blob(const json_t *obj, const char *where, const char *field, const char *base_dir,
                     struct kc_blob *out, struct gpc_error *err) {
  char data_key[64];
  snprintf(data_key, sizeof data_key, "%s-data", field);
  const char *data, *path;
  int rc;
  if ((rc = get_str(obj, data_key, where, &data, err)) ||
      (rc = get_str(obj, field, where, &path, err)))
    return rc;
  if (data) {
    if (!b64_decode(data, strlen(data), out))
      return gpc_fail(err, GPC_E_INVAL, "%s.%s: bad base64", where, data_key);
  } else if (path) {
    char *full = join_path(base_dir, path);
    char fieldname[160];
    snprintf(fieldname, sizeof fieldname, "%s.%s", where, field);
    out->data = read_file(full, fieldname, &out->len, err);
    free(full);
    if (!out->data) return err ? err->code : GPC_E_IO;
  } else {
    return GPC_OK;
  }
  if (!memmem(out->data, out->len, "-----BEGIN ", 11))
    return gpc_fail(err, GPC_E_TLS, "%s.%s: not PEM data", where, data ? data_key : field);
  return GPC_OK;
}

/* Only http and https reach an API server; anything else libcurl knows
 * (file://, ftp://, dict://, ...) is a mistake or an attack. */
static int check_scheme(const char *server, const char *where, struct gpc_error *err) {
  if (strncmp(server, "https://", 8) == 0 || strncmp(server, "http://", 7) == 0) return GPC_OK;
  return gpc_fail(err, GPC_E_INVAL, "%s.server: unsupported scheme in \"%.80s\" (want https://)",
                  where, server);
}

/* The explicit opt-in to credentials over plain HTTP: a cluster extension
 *   extensions: [{name: gpupolicy.dev/allow-plain-http, extension: {allow: true}}]
 * (kubectl keeps unknown extensions, as it does minikube's). */
#define KC_PLAIN_HTTP_EXT "gpupolicy.dev/allow-plain-http"
static bool plain_http_opt_in(const json_t *cluster) {
  const json_t *exts = json_object_get(cluster, "extensions");
  size_t i;
  const json_t *e;
  json_array_foreach(exts, i, e) {
    const char *name = json_string_value(json_object_get(e, "name"));
    if (name && strcmp(name, KC_PLAIN_HTTP_EXT) == 0)
      return json_is_true(json_object_get(json_object_get(e, "extension"), "allow"));
  }
  return false;
}

static int load_cluster(struct kubeconfig *kc, const json_t *c, const char *where,
                        const char *base_dir, struct gpc_error *err) {
  if (!json_is_object(c)) return gpc_fail(err, GPC_E_INVAL, "%s: must be a mapping", where);
  const char *server;
  int rc = get_str(c, "server", where, &server, err);
  if (rc) return rc;
  if (!server) return gpc_fail(err, GPC_E_INVAL, "%s.server: missing", where);
  /* client-go assumes https when the scheme is left out. */
  kc->server = strstr(server, "://") ? gpc_strdup(server) : gpc_asprintf("https://%s", server);
  size_t n = strlen(kc->server);
  while (n > 0 && kc->server[n - 1] == '/')
    kc->server[--n] = '\0';
  if ((rc = check_scheme(kc->server, where, err))) return rc;
  kc->allow_plain_http = plain_http_opt_in(c);
  json_t *insecure = json_object_get(c, "insecure-skip-tls-verify");
  if (insecure && !json_is_boolean(insecure) && !json_is_null(insecure))
    return gpc_fail(err, GPC_E_INVAL, "%s.insecure-skip-tls-verify: must be true or false", where);
  kc->insecure = json_is_true(insecure);
  if ((rc = load_blob(c, where, "certificate-authority", base_dir, &kc->ca, err))) return rc;
  if (kc->insecure && kc->ca.len)
    return gpc_fail(err, GPC_E_INVAL,
                    "%s: certificate-authority and insecure-skip-tls-verify are mutually exclusive",
                    where);
  return GPC_OK;
}

static int load_user(struct kubeconfig *kc, const json_t *u, const char *where, const char *name,
                     const char *base_dir, struct gpc_error *err) {
  if (json_is_null(u)) return GPC_OK;
  if (!json_is_object(u)) return gpc_fail(err, GPC_E_INVAL, "%s: must be a mapping", where);
  static const char *const unsupported[] = {"exec", "auth-provider", "username", "password"};
  for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
    if (json_object_get(u, unsupported[i]))
      return gpc_fail(err, GPC_E_INVAL,
                      "%s (user \"%s\"): %s is not supported; use a token, tokenFile or a client "
                      "certificate",
                      where, name, unsupported[i]);
  int rc;
  if ((rc = load_blob(u, where, "client-certificate", base_dir, &kc->cert, err)) ||
      (rc = load_blob(u, where, "client-key", base_dir, &kc->key, err)))
    return rc;
  if (!kc->cert.len != !kc->key.len)
    return gpc_fail(err, GPC_E_INVAL, "%s: %s without %s", where,
                    kc->cert.len ? "client-certificate" : "client-key",
                    kc->cert.len ? "client-key" : "client-certificate");
  const char *token, *token_file;
  if ((rc = get_str(u, "token", where, &token, err)) ||
      (rc = get_str(u, "tokenFile", where, &token_file, err)))
    return rc;
  if (token) kc->token = gpc_strdup(token);
  if (token_file) {
    /* As in client-go, the file's token wins over an inline one. */
    kc->token_file = join_path(base_dir, token_file);
    struct gpc_error e = {0};
    if (kubeconfig_refresh_token(kc, true, &e) != GPC_OK)
      return gpc_fail(err, e.code, "%s.%s", where, e.msg);
  }
  return GPC_OK;
}

static int load_doc(struct kubeconfig *kc, const json_t *doc, const char *context,
                    const char *base_dir, struct gpc_error *err) {
  if (!json_is_object(doc)) return gpc_fail(err, GPC_E_INVAL, "not a kubeconfig mapping");
  const char *current;
  int rc = get_str(doc, "current-context", "kubeconfig", &current, err);
  if (rc) return rc;
  if (!context) context = current;
  if (!context)
    return gpc_fail(err, GPC_E_NOT_FOUND, "no current-context set and no context given");
  char where[96];
  const json_t *ctx = find_named(doc, "contexts", "context", context, where, sizeof where);
  if (!ctx) return gpc_fail(err, GPC_E_NOT_FOUND, "context \"%s\" not found", context);
  if (!json_is_object(ctx)) return gpc_fail(err, GPC_E_INVAL, "%s: must be a mapping", where);
  kc->context = gpc_strdup(context);
  const char *cluster_name, *user_name, *ns;
  if ((rc = get_str(ctx, "cluster", where, &cluster_name, err)) ||
      (rc = get_str(ctx, "user", where, &user_name, err)) ||
      (rc = get_str(ctx, "namespace", where, &ns, err)))
    return rc;
  if (ns) kc->namespace = gpc_strdup(ns);
  if (!cluster_name) return gpc_fail(err, GPC_E_INVAL, "%s.cluster: missing", where);
  char cwhere[96];
  const json_t *cluster =
      find_named(doc, "clusters", "cluster", cluster_name, cwhere, sizeof cwhere);
  if (!cluster)
    return gpc_fail(err, GPC_E_NOT_FOUND, "%s.cluster: cluster \"%s\" not found", where,
                    cluster_name);
  if ((rc = load_cluster(kc, cluster, cwhere, base_dir, err))) return rc;
  if (!user_name) return GPC_OK; /* anonymous */
  char uwhere[96];
  const json_t *user = find_named(doc, "users", "user", user_name, uwhere, sizeof uwhere);
  if (!user)
    return gpc_fail(err, GPC_E_NOT_FOUND, "%s.user: user \"%s\" not found", where, user_name);
  return load_user(kc, user, uwhere, user_name, base_dir, err);
}

int kubeconfig_load_mem(struct kubeconfig *kc, const char *data, size_t len, const char *context,
                        const char *base_dir, struct gpc_error *err) {
  memset(kc, 0, sizeof *kc);
  json_t *doc = yaml2json_parse(data, len, KC_MAX_FILE, err);
  if (!doc) return err ? err->code : GPC_E_INVAL;
  int rc = load_doc(kc, doc, context, base_dir, err);
  json_cleanse(doc);
  json_decref(doc);
  if (rc)
    kubeconfig_free(kc);
  else if (kc->insecure)
    log_warn("kubeconfig", "TLS verification disabled by insecure-skip-tls-verify",
             KV_S("server", kc->server));
  return rc;
}

/* $KUBECONFIG's first entry that exists (kubectl skips missing ones), else
 * its first entry, else ~/.kube/config. */
static char *default_path(void) {
  const char *env = getenv("KUBECONFIG");
  char *first = NULL;
  for (const char *p = env; p && *p;) {
    size_t n = strcspn(p, ":");
    if (n) {
      char *cand = gpc_strndup(p, n);
      if (access(cand, F_OK) == 0) {
        free(first);
        return cand;
      }
      if (!first)
        first = cand;
      else
        free(cand);
    }
    p += n + (p[n] == ':');
  }
  if (first) return first;
  const char *home = getenv("HOME");
  return gpc_asprintf("%s/.kube/config", home && *home ? home : ".");
}

int kubeconfig_load_file(struct kubeconfig *kc, const char *path, const char *context,
                         struct gpc_error *err) {
  memset(kc, 0, sizeof *kc);
  char *p = path ? gpc_strdup(path) : default_path();
  size_t len = 0;
  struct gpc_error e = {0};
  int rc;
  unsigned char *data = read_file(p, "kubeconfig", &len, &e);
  if (!data) {
    rc = gpc_fail(err, e.code, "%s", e.msg);
  } else {
    char *dir = gpc_strdup(p);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    rc = kubeconfig_load_mem(kc, (const char *)data, len, context, slash ? dir : NULL, &e);
    if (rc) gpc_fail(err, e.code, "%s: %s", p, e.msg);
    free(dir);
    wipe_free(data, len);
  }
  free(p);
  return rc;
}

/* ---- in-cluster --------------------------------------------------------- */

static char *trimmed(const unsigned char *data, size_t len) {
  while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' ' ||
                 data[len - 1] == '\t'))
    len--;
  return gpc_strndup((const char *)data, len);
}

int kubeconfig_load_incluster(struct kubeconfig *kc, struct gpc_error *err) {
  memset(kc, 0, sizeof *kc);
  const char *host = getenv("KUBERNETES_SERVICE_HOST");
  const char *port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port)
    return gpc_fail(
        err, GPC_E_NOT_FOUND,
        "not in cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  const char *dir = getenv("GPC_SA_DIR");
  if (!dir || !*dir) dir = KC_SA_DIR;
  kc->in_cluster = true;
  kc->server = strchr(host, ':') ? gpc_asprintf("https://[%s]:%s", host, port)
                                 : gpc_asprintf("https://%s:%s", host, port);
  kc->token_file = gpc_asprintf("%s/token", dir);
  int rc = kubeconfig_refresh_token(kc, true, err);
  if (rc) goto out;
  char *path = gpc_asprintf("%s/ca.crt", dir);
  struct gpc_error e = {0};
  kc->ca.data = read_file(path, "in-cluster CA", &kc->ca.len, &e);
  if (!kc->ca.data) {
    /* client-go also goes on without it: verification then uses system roots. */
    log_warn("kubeconfig", "in-cluster CA unreadable, using system roots", KV_S("error", e.msg));
    kc->ca.len = 0;
  }
  free(path);
  path = gpc_asprintf("%s/namespace", dir);
  size_t len = 0;
  unsigned char *ns = read_file(path, "in-cluster namespace", &len, &e);
  if (ns) {
    kc->namespace = trimmed(ns, len);
    free(ns);
  }
  free(path);
out:
  if (rc) kubeconfig_free(kc);
  return rc;
}

/* The order of controller-runtime's GetConfig (client-go loading rules):
 * an explicit file, then $KUBECONFIG, then in-cluster, then ~/.kube/config.
 * $KUBECONFIG comes before in-cluster so that a pod can be pointed at
 * another cluster; in-cluster comes before ~/.kube/config so that a stray
 * file in the image cannot redirect the controller. */
int kubeconfig_load_auto(struct kubeconfig *kc, const char *path, const char *context,
                         struct gpc_error *err) {
  if (path && *path) return kubeconfig_load_file(kc, path, context, err);
  const char *env = getenv("KUBECONFIG");
  if (env && *env) return kubeconfig_load_file(kc, NULL, context, err);
  const char *host = getenv("KUBERNETES_SERVICE_HOST");
  if (host && *host) {
    /* In-cluster config has no contexts; client-go ignores the override,
     * and so do we, but say so rather than silently. */
    if (context && *context)
      log_warn("kubeconfig", "--context ignored: using in-cluster config",
               KV_S("context", context));
    return kubeconfig_load_incluster(kc, err);
  }
  return kubeconfig_load_file(kc, NULL, context, err);
}

int kubeconfig_refresh_token(struct kubeconfig *kc, bool force, struct gpc_error *err) {
  if (!kc->token_file) return GPC_OK;
  time_t now = time(NULL);
  if (!force && kc->token && now - kc->token_read_at < KC_TOKEN_REFRESH_S) return GPC_OK;
  size_t len = 0;
  /* A failed read is tried again after the same interval (or a 401), not
   * before every request: the caller reports it once a minute at most. */
  if (kc->token) kc->token_read_at = now;
  unsigned char *data = read_file(kc->token_file, "tokenFile", &len, err);
  if (!data) return err ? err->code : GPC_E_IO;
  char *tok = trimmed(data, len);
  wipe_free(data, len);
  if (!*tok) {
    free(tok);
    return gpc_fail(err, GPC_E_INVAL, "tokenFile: %s is empty", kc->token_file);
  }
  wipe_str(&kc->token);
  kc->token = tok;
  kc->token_read_at = now;
  return GPC_OK;
}

void kubeconfig_free(struct kubeconfig *kc) {
  if (!kc) return;
  free(kc->server);
  free(kc->context);
  free(kc->namespace);
  free(kc->token_file);
  blob_free(&kc->ca);
  blob_free(&kc->cert);
  blob_free(&kc->key);
  wipe_str(&kc->token);
  memset(kc, 0, sizeof *kc);
}
