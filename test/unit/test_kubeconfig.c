/* test_kubeconfig.c — kubeconfig contexts, credentials, broken variants, in-cluster config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "kubeconfig.h"
#include "log.h"

#define DIR "test/data/kubeconfig/"

static bool blob_has(const struct kc_blob *b, const char *needle) {
  return b->len && memmem(b->data, b->len, needle, strlen(needle)) != NULL;
}

static void test_current_context(void **state) {
  (void)state;
  struct kubeconfig kc;
  struct gpc_error err = {0};
  assert_int_equal(kubeconfig_load_file(&kc, DIR "good.yaml", NULL, &err), GPC_OK);
  assert_string_equal(kc.context, "dev");
  assert_string_equal(kc.server, "https://127.0.0.1:6443"); /* trailing slash dropped */
  assert_true(blob_has(&kc.ca, "TEST-CA-NOT-A-REAL-CERT"));
  assert_string_equal(kc.token, "12345");
  assert_null(kc.token_file);
  assert_null(kc.namespace);
  assert_int_equal(kc.cert.len, 0);
  assert_false(kc.insecure);
  assert_false(kc.in_cluster);
  kubeconfig_free(&kc);
  assert_null(kc.server); /* zeroed */
}

static void test_explicit_context_files(void **state) {
  (void)state;
  struct kubeconfig kc;
  struct gpc_error err = {0};
  assert_int_equal(kubeconfig_load_file(&kc, DIR "good.yaml", "prod", &err), GPC_OK);
  assert_string_equal(kc.server, "https://[::1]:8443");
  assert_string_equal(kc.namespace, "ops");
  /* Relative paths resolve against the kubeconfig's directory. */
  assert_true(blob_has(&kc.ca, "TEST-CA-NOT-A-REAL-CERT"));
  assert_true(blob_has(&kc.cert, "TEST-CLIENT-NOT-A-REAL-CERT"));
  assert_true(blob_has(&kc.key, "TEST-KEY-NOT-A-REAL-KEY"));
  assert_string_equal(kc.token, "file-token-abc"); /* newline trimmed */
  assert_string_equal(kc.token_file, DIR "token");
  assert_true(kc.token_read_at > 0);
  kubeconfig_free(&kc);

  assert_int_equal(kubeconfig_load_file(&kc, DIR "good.yaml", "lab", &err), GPC_OK);
  assert_string_equal(kc.server, "https://lab.example.com:6443"); /* scheme defaulted */
  assert_true(kc.insecure);
  assert_int_equal(kc.ca.len, 0);
  assert_true(blob_has(&kc.cert, "TEST-CLIENT"));
  assert_true(blob_has(&kc.key, "TEST-KEY"));
  assert_null(kc.token);
  kubeconfig_free(&kc);

  assert_int_equal(kubeconfig_load_file(&kc, DIR "good.yaml", "anon", &err), GPC_OK);
  assert_null(kc.token);
  assert_int_equal(kc.key.len, 0);
  kubeconfig_free(&kc);
}

/* Loads `file` (with `context`), expecting `code` and `needle` in the message. */
static void load_fails(const char *file, const char *context, int code, const char *needle) {
  struct kubeconfig kc;
  struct gpc_error err = {0};
  int rc = kubeconfig_load_file(&kc, file, context, &err);
  if (rc == GPC_OK) {
    kubeconfig_free(&kc);
    fail_msg("%s loaded but should fail", file);
  }
  assert_int_equal(rc, code);
  assert_int_equal(err.code, code);
  if (!strstr(err.msg, needle)) fail_msg("%s: message \"%s\" lacks \"%s\"", file, err.msg, needle);
  assert_non_null(strstr(err.msg, file)); /* errors name the file */
  assert_null(kc.server);                 /* nothing half-loaded is left behind */
}

