/* kubeconfig.h — where the API server is and how to authenticate.
 *
 * Sources: a kubeconfig file (current-context or an explicit context), or
 * in-cluster config (KUBERNETES_SERVICE_HOST/PORT and the service account
 * files under /var/run/secrets/kubernetes.io/serviceaccount, overridable
 * for tests with GPC_SA_DIR). Certificates and keys are held in memory and
 * handed to libcurl as blobs; they never touch a temp file and are never
 * logged. All strings and blobs are owned by the struct.
 *
 * Wiping secrets, and where it is only best effort:
 *  - wiped before free: file contents, the parsed YAML tree, yaml2json's
 *    copies of scalars, libyaml's event values and input buffers, replaced
 *    tokens, and everything in this struct (kubeconfig_free);
 *    kube_client wipes its header lists ("Authorization: Bearer ...") and
 *    lends the client key to libcurl without a copy (CURL_BLOB_NOCOPY).
 *    test/unit/test_secret_wipe.c checks that no freed block holds the
 *    token or key after load + free.
 *  - not reachable from our code: blocks that realloc moves (libyaml's
 *    scanner strings), the request buffer libcurl builds from our headers,
 *    OpenSSL's parsed key, and anything swapped out or in a core dump. Use
 *    tokenFile / in-cluster tokens (short-lived, rotated) rather than
 *    relying on wiping.
 */
#ifndef GPC_KUBECONFIG_H
#define GPC_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "errors.h"

struct kc_blob {
  unsigned char *data; /* PEM bytes */
  size_t len;
};

struct kubeconfig {
  char *server;         /* "https://host:port", no trailing slash */
  char *context;        /* name of the context used; NULL in-cluster */
  char *namespace;      /* context namespace or the SA namespace; may be NULL */
  struct kc_blob ca;    /* certificate-authority(-data); empty = system roots */
  struct kc_blob cert;  /* client-certificate(-data) */
  struct kc_blob key;   /* client-key(-data) */
  char *token;          /* bearer token (token or read from token_file) */
  char *token_file;     /* re-read periodically and after a 401 when set */
  time_t token_read_at; /* when token was last read from token_file */
  bool insecure;        /* insecure-skip-tls-verify */
  /* The cluster opts in to credentials over plain http:// (extension
   * "gpupolicy.dev/allow-plain-http" with `extension: {allow: true}`);
   * kube_client refuses to send a token over http:// without it. */
  bool allow_plain_http;
  bool in_cluster;
};

/* Loads `path` (NULL: $KUBECONFIG's first entry, else ~/.kube/config) using
 * `context` (NULL: current-context). Errors name the file and the missing or
 * broken field: "context \"x\" not found", "users[0].user.client-key-data: bad base64". */
int kubeconfig_load_file(struct kubeconfig *kc, const char *path, const char *context,
                         struct gpc_error *err);
/* Parses kubeconfig text already in memory (used by the file loader and fuzzing). */
int kubeconfig_load_mem(struct kubeconfig *kc, const char *data, size_t len, const char *context,
                        const char *base_dir, struct gpc_error *err);
/* In-cluster configuration. */
int kubeconfig_load_incluster(struct kubeconfig *kc, struct gpc_error *err);
/* Order of client-go / controller-runtime: `path` (--kubeconfig) → $KUBECONFIG
 * → in-cluster when KUBERNETES_SERVICE_HOST is set → ~/.kube/config. A
 * `context` given with in-cluster config is ignored with a warning (as
 * client-go ignores it). */
int kubeconfig_load_auto(struct kubeconfig *kc, const char *path, const char *context,
                         struct gpc_error *err);

/* Re-reads token_file when it is set and `force` or at least 60 s passed
 * since the last attempt. Returns GPC_OK (also when nothing to do) or an
 * error; the old token is kept on error, and a failed attempt counts as an
 * attempt (an unreadable file is not re-read, nor reported, per request). */
int kubeconfig_refresh_token(struct kubeconfig *kc, bool force, struct gpc_error *err);

/* Frees all members (wiping credentials) and zeroes the struct. */
void kubeconfig_free(struct kubeconfig *kc);

#endif
