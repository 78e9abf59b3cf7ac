/* informer_probe.c — runs one informer and reports what it does as JSON
 * lines on stdout, for test/integration/test_informer.py:
 *
 *   {"event":"add|update|delete","key":"ns/name","rv":"123"}   (--events)
 *   {"synced":true,"objects":N}
 *   {"stats":{...}}          whenever the informer's counters change
 *
 *   informer_probe --kubeconfig FILE [--group G] --version V --resource R
 *                  [--namespace N] [--label-selector S] [--field-selector S]
 *                  [--page-size N] [--watch-min-s S --watch-max-s S]
 *                  [--backoff-base-ms MS] [--events] [--exit-after-synced]
 *                  [--exit-after-events N] [--project rv|node]
 *                  [--fail-submits SKIP,COUNT]
 *
 * --project node caches decode.h's struct gpc_node (what the controller
 * keeps) instead of just the resourceVersion; the synced and final lines
 * then also carry rss_kb/hwm_kb (VmRSS/VmHWM) for the memory benchmark.
 *
 * --fail-submits lets SKIP submits through, then makes COUNT fail
 * (kube_client_fail_submits), to test the informer's retry of a refused
 * request.
 *
 * Runs until SIGTERM/SIGINT (or synced with --exit-after-synced), then frees
 * everything and prints a final stats line.
 */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "informer.h"
#include "kube_client.h"
#include "log.h"
#include "decode.h"

struct proj {
  char *rv;
};

struct probe {
  struct gpc_loop *loop;
  struct informer *inf;
  bool events;
  bool exit_after_synced;
  bool node;
  uint64_t exit_after_events;
  uint64_t synced_ms, start_ms;
  struct informer_stats last;
  struct kube_client_stats last_client;
  struct kube_client *client;
};

static void *project(const json_t *obj, void *ud) {
  if (((struct probe *)ud)->node) return decode_node_new(obj);
  struct proj *p = gpc_calloc(1, sizeof *p);
  const char *rv =
      json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
  p->rv = gpc_strdup(rv ? rv : "");
  return p;
}

static void free_proj(void *proj, void *ud) {
  if (((struct probe *)ud)->node) {
    decode_node_free(proj);
    return;
  }
  struct proj *p = proj;
  free(p->rv);
  free(p);
}

static void print_event(struct probe *pr, const char *what, const char *key, const void *obj) {
  if (!pr->events) return;
  json_t *o =
      json_pack("{s:s,s:s,s:s}", "event", what, "key", key, "rv", ((const struct proj *)obj)->rv);
  char *s = json_dumps(o, JSON_COMPACT);
  printf("%s\n", s);
  free(s);
  json_decref(o);
}

static void on_add(struct informer *inf, const char *key, const void *obj, void *ud) {
  print_event(ud, "add", key, obj);
}

static void on_update(struct informer *inf, const char *key, const void *old, const void *cur,
                      void *ud) {
  print_event(ud, "update", key, cur);
}

static void on_delete(struct informer *inf, const char *key, const void *obj, void *ud) {
  print_event(ud, "delete", key, obj);
}

/* VmRSS and VmHWM in kB from /proc/self/status. */
static void mem_kb(long *rss, long *hwm) {
  *rss = *hwm = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) *rss = atol(line + 6);
    if (strncmp(line, "VmHWM:", 6) == 0) *hwm = atol(line + 6);
  }
  fclose(f);
}

static void on_synced(struct informer *inf, void *ud) {
  struct probe *pr = ud;
  long rss, hwm;
  mem_kb(&rss, &hwm);
  pr->synced_ms = gpc_loop_now_ms();
  printf("{\"synced\":true,\"objects\":%zu,\"rss_kb\":%ld,\"hwm_kb\":%ld,\"ms\":%llu}\n",
         informer_size(inf), rss, hwm, (unsigned long long)(pr->synced_ms - pr->start_ms));
  fflush(stdout);
  if (pr->exit_after_synced) gpc_loop_stop(pr->loop);
}

static void print_stats(struct probe *pr) {
  struct informer_stats s;
  struct kube_client_stats c;
  informer_get_stats(pr->inf, &s);
  kube_client_stats(pr->client, &c);
  printf("{\"stats\":{\"lists\":%llu,\"list_pages\":%llu,\"relists\":%llu,\"watches\":%llu,"
         "\"events\":%llu,\"bookmarks\":%llu,\"gone\":%llu,\"errors\":%llu,\"objects\":%zu,"
         "\"synced\":%s,\"rv\":\"%s\",\"retries\":%llu,\"attempts\":%llu}}\n",
         (unsigned long long)s.lists, (unsigned long long)s.list_pages,
         (unsigned long long)s.relists, (unsigned long long)s.watches, (unsigned long long)s.events,
         (unsigned long long)s.bookmarks, (unsigned long long)s.gone, (unsigned long long)s.errors,
         s.objects, informer_synced(pr->inf) ? "true" : "false", informer_resource_version(pr->inf),
         (unsigned long long)c.retries, (unsigned long long)c.attempts);
  fflush(stdout);
  pr->last = s;
  pr->last_client = c;
}