static void test_broken_variants(void **state) {
  (void)state;
  load_fails(DIR "good.yaml", "qa", GPC_E_NOT_FOUND, "context \"qa\" not found");
  load_fails(DIR "missing-current.yaml", NULL, GPC_E_NOT_FOUND, "context \"staging\" not found");
  load_fails(DIR "missing-cluster.yaml", NULL, GPC_E_NOT_FOUND,
             "contexts[0].context.cluster: cluster \"nowhere\" not found");
  load_fails(DIR "missing-user.yaml", NULL, GPC_E_NOT_FOUND,
             "contexts[0].context.user: user \"nobody\" not found");
  load_fails(DIR "bad-base64.yaml", "lab", GPC_E_INVAL,
             "users[2].user.client-key-data: bad base64");
  load_fails(DIR "bad-padding.yaml", NULL, GPC_E_INVAL,
             "clusters[0].cluster.certificate-authority-data: bad base64");
  load_fails(DIR "missing-server.yaml", NULL, GPC_E_INVAL, "clusters[0].cluster.server: missing");
  load_fails(DIR "unreadable-ca.yaml", "prod", GPC_E_NOT_FOUND,
             "clusters[1].cluster.certificate-authority: " DIR "missing/ca.crt");
  load_fails(DIR "exec.yaml", NULL, GPC_E_INVAL, "users[0].user (user \"dev-user\"): exec");
  load_fails(DIR "insecure-with-ca.yaml", "lab", GPC_E_INVAL, "mutually exclusive");
  load_fails(DIR "not-yaml.yaml", NULL, GPC_E_INVAL, "line ");
  load_fails(DIR "not-mapping.yaml", NULL, GPC_E_INVAL, "not a kubeconfig mapping");
  load_fails(DIR "no-such-file.yaml", NULL, GPC_E_NOT_FOUND, "No such file");
}

static void test_mem_and_types(void **state) {
  (void)state;
  struct kubeconfig kc;
  struct gpc_error err = {0};
  const char *y = "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
                  "clusters: [{name: k, cluster: {server: 'http://h:1'}}]\n"
                  "users: [{name: u, user: {token: 12345}}]\n";
  assert_int_equal(kubeconfig_load_mem(&kc, y, strlen(y), NULL, NULL, &err), GPC_E_INVAL);
  assert_non_null(strstr(err.msg, "users[0].user.token: must be a string"));
  const char *nocur = "contexts: []\n";
  assert_int_equal(kubeconfig_load_mem(&kc, nocur, strlen(nocur), NULL, NULL, &err),
                   GPC_E_NOT_FOUND);
  assert_non_null(strstr(err.msg, "no current-context"));
  const char *half = "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
                     "clusters: [{name: k, cluster: {server: 'http://h:1'}}]\n"
                     "users: [{name: u, user: {client-certificate-data: LS0tLS1CRUdJTiBY}}]\n";
  assert_int_equal(kubeconfig_load_mem(&kc, half, strlen(half), NULL, NULL, &err), GPC_E_INVAL);
  assert_non_null(strstr(err.msg, "client-certificate without client-key"));
  const char *notpem = "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
                       "clusters: [{name: k, cluster: {server: 'https://h', "
                       "certificate-authority-data: aGVsbG8=}}]\n";
  assert_int_equal(kubeconfig_load_mem(&kc, notpem, strlen(notpem), NULL, NULL, &err), GPC_E_TLS);
  assert_non_null(strstr(err.msg, "not PEM"));
}

