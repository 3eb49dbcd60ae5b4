/* The benchmark's tiny child, the same for conch and etcdctl (compiled by conch-bench).
 * Times are CLOCK_BOOTTIME ns (as conch's wrapper, shim and tests/src/lib.rs mono_ns),
 * except `tick`, which is CLOCK_REALTIME (cron ticks are wall-clock instants).
 * Every line is one write(2) to a file opened O_APPEND, so parallel children never mix.
 *   true                 exit 0 at once
 *   run FILE MS          sleep MS, then append "run START END PID REV"
 *   hold FILE MAXMS      append "ready START PID LEASE REV", wait for SIGTERM/SIGUSR1
 *                        (at most MAXMS), append "sig T PID SIGNO", exit 0
 *   spin MS              burn CPU for MS (a bounded load)
 *   tick FILE            append "tick WALL_NS CONCH_TICK PID CONCH_NAME" */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static long long ns(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
static const char *env(const char *k) { const char *v = getenv(k); return v && *v ? v : "-"; }
static void line(const char *file, const char *text) {
  int fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) { if (write(fd, text, strlen(text)) < 0) {} close(fd); }
}
static volatile sig_atomic_t got = 0;
static volatile long long got_at = 0;
static void on_sig(int s) { if (!got) { got_at = ns(CLOCK_BOOTTIME); got = s; } }

int main(int argc, char **argv) {
  char buf[512];
  const char *mode = argc > 1 ? argv[1] : "true";
  if (!strcmp(mode, "true")) return 0;
  if (!strcmp(mode, "run") && argc > 3) {
    long long start = ns(CLOCK_BOOTTIME);
    long ms = atol(argv[3]);
    struct timespec d = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&d, NULL);
    snprintf(buf, sizeof buf, "run %lld %lld %d %s\n", start, ns(CLOCK_BOOTTIME), getpid(), env("CONCH_REV"));
    line(argv[2], buf);
    return 0;
  }
  if (!strcmp(mode, "hold") && argc > 3) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    long long start = ns(CLOCK_BOOTTIME);
    snprintf(buf, sizeof buf, "ready %lld %d %s %s\n", start, getpid(), env("CONCH_LEASE"), env("CONCH_REV"));
    line(argv[2], buf);
    long long end = start + atol(argv[3]) * 1000000LL;
    while (!got && ns(CLOCK_BOOTTIME) < end) {
      struct timespec d = { 0, 1000000L };
      nanosleep(&d, NULL); /* a signal interrupts it at once */
    }
    snprintf(buf, sizeof buf, "sig %lld %d %d\n", got ? got_at : ns(CLOCK_BOOTTIME), getpid(), (int)got);
    line(argv[2], buf);
    return 0;
  }
  if (!strcmp(mode, "spin") && argc > 2) {
    long long end = ns(CLOCK_BOOTTIME) + atol(argv[2]) * 1000000LL;
    volatile unsigned long x = 0;
    while (ns(CLOCK_BOOTTIME) < end) for (int i = 0; i < 100000; i++) x += i;
    return 0;
  }
  if (!strcmp(mode, "tick") && argc > 2) {
    snprintf(buf, sizeof buf, "tick %lld %s %d %s\n", ns(CLOCK_REALTIME), env("CONCH_TICK"), getpid(), env("CONCH_NAME"));
    line(argv[2], buf);
    return 0;
  }
  fprintf(stderr, "bench child: bad arguments\n");
  return 2;
}
