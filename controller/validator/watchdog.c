/* watchdog.c — SIGALRM that reports a hung attempt and exits 16. */
#include "watchdog.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "report.h"

#define WD_TEXT_MAX 2048
#define WD_PATH_MAX 4096

/* Everything the handler touches, formatted before arming. */
static char wd_stdout[WD_TEXT_MAX];
static char wd_json[WD_TEXT_MAX];
static char wd_reason[WD_TEXT_MAX];
static char wd_status[WD_PATH_MAX];
static char wd_status_tmp[WD_PATH_MAX];
static char wd_termlog[WD_PATH_MAX];

static void put(int fd, const char *s) {
  size_t len = strlen(s);
  while (len) {
    ssize_t n = write(fd, s, len);
    if (n <= 0) return;
    s += n;
    len -= (size_t)n;
  }
}

static void put_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  put(fd, text);
  close(fd);
}

static void on_alarm(int signo) {
  (void)signo;
  put(STDOUT_FILENO, wd_stdout);
  put(STDERR_FILENO, "gpu-policy-validator: a driver call did not return; giving up\n");
  if (wd_status[0]) {
    put_file(wd_status_tmp, wd_json);
    rename(wd_status_tmp, wd_status);
  }
  if (wd_termlog[0]) put_file(wd_termlog, wd_reason);
  _exit(VAL_TIMEOUT);
}

double watchdog_margin(double timeout_s) {
  return timeout_s < 1 ? 1 : timeout_s > 30 ? 30 : timeout_s;
}

/* JSON string body with the characters a reason can hold escaped. Returns
 * false when it does not fit. */
static bool json_escape(char *out, size_t cap, const char *s) {
  size_t o = 0;
  for (; *s; s++) {
    char esc[8];
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      snprintf(esc, sizeof esc, "\\%c", ch);
    else if (ch < 0x20)
      snprintf(esc, sizeof esc, "\\u%04x", ch);
    else
      snprintf(esc, sizeof esc, "%c", ch);
    size_t n = strlen(esc);
    if (o + n >= cap) return false;
    memcpy(out + o, esc, n);
    o += n;
  }
  out[o] = '\0';
  return true;
}

bool watchdog_arm(const struct watchdog_config *cfg) {
  watchdog_disarm();
  char escaped[WD_TEXT_MAX];
  if (!json_escape(escaped, sizeof escaped, cfg->reason)) return false;
  int n1 = snprintf(wd_reason, sizeof wd_reason, "%s\n", cfg->reason);
  int n2 =
      snprintf(wd_json, sizeof wd_json,
               "{\"checks\": [], \"driverVersion\": null, \"cudaDriverVersion\": null, "
               "\"devices\": [], \"result\": \"Timeout\", \"reason\": \"%s\", \"exitCode\": %d}\n",
               escaped, VAL_TIMEOUT);
  int n3 = cfg->json ? snprintf(wd_stdout, sizeof wd_stdout, "%s", wd_json)
                     : snprintf(wd_stdout, sizeof wd_stdout, "result: failed (exit %d) %s\n",
                                VAL_TIMEOUT, cfg->reason);
  const char *status = cfg->status_file ? cfg->status_file : "";
  const char *termlog = cfg->termination_log ? cfg->termination_log : "";
  int n4 = snprintf(wd_status, sizeof wd_status, "%s", status);
  int n5 = snprintf(wd_status_tmp, sizeof wd_status_tmp, "%s.tmp.%ld", status, (long)getpid());
  int n6 = snprintf(wd_termlog, sizeof wd_termlog, "%s", termlog);
  if (n1 < 0 || n2 < 0 || n3 < 0 || n4 < 0 || n5 < 0 || n6 < 0 || n1 >= WD_TEXT_MAX ||
      n2 >= WD_TEXT_MAX || n3 >= WD_TEXT_MAX || n4 >= WD_PATH_MAX || n5 >= WD_PATH_MAX ||
      n6 >= WD_PATH_MAX)
    return false;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {0};
  it.it_value.tv_sec = (time_t)cfg->seconds;
  it.it_value.tv_usec = (suseconds_t)((cfg->seconds - (double)(time_t)cfg->seconds) * 1e6);
  if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0) it.it_value.tv_usec = 1;
  setitimer(ITIMER_REAL, &it, NULL);
  return true;
}

void watchdog_disarm(void) {
  struct itimerval it = {0};
  setitimer(ITIMER_REAL, &it, NULL);
}
