/* decode_nodes.c — cost of turning a recorded Node watch stream into the
 * compact structs the controller keeps (budgets B1, B2, B7). Figures only.
 *
 * Usage: decode_nodes FILE MODE [CHUNK]
 *   bare    — the lines are loaded first, then timed: json_loadb + json_decref
 *             of each line (the "jansson alone" reference of B7);
 *   decode  — FILE read in CHUNK-byte reads (default 16 KiB, libcurl's write
 *             size) through watch_decoder_feed, events dropped;
 *   project — as decode, each Node projected with decode_node_new() and
 *             kept, its JSON freed at once (what the informer does).
 * Prints one JSON object: events, wall and CPU seconds of the timed part,
 * and VmRSS/VmHWM (KiB) at start and after the stream.
 */
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "model.h"
#include "decode.h"
#include "watch.h"

struct figures {
  double wall, user, sys;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void cpu_s(double *user, double *sys) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
  *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void start(struct figures *f) {
  f->wall = now_s();
  cpu_s(&f->user, &f->sys);
}

static void stop(struct figures *f) {
  double u, s;
  cpu_s(&u, &s);
  f->wall = now_s() - f->wall;
  f->user = u - f->user;
  f->sys = s - f->sys;
}

/* VmRSS or VmHWM from /proc/self/status, in KiB. */
static long proc_kib(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
  if (f) fclose(f);
  return v;
}

struct store {
  struct gpc_node **nodes;
  size_t n, cap;
  bool project;
};

static struct store kept;

static int on_event(const struct watch_event *ev, void *ud) {
  struct store *s = ud;
  if (!s->project || ev->type == WATCH_BOOKMARK || ev->type == WATCH_ERROR) {
    s->n++;
    return 0;
  }
  gpc_grow((void **)&s->nodes, &s->cap, s->n + 1, sizeof *s->nodes);
  s->nodes[s->n++] = decode_node_new(ev->object);
  return 0;
}

static int run_stream(const char *path, size_t chunk, bool project, struct figures *fig,
                      size_t *events) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    perror(path);
    return 1;
  }
  char *buf = gpc_malloc(chunk);
  struct store st = {.project = project};
  struct watch_decoder *d = watch_decoder_new(0);
  struct gpc_error err = {0};
  int rc = GPC_OK;
  start(fig);
  ssize_t got;
  while (rc == GPC_OK && (got = read(fd, buf, chunk)) > 0)
    rc = watch_decoder_feed(d, buf, (size_t)got, on_event, &st, &err);
  watch_decoder_free(d);
  stop(fig);
  close(fd);
  free(buf);
  if (rc != GPC_OK) {
    fprintf(stderr, "decode failed: %s\n", err.msg);
    return 1;
  }
  *events = st.n;
  /* The projections stay alive until main has read RSS: holding them is
   * what the figure is about. */
  kept = st;
  return 0;
}

static int run_bare(const char *path, struct figures *fig, size_t *events) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *data = gpc_malloc((size_t)size);
  if (fread(data, 1, (size_t)size, f) != (size_t)size) {
    fclose(f);
    free(data);
    return 1;
  }
  fclose(f);
  size_t n = 0;
  start(fig);
  for (char *p = data, *end = data + size; p < end;) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    json_t *j = json_loadb(p, len, 0, NULL);
    if (!j) {
      fprintf(stderr, "bad line %zu\n", n);
      return 1;
    }
    json_decref(j);
    n++;
    p += len + 1;
  }
  stop(fig);
  free(data);
  *events = n;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s FILE bare|decode|project [CHUNK]\n", argv[0]);
    return 2;
  }
  gpc_alloc_init();
  const char *mode = argv[2];
  size_t chunk = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 16384;
  if (!chunk) chunk = 16384;
  long rss0 = proc_kib("VmRSS");
  struct figures fig = {0};
  size_t events = 0;
  int rc;
  if (strcmp(mode, "bare") == 0)
    rc = run_bare(argv[1], &fig, &events);
  else if (strcmp(mode, "decode") == 0)
    rc = run_stream(argv[1], chunk, false, &fig, &events);
  else if (strcmp(mode, "project") == 0)
    rc = run_stream(argv[1], chunk, true, &fig, &events);
  else
    rc = 2;
  if (rc) return rc;
  struct mallinfo2 mi = mallinfo2();
  printf("{\"mode\":\"%s\",\"events\":%zu,\"chunk\":%zu,\"wall_s\":%.6f,\"user_s\":%.6f,"
         "\"sys_s\":%.6f,\"rss_start_kib\":%ld,\"rss_kib\":%ld,\"hwm_kib\":%ld,"
         "\"heap_in_use_bytes\":%zu}\n",
         mode, events, chunk, fig.wall, fig.user, fig.sys, rss0, proc_kib("VmRSS"),
         proc_kib("VmHWM"), mi.uordblks + mi.hblkhd);
  for (size_t i = 0; kept.project && i < kept.n; i++)
    decode_node_free(kept.nodes[i]);
  free(kept.nodes);
  return 0;
}
