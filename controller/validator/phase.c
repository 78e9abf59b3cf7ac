/* phase.c — fork a check, read its progress and report, kill it on time. */
#include "phase.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "dynbuf.h"
#include "log.h"

/* A report is a few KiB; anything past this is not one. */
#define PHASE_MAX_OUTPUT (1024 * 1024)
/* How long a SIGKILLed child gets to disappear before it counts as stuck in
 * the kernel (an uninterruptible driver call). */
#define PHASE_REAP_GRACE_S 5.0

static int child_fd = -1;

double phase_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put(int fd, const char *s, size_t len) {
  while (len) {
    ssize_t n = write(fd, s, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s += n;
    len -= (size_t)n;
  }
}

void phase_step(const char *what) {
  if (child_fd < 0) return;
  char line[256];
  int n = snprintf(line, sizeof line, "S %s\n", what);
  if (n > 0) put(child_fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void child_main(int fd, const struct phase_opts *o, phase_fn fn, void *ctx,
                       struct val_report *r) {
  child_fd = fd;
  /* The parent's stop handler is for the parent; the child just dies. */
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) _exit(1); /* the parent is already gone */
  for (const char *const *e = o->env; e && *e; e++)
    putenv((char *)*e);
  fn(ctx, r);
  json_t *j = report_json(r);
  char *text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  report_release(r);
  if (text) {
    put(fd, "R ", 2);
    put(fd, text, strlen(text));
    put(fd, "\n", 1);
    free(text);
  }
  close(fd);
  /* exit, not _exit: the driver libraries' destructors run as at the end of
   * any CUDA program (and the test stubs report leaks from theirs). */
  exit(text ? 0 : 1);
}

/* Waits up to `grace` seconds for pid; true when reaped (status in *st). */
static bool reap(pid_t pid, int *st, double grace) {
  double until = phase_now() + grace;
  for (;;) {
    pid_t w = waitpid(pid, st, WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR)) return w == pid;
    if (phase_now() >= until) return false;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

struct child_output {
  struct dynbuf text; /* the child's stdout, capped at PHASE_MAX_OUTPUT */
  char step[200];
  bool too_large;
};

/* Consumes complete "S ..." lines; an "R ..." line stays for the end. */
static void scan_steps(struct child_output *out, size_t from) {
  const char *buf = dynbuf_ptr(&out->text);
  size_t len = dynbuf_len(&out->text);
  size_t start = from;
  while (start > 0 && buf[start - 1] != '\n')
    start--;
  for (size_t i = start; i < len; i++) {
    if (buf[i] != '\n') continue;
    if (i > start + 2 && buf[start] == 'S' && buf[start + 1] == ' ') {
      size_t n = i - start - 2;
      if (n >= sizeof out->step) n = sizeof out->step - 1;
      memcpy(out->step, buf + start + 2, n);
      out->step[n] = '\0';
    }
    start = i + 1;
  }
}

static void append(struct child_output *out, const char *data, size_t n) {
  size_t from = dynbuf_len(&out->text);
  if (dynbuf_add(&out->text, data, n) != GPC_OK) {
    out->too_large = true;
    return;
  }
  scan_steps(out, from);
}

/* The "R {...}" line, parsed into a fresh report that replaces *r. */
static bool take_report(struct child_output *out, struct val_report *r, struct gpc_error *err) {
  if (!dynbuf_ptr(&out->text)) return gpc_fail(err, GPC_E_INVAL, "no report"), false;
  char *line = NULL;
  for (char *p = dynbuf_ptr(&out->text); p && *p;) {
    if (p[0] == 'R' && p[1] == ' ') line = p + 2;
    p = strchr(p, '\n');
    if (p) p++;
  }
  if (!line) return gpc_fail(err, GPC_E_INVAL, "no report"), false;
  char *end = strchr(line, '\n');
  if (end) *end = '\0';
  json_error_t jerr;
  json_t *j = json_loads(line, 0, &jerr);
  if (!j) return gpc_fail(err, GPC_E_INVAL, "report: %s", jerr.text), false;
  struct val_report next;
  report_init(&next);
  int rc = report_from_json(j, &next, err);
  json_decref(j);
  if (rc != GPC_OK) {
    report_release(&next);
    return false;
  }
  report_release(r);
  *r = next;
  return true;
}

static void describe_status(int st, char *buf, size_t len) {
  if (WIFSIGNALED(st))
    snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
  else if (WIFEXITED(st))
    snprintf(buf, len, "exited %d", WEXITSTATUS(st));
  else
    snprintf(buf, len, "ended");
}

enum phase_outcome phase_run(const struct phase_opts *o, phase_fn fn, void *ctx,
                             struct val_report *r) {
  double started = phase_now();
  int fds[2];
  fflush(NULL);
  if (pipe2(fds, O_CLOEXEC) != 0) {
    report_fail(r, o->fail_code, "phase %s: pipe: %s", o->name, strerror(errno));
    return PHASE_FAILED;
  }
  pid_t pid = fork();
  if (pid < 0) {
    report_fail(r, o->fail_code, "phase %s: fork: %s", o->name, strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return PHASE_FAILED;
  }
  if (pid == 0) {
    close(fds[0]);
    child_main(fds[1], o, fn, ctx, r);
  }
  close(fds[1]);
  struct child_output out = {.text = DYNBUF_INIT(PHASE_MAX_OUTPUT)};
  snprintf(out.step, sizeof out.step, "start");
  enum phase_outcome outcome = PHASE_DONE;
  int st = 0;
  bool exited = false;
  for (;;) {
    if (o->stop && *o->stop) {
      outcome = PHASE_STOPPED;
      break;
    }
    double left = o->deadline - phase_now();
    if (left <= 0) {
      outcome = PHASE_TIMED_OUT;
      break;
    }
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    int ms = left > 1 ? 1000 : (int)(left * 1000) + 1; /* wake up to see *stop */
    int n = poll(&p, 1, ms);
    if (n < 0 && errno != EINTR) {
      outcome = PHASE_FAILED;
      break;
    }
    if (n == 0 && waitpid(pid, &st, WNOHANG) == pid) {
      /* The child is gone but the pipe is still open: something it started
       * (a driver helper) inherited the write end. Take what is there. */
      exited = true;
      fcntl(fds[0], F_SETFL, O_NONBLOCK);
      char chunk[4096];
      ssize_t got;
      while ((got = read(fds[0], chunk, sizeof chunk)) > 0)
        append(&out, chunk, (size_t)got);
      break;
    }
    if (n <= 0) continue;
    char chunk[4096];
    ssize_t got = read(fds[0], chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break; /* EOF: the child is done (or dead) */
    append(&out, chunk, (size_t)got);
  }
  close(fds[0]);
  bool reaped = exited;
  if (exited) {
    /* reaped above */
  } else if (outcome != PHASE_DONE) {
    kill(pid, SIGKILL);
    reaped = reap(pid, &st, PHASE_REAP_GRACE_S);
  } else {
    /* EOF came; the child is exiting. A child that closed the pipe but
     * hangs on is killed after the grace period like a hung one. */
    reaped = reap(pid, &st, PHASE_REAP_GRACE_S);
    if (!reaped) {
      kill(pid, SIGKILL);
      reaped = reap(pid, &st, PHASE_REAP_GRACE_S);
    }
  }
  if (!reaped) {
    log_error("validator", "check process did not exit after SIGKILL (stuck in the driver)",
              KV_S("phase", o->name), KV_I("pid", pid));
    if (o->unreaped) *o->unreaped = true;
  }
  double took = phase_now() - started;
  if (outcome == PHASE_TIMED_OUT) {
    report_check(r, o->name, false, "still running after %.3gs (in %s); check process killed", took,
                 out.step);
    report_fail(r, VAL_TIMEOUT,
                "phase %s still running after %.3gs (in %s); check process killed%s", o->name, took,
                out.step, reaped ? "" : " but stuck in the driver");
  } else if (outcome == PHASE_STOPPED) {
    /* The pod is being stopped: the check did not finish in the time it had. */
    report_check(r, o->name, false, "stopped by a signal after %.3gs (in %s)", took, out.step);
    report_fail(r, VAL_TIMEOUT,
                "phase %s stopped by a signal after %.3gs (in %s); check process killed", o->name,
                took, out.step);
  } else {
    struct gpc_error err = {0};
    if (out.too_large) {
      report_fail(r, o->fail_code, "phase %s: check process sent over %d bytes", o->name,
                  PHASE_MAX_OUTPUT);
      outcome = PHASE_FAILED;
    } else if (!take_report(&out, r, &err)) {
      char how[64];
      describe_status(st, how, sizeof how);
      report_check(r, o->name, false, "check process %s in %s (%s)", how, out.step, err.msg);
      report_fail(r, o->fail_code, "phase %s: check process %s in %s", o->name, how, out.step);
      outcome = PHASE_FAILED;
    }
  }
  dynbuf_release(&out.text);
  return outcome;
}
