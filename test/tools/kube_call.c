/* kube_call.c — runs REST calls through kube_client and prints one JSON line
 * per response plus a final stats line. Driven by test/integration tests.
 *
 *   kube_call (--kubeconfig FILE | --server URL [--token T] [--insecure]
 *              [--allow-plain-http])
 *             --verb get|list|create|update|patch|delete|watch
 *             [--group G] --version V --resource R [--namespace N] [--name X]
 *             [--subresource S] [--label-selector S] [--field-selector S]
 *             [--limit N] [--continue T] [--rv RV] [--timeout-seconds N]
 *             [--body JSON] [--patch-type merge|json|strategic|apply]
 *             [--field-manager M] [--force] [--qps Q] [--burst B]
 *             [--max-body BYTES] [--timeout-ms MS] [--max-attempts N]
 *             [--repeat N] [--cancel-after-ms MS]
 */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "kube_client.h"
#include "log.h"

struct run {
  struct gpc_loop *loop;
  struct kube_client *client;
  int pending;
  size_t watch_bytes;
  uint64_t first_id;
};

static void on_done(struct kube_client *c, const struct kube_response *r, void *ud) {
  struct run *run = ud;
  json_t *o =
      json_pack("{s:i,s:I,s:i,s:I,s:f}", "rc", r->rc, "code", (json_int_t)r->http_code, "attempts",
                r->attempts, "body_len", (json_int_t)r->body_len, "seconds", r->seconds);
  if (r->error) json_object_set_new(o, "error", json_string(r->error));
  if (r->status) {
    json_object_set_new(o, "reason", json_string(r->status->reason));
    json_object_set_new(o, "message", json_string(r->status->message));
    json_t *causes = json_array();
    for (size_t i = 0; i < r->status->ncauses; i++)
      json_array_append_new(causes, json_pack("{s:s,s:s,s:s}", "type", r->status->causes[i].type,
                                              "message", r->status->causes[i].message, "field",
                                              r->status->causes[i].field));
    json_object_set_new(o, "causes", causes);
  }
  if (run->watch_bytes)
    json_object_set_new(o, "watch_bytes", json_integer((json_int_t)run->watch_bytes));
  if (r->rc == GPC_OK && r->body_len && r->body_len < 4096)
    json_object_set_new(o, "body", json_stringn(r->body, r->body_len));
  char *s = json_dumps(o, JSON_COMPACT);
  printf("%s\n", s);
  fflush(stdout);
  free(s);
  json_decref(o);
  if (--run->pending == 0) gpc_loop_stop(run->loop);
}

static int on_chunk(struct kube_client *c, const char *data, size_t len, void *ud) {
  struct run *run = ud;
  run->watch_bytes += len;
  fwrite(data, 1, len, stderr);
  return 0;
}

static void on_cancel(struct gpc_loop *loop, uint64_t id, void *ud) {
  struct run *run = ud;
  if (kube_client_cancel(run->client, run->first_id)) {
    printf("{\"cancelled\":true}\n");
    if (--run->pending == 0) gpc_loop_stop(loop);
  }
}

static void on_signal(struct gpc_loop *loop, int signo, void *ud) {
  gpc_loop_stop(loop);
}

static enum kube_verb parse_verb(const char *s) {
  static const char *const names[] = {"get",   "list",   "create", "update",
                                      "patch", "delete", "watch"};
  for (int i = 0; i < 7; i++)
    if (strcmp(s, names[i]) == 0) return (enum kube_verb)i;
  fprintf(stderr, "unknown verb %s\n", s);
  exit(2);
}

static enum kube_patch_type parse_patch(const char *s) {
  if (strcmp(s, "json") == 0) return KUBE_PATCH_JSON;
  if (strcmp(s, "strategic") == 0) return KUBE_PATCH_STRATEGIC;
  if (strcmp(s, "apply") == 0) return KUBE_PATCH_APPLY;
  return KUBE_PATCH_MERGE;
}