/* Only http(s) servers; the plain-HTTP opt-in is a cluster extension. */
static void test_scheme_and_plain_http_opt_in(void **state) {
  (void)state;
  struct kubeconfig kc;
  struct gpc_error err = {0};
  const char *ftp = "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
                    "clusters: [{name: k, cluster: {server: 'file:///etc/passwd'}}]\n";
  assert_int_equal(kubeconfig_load_mem(&kc, ftp, strlen(ftp), NULL, NULL, &err), GPC_E_INVAL);
  assert_non_null(strstr(err.msg, "clusters[0].cluster.server: unsupported scheme"));
  const char *plain = "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
                      "clusters: [{name: k, cluster: {server: 'http://h:1'}}]\n"
                      "users: [{name: u, user: {token: t}}]\n";
  assert_int_equal(kubeconfig_load_mem(&kc, plain, strlen(plain), NULL, NULL, &err), GPC_OK);
  assert_false(kc.allow_plain_http);
  kubeconfig_free(&kc);
  const char *optin =
      "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
      "clusters: [{name: k, cluster: {server: 'http://h:1', extensions: [{name: other, extension: "
      "{allow: true}}, {name: gpupolicy.dev/allow-plain-http, extension: {allow: true}}]}}]\n"
      "users: [{name: u, user: {token: t}}]\n";
  assert_int_equal(kubeconfig_load_mem(&kc, optin, strlen(optin), NULL, NULL, &err), GPC_OK);
  assert_true(kc.allow_plain_http);
  kubeconfig_free(&kc);
  const char *no = "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
                   "clusters: [{name: k, cluster: {server: 'http://h:1', extensions: [{name: "
                   "gpupolicy.dev/allow-plain-http, extension: {allow: 'yes'}}]}}]\n";
  assert_int_equal(kubeconfig_load_mem(&kc, no, strlen(no), NULL, NULL, &err), GPC_OK);
  assert_false(kc.allow_plain_http);
  kubeconfig_free(&kc);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_in_cluster(void **state) {
  (void)state;
  struct kubeconfig kc;
  struct gpc_error err = {0};
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  assert_int_equal(kubeconfig_load_incluster(&kc, &err), GPC_E_NOT_FOUND);
  assert_non_null(strstr(err.msg, "not in cluster"));

  setenv("GPC_SA_DIR", DIR "sa", 1);
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  assert_int_equal(kubeconfig_load_auto(&kc, NULL, NULL, &err), GPC_OK);
  assert_true(kc.in_cluster);
  assert_null(kc.context);
  assert_string_equal(kc.server, "https://10.96.0.1:443");
  assert_string_equal(kc.token, "sa-token-xyz");
  assert_string_equal(kc.namespace, "gpu-operator");
  assert_true(blob_has(&kc.ca, "TEST-CA"));
  kubeconfig_free(&kc);

  setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
  assert_int_equal(kubeconfig_load_incluster(&kc, &err), GPC_OK);
  assert_string_equal(kc.server, "https://[fd00:10:96::1]:443");
  kubeconfig_free(&kc);

  /* --kubeconfig wins over the environment. */
  assert_int_equal(kubeconfig_load_auto(&kc, DIR "good.yaml", NULL, &err), GPC_OK);
  assert_false(kc.in_cluster);
  kubeconfig_free(&kc);

  setenv("GPC_SA_DIR", DIR "no-such-dir", 1);
  assert_int_equal(kubeconfig_load_incluster(&kc, &err), GPC_E_NOT_FOUND);
  assert_non_null(strstr(err.msg, "no-such-dir/token"));
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  unsetenv("GPC_SA_DIR");
}

static void test_refresh_token(void **state) {
  (void)state;
  char dir[] = "/tmp/kc-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *tok = gpc_asprintf("%s/token", dir);
  write_file(tok, "first\n");
  char *cfg = gpc_asprintf("%s/config", dir);
  write_file(cfg, "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
                  "clusters: [{name: k, cluster: {server: 'http://h:1'}}]\n"
                  "users: [{name: u, user: {token: inline, tokenFile: token}}]\n");
  struct kubeconfig kc;
  struct gpc_error err = {0};
  assert_int_equal(kubeconfig_load_file(&kc, cfg, NULL, &err), GPC_OK);
  assert_string_equal(kc.token, "first"); /* the file wins over the inline token */
  write_file(tok, "second\n");
  assert_int_equal(kubeconfig_refresh_token(&kc, false, &err), GPC_OK);
  assert_string_equal(kc.token, "first"); /* read less than 60 s ago */
  kc.token_read_at -= 61;
  assert_int_equal(kubeconfig_refresh_token(&kc, false, &err), GPC_OK);
  assert_string_equal(kc.token, "second");
  write_file(tok, "third");
  assert_int_equal(kubeconfig_refresh_token(&kc, true, &err), GPC_OK); /* after a 401 */
  assert_string_equal(kc.token, "third");
  /* A vanished or empty file keeps the old token. */
  write_file(tok, "\n");
  assert_int_equal(kubeconfig_refresh_token(&kc, true, &err), GPC_E_INVAL);
  assert_string_equal(kc.token, "third");
  unlink(tok);
  assert_int_equal(kubeconfig_refresh_token(&kc, true, &err), GPC_E_NOT_FOUND);
  assert_string_equal(kc.token, "third");
  /* The periodic re-read of a file that became unreadable fails once, then
   * waits the interval again instead of failing (and being logged) on every
   * request. */
  kc.token_read_at -= 61;
  assert_int_equal(kubeconfig_refresh_token(&kc, false, &err), GPC_E_NOT_FOUND);
  assert_int_equal(kubeconfig_refresh_token(&kc, false, &err), GPC_OK);
  assert_string_equal(kc.token, "third");
  write_file(tok, "fourth");
  kc.token_read_at -= 61;
  assert_int_equal(kubeconfig_refresh_token(&kc, false, &err), GPC_OK);
  assert_string_equal(kc.token, "fourth");
  kubeconfig_free(&kc);
  unlink(tok);
  /* Missing tokenFile at load time is an error naming the user entry. */
  assert_int_equal(kubeconfig_load_file(&kc, cfg, NULL, &err), GPC_E_NOT_FOUND);
  assert_non_null(strstr(err.msg, "users[0].user.tokenFile"));
  unlink(cfg);
  rmdir(dir);
  free(tok);
  free(cfg);
}

static void test_default_path(void **state) {
  (void)state;
  struct kubeconfig kc;
  struct gpc_error err = {0};
  setenv("KUBECONFIG", DIR "good.yaml:/nonexistent/second", 1);
  assert_int_equal(kubeconfig_load_file(&kc, NULL, "prod", &err), GPC_OK);
  assert_string_equal(kc.context, "prod");
  kubeconfig_free(&kc);
  /* Missing entries are skipped, as kubectl does. */
  setenv("KUBECONFIG", "::/nonexistent/first:" DIR "good.yaml", 1);
  assert_int_equal(kubeconfig_load_file(&kc, NULL, NULL, &err), GPC_OK);
  assert_string_equal(kc.context, "dev");
  kubeconfig_free(&kc);
  setenv("KUBECONFIG", "/nonexistent/first:/nonexistent/second", 1);
  assert_int_equal(kubeconfig_load_file(&kc, NULL, NULL, &err), GPC_E_NOT_FOUND);
  assert_non_null(strstr(err.msg, "/nonexistent/first"));
  unsetenv("KUBECONFIG");
}

/* kubeconfig_load_auto follows client-go / controller-runtime:
 * --kubeconfig → $KUBECONFIG → in-cluster → ~/.kube/config. */
static void test_auto_order(void **state) {
  (void)state;
  char home[] = "/tmp/kc-home-XXXXXX";
  assert_non_null(mkdtemp(home));
  char *kdir = gpc_asprintf("%s/.kube", home);
  assert_int_equal(mkdir(kdir, 0700), 0);
  char *cfg = gpc_asprintf("%s/config", kdir);
  write_file(cfg,
             "current-context: home\ncontexts: [{name: home, context: {cluster: k, user: u}}]\n"
             "clusters: [{name: k, cluster: {server: 'https://home:6443'}}]\n"
             "users: [{name: u, user: {token: t}}]\n");
  char *old_home = getenv("HOME") ? gpc_strdup(getenv("HOME")) : NULL;
  setenv("HOME", home, 1);
  setenv("GPC_SA_DIR", DIR "sa", 1);
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  struct kubeconfig kc;
  struct gpc_error err = {0};

  /* 1. --kubeconfig beats everything. */
  setenv("KUBECONFIG", cfg, 1);
  assert_int_equal(kubeconfig_load_auto(&kc, DIR "good.yaml", NULL, &err), GPC_OK);
  assert_string_equal(kc.context, "dev");
  kubeconfig_free(&kc);

  /* 2. $KUBECONFIG beats in-cluster, and honours --context. */
  setenv("KUBECONFIG", DIR "good.yaml", 1);
  assert_int_equal(kubeconfig_load_auto(&kc, NULL, "prod", &err), GPC_OK);
  assert_false(kc.in_cluster);
  assert_string_equal(kc.context, "prod");
  kubeconfig_free(&kc);
  /* A $KUBECONFIG naming only missing files is an error, not a silent fallback. */
  setenv("KUBECONFIG", "/nonexistent/kc", 1);
  assert_int_equal(kubeconfig_load_auto(&kc, NULL, NULL, &err), GPC_E_NOT_FOUND);
  assert_non_null(strstr(err.msg, "/nonexistent/kc"));

  /* 3. In-cluster beats ~/.kube/config; a --context is ignored with a warning. */
  unsetenv("KUBECONFIG");
  char *logbuf = NULL;
  size_t loglen = 0;
  FILE *logf = open_memstream(&logbuf, &loglen);
  assert_non_null(logf);
  log_set_output(logf);
  assert_int_equal(log_configure("warn"), 0);
  assert_int_equal(kubeconfig_load_auto(&kc, NULL, "home", &err), GPC_OK);
  assert_true(kc.in_cluster);
  assert_string_equal(kc.server, "https://10.96.0.1:443");
  kubeconfig_free(&kc);
  fflush(logf);
  assert_non_null(strstr(logbuf, "--context ignored"));
  assert_non_null(strstr(logbuf, "home"));
  /* Without --context there is nothing to warn about. */
  fclose(logf);
  free(logbuf);
  logbuf = NULL;
  logf = open_memstream(&logbuf, &loglen);
  assert_non_null(logf);
  log_set_output(logf);
  assert_int_equal(kubeconfig_load_auto(&kc, NULL, NULL, &err), GPC_OK);
  assert_true(kc.in_cluster);
  kubeconfig_free(&kc);
  fflush(logf);
  assert_null(strstr(logbuf, "--context ignored"));
  log_set_output(stderr);
  fclose(logf);
  free(logbuf);
  log_configure("error");

  /* 4. Outside a cluster: ~/.kube/config. */
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  assert_int_equal(kubeconfig_load_auto(&kc, NULL, NULL, &err), GPC_OK);
  assert_false(kc.in_cluster);
  assert_string_equal(kc.server, "https://home:6443");
  kubeconfig_free(&kc);

  unsetenv("GPC_SA_DIR");
  if (old_home)
    setenv("HOME", old_home, 1);
  else
    unsetenv("HOME");
  free(old_home);
  unlink(cfg);
  rmdir(kdir);
  rmdir(home);
  free(cfg);
  free(kdir);
}

int main(void) {
  gpc_alloc_init();
  log_configure("error"); /* keep the insecure warning out of the test output */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_current_context),
      cmocka_unit_test(test_explicit_context_files),
      cmocka_unit_test(test_broken_variants),
      cmocka_unit_test(test_mem_and_types),
      cmocka_unit_test(test_in_cluster),
      cmocka_unit_test(test_refresh_token),
      cmocka_unit_test(test_default_path),
      cmocka_unit_test(test_auto_order),
      cmocka_unit_test(test_scheme_and_plain_http_opt_in),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