static void on_tick(struct gpc_loop *loop, uint64_t id, void *ud) {
  struct probe *pr = ud;
  struct informer_stats s;
  struct kube_client_stats c;
  informer_get_stats(pr->inf, &s);
  kube_client_stats(pr->client, &c);
  if (pr->exit_after_events && s.events >= pr->exit_after_events) {
    long rss, hwm;
    mem_kb(&rss, &hwm);
    printf("{\"events_done\":%llu,\"ms_since_sync\":%llu,\"rss_kb\":%ld,\"hwm_kb\":%ld}\n",
           (unsigned long long)s.events, (unsigned long long)(gpc_loop_now_ms() - pr->synced_ms),
           rss, hwm);
    gpc_loop_stop(loop);
    return;
  }
  if (memcmp(&s, &pr->last, sizeof s) != 0 || c.retries != pr->last_client.retries ||
      c.attempts != pr->last_client.attempts)
    print_stats(pr);
  fflush(stdout);
  gpc_loop_add_timer(loop, 50, on_tick, pr);
}

static void on_signal(struct gpc_loop *loop, int signo, void *ud) {
  gpc_loop_stop(loop);
}

int main(int argc, char **argv) {
  gpc_alloc_init();
  log_configure(getenv("GPC_LOG") ? getenv("GPC_LOG") : "warn");
  struct informer_config icfg = {0};
  const char *kubeconfig = NULL;
  struct probe pr = {0};
  unsigned fail_skip = 0, fail_count = 0;
  static const struct option opts[] = {{"kubeconfig", 1, 0, 'k'},
                                       {"group", 1, 0, 'g'},
                                       {"version", 1, 0, 'V'},
                                       {"resource", 1, 0, 'r'},
                                       {"namespace", 1, 0, 'n'},
                                       {"label-selector", 1, 0, 'l'},
                                       {"field-selector", 1, 0, 'f'},
                                       {"page-size", 1, 0, 'p'},
                                       {"watch-min-s", 1, 0, 'w'},
                                       {"watch-max-s", 1, 0, 'W'},
                                       {"backoff-base-ms", 1, 0, 'b'},
                                       {"events", 0, 0, 'e'},
                                       {"exit-after-synced", 0, 0, 'x'},
                                       {"exit-after-events", 1, 0, 'E'},
                                       {"project", 1, 0, 'P'},
                                       {"fail-submits", 1, 0, 'F'},
                                       {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'k':
      kubeconfig = optarg;
      break;
    case 'g':
      icfg.group = optarg;
      break;
    case 'V':
      icfg.version = optarg;
      break;
    case 'r':
      icfg.resource = optarg;
      break;
    case 'n':
      icfg.namespace = optarg;
      break;
    case 'l':
      icfg.label_selector = optarg;
      break;
    case 'f':
      icfg.field_selector = optarg;
      break;
    case 'p':
      icfg.page_size = atol(optarg);
      break;
    case 'w':
      icfg.watch_min_s = atol(optarg);
      break;
    case 'W':
      icfg.watch_max_s = atol(optarg);
      break;
    case 'b':
      icfg.backoff_base_ms = (uint64_t)atol(optarg);
      break;
    case 'e':
      pr.events = true;
      break;
    case 'F':
      if (sscanf(optarg, "%u,%u", &fail_skip, &fail_count) != 2) {
        fprintf(stderr, "informer_probe: --fail-submits wants SKIP,COUNT\n");
        return 2;
      }
      break;
    case 'x':
      pr.exit_after_synced = true;
      break;
    case 'E':
      pr.exit_after_events = (uint64_t)atoll(optarg);
      break;
    case 'P':
      pr.node = strcmp(optarg, "node") == 0;
      break;
    default:
      return 2;
    }
  }
  struct gpc_error err = {0};
  struct kubeconfig kc = {0};
  if (kubeconfig_load_auto(&kc, kubeconfig, NULL, &err)) {
    fprintf(stderr, "kubeconfig: %s\n", err.msg);
    return 1;
  }
  pr.loop = gpc_loop_new(&err);
  /* Not the controller's user agent: see kube_call.c. */
  struct kube_client_config ccfg = {.kc = &kc, .user_agent = "gpc-test-tool/" GPC_VERSION};
  pr.client = kube_client_new(pr.loop, &ccfg, &err);
  if (!pr.client) {
    fprintf(stderr, "client: %s\n", err.msg);
    return 1;
  }
  icfg.project = project;
  icfg.free_proj = free_proj;
  icfg.on_add = on_add;
  icfg.on_update = on_update;
  icfg.on_delete = on_delete;
  icfg.on_synced = on_synced;
  icfg.ud = &pr;
  pr.inf = informer_new(pr.client, pr.loop, &icfg, &err);
  if (!pr.inf) {
    fprintf(stderr, "informer: %s\n", err.msg);
    return 2;
  }
  gpc_loop_add_signal(pr.loop, SIGTERM, on_signal, &pr);
  gpc_loop_add_signal(pr.loop, SIGINT, on_signal, &pr);
  pr.start_ms = gpc_loop_now_ms();
  if (fail_count) kube_client_fail_submits(pr.client, fail_skip, fail_count);
  informer_start(pr.inf);
  gpc_loop_add_timer(pr.loop, 50, on_tick, &pr);
  gpc_loop_run(pr.loop);
  print_stats(&pr);
  informer_free(pr.inf);
  kube_client_free(pr.client);
  gpc_loop_free(pr.loop);
  kubeconfig_free(&kc);
  return 0;
}