int main(int argc, char **argv) {
  gpc_alloc_init();
  log_configure(getenv("GPC_LOG") ? getenv("GPC_LOG") : "warn");
  struct kube_request req = {.verb = KUBE_GET};
  /* A user agent of its own: kubesim's per-client counters (the RBAC check)
   * must not mistake test-tool requests for the controller's. */
  struct kube_client_config cfg = {.user_agent = "gpc-test-tool/" GPC_VERSION};
  struct kubeconfig kc = {0};
  const char *kubeconfig = NULL, *server = NULL, *token = NULL;
  int repeat = 1;
  long cancel_after = -1;
  bool insecure = false, allow_plain_http = false;
  static const struct option opts[] = {{"kubeconfig", 1, 0, 'k'},
                                       {"server", 1, 0, 's'},
                                       {"token", 1, 0, 't'},
                                       {"insecure", 0, 0, 'I'},
                                       {"allow-plain-http", 0, 0, 'P'},
                                       {"verb", 1, 0, 'v'},
                                       {"group", 1, 0, 'g'},
                                       {"version", 1, 0, 'V'},
                                       {"resource", 1, 0, 'r'},
                                       {"namespace", 1, 0, 'n'},
                                       {"name", 1, 0, 'N'},
                                       {"subresource", 1, 0, 'S'},
                                       {"label-selector", 1, 0, 'l'},
                                       {"field-selector", 1, 0, 'f'},
                                       {"limit", 1, 0, 'L'},
                                       {"continue", 1, 0, 'c'},
                                       {"rv", 1, 0, 'R'},
                                       {"timeout-seconds", 1, 0, 'T'},
                                       {"body", 1, 0, 'b'},
                                       {"patch-type", 1, 0, 'p'},
                                       {"field-manager", 1, 0, 'm'},
                                       {"force", 0, 0, 'F'},
                                       {"qps", 1, 0, 'q'},
                                       {"burst", 1, 0, 'B'},
                                       {"max-body", 1, 0, 'M'},
                                       {"timeout-ms", 1, 0, 'o'},
                                       {"max-attempts", 1, 0, 'a'},
                                       {"repeat", 1, 0, 'x'},
                                       {"cancel-after-ms", 1, 0, 'C'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'k':
      kubeconfig = optarg;
      break;
    case 's':
      server = optarg;
      break;
    case 't':
      token = optarg;
      break;
    case 'P':
      allow_plain_http = true;
      break;
    case 'I':
      insecure = true;
      break;
    case 'v':
      req.verb = parse_verb(optarg);
      break;
    case 'g':
      req.group = optarg;
      break;
    case 'V':
      req.version = optarg;
      break;
    case 'r':
      req.resource = optarg;
      break;
    case 'n':
      req.namespace = optarg;
      break;
    case 'N':
      req.name = optarg;
      break;
    case 'S':
      req.subresource = optarg;
      break;
    case 'l':
      req.label_selector = optarg;
      break;
    case 'f':
      req.field_selector = optarg;
      break;
    case 'L':
      req.limit = atol(optarg);
      break;
    case 'c':
      req.continue_token = optarg;
      break;
    case 'R':
      req.resource_version = optarg;
      break;
    case 'T':
      req.timeout_seconds = atol(optarg);
      break;
    case 'b':
      req.body = optarg;
      req.body_len = strlen(optarg);
      break;
    case 'p':
      req.patch_type = parse_patch(optarg);
      break;
    case 'm':
      req.field_manager = optarg;
      break;
    case 'F':
      req.force = true;
      break;
    case 'q':
      cfg.qps = atof(optarg);
      break;
    case 'B':
      cfg.burst = atoi(optarg);
      break;
    case 'M':
      cfg.max_body = (size_t)atol(optarg);
      break;
    case 'o':
      cfg.timeout_ms = atol(optarg);
      break;
    case 'a':
      cfg.max_attempts = atoi(optarg);
      break;
    case 'x':
      repeat = atoi(optarg);
      break;
    case 'C':
      cancel_after = atol(optarg);
      break;
    default:
      return 2;
    }
  }
  struct gpc_error err = {0};
  if (kubeconfig) {
    if (kubeconfig_load_file(&kc, kubeconfig, NULL, &err)) {
      fprintf(stderr, "kubeconfig: %s\n", err.msg);
      return 1;
    }
  } else if (server) {
    kc.server = gpc_strdup(server);
    kc.token = token ? gpc_strdup(token) : NULL;
    kc.insecure = insecure;
    kc.allow_plain_http = allow_plain_http;
  } else {
    fprintf(stderr, "--kubeconfig or --server is required\n");
    return 2;
  }
  struct run run = {0};
  run.loop = gpc_loop_new(&err);
  cfg.kc = &kc;
  run.client = kube_client_new(run.loop, &cfg, &err);
  if (!run.client) {
    fprintf(stderr, "client: %s\n", err.msg);
    return 1;
  }
  gpc_loop_add_signal(run.loop, SIGTERM, on_signal, &run);
  gpc_loop_add_signal(run.loop, SIGINT, on_signal, &run);
  uint64_t t0 = gpc_loop_now_ms();
  for (int i = 0; i < repeat; i++) {
    uint64_t id = kube_client_submit(run.client, &req, on_done,
                                     req.verb == KUBE_WATCH ? on_chunk : NULL, &run, &err);
    if (!id) {
      fprintf(stderr, "submit: %s\n", err.msg);
      return 2;
    }
    if (!run.first_id) run.first_id = id;
    run.pending++;
  }
  if (cancel_after >= 0) gpc_loop_add_timer(run.loop, (uint64_t)cancel_after, on_cancel, &run);
  gpc_loop_run(run.loop);
  struct kube_client_stats st;
  kube_client_stats(run.client, &st);
  printf("{\"stats\":{\"submitted\":%llu,\"attempts\":%llu,\"completed\":%llu,\"failed\":%llu,"
         "\"retries\":%llu,\"cancelled\":%llu,\"throttled\":%llu,\"elapsed_ms\":%llu}}\n",
         (unsigned long long)st.submitted, (unsigned long long)st.attempts,
         (unsigned long long)st.completed, (unsigned long long)st.failed,
         (unsigned long long)st.retries, (unsigned long long)st.cancelled,
         (unsigned long long)st.throttled, (unsigned long long)(gpc_loop_now_ms() - t0));
  kube_client_free(run.client);
  gpc_loop_free(run.loop);
  kubeconfig_free(&kc);
  return 0;
}
