/*
 * Does the scheduler hold back a thread that wakes and burns the first ping's CPU pattern?
 * (bench/RESULTS.md, Step 10, the handshake boost.) Sleeps 100 ms, then burns 0.45·S ms of CPU,
 * sleeps 0.4 ms, burns 0.75·S ms, sleeps 0.4 ms, burns 0.2·S ms; N times; prints the wall time
 * of the pattern (median, p75, p90, max). MODE 0: as is; 1: SCHED_FIFO during the pattern;
 * k ≥ 2: nice −k during it. Run beside busy loops, in a session of its own:
 *
 *   gcc -O2 -o /tmp/sched-burst bench/sched-burst.c
 *   for i in 1 2 3 4; do node -e 'for(;;);' & done
 *   for m in 0 1 10 19; do for s in 1 0.6 0.35; do setsid /tmp/sched-burst $s 40 $m; done; done
 *   kill $(jobs -p)
 *
 * Not part of `npm run bench` (it needs a compiler).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static void burn(double ms) {
  double c0 = now(CLOCK_THREAD_CPUTIME_ID);
  while (now(CLOCK_THREAD_CPUTIME_ID) - c0 < ms) {
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s SCALE N MODE\n", argv[0]);
    return 2;
  }
  double s = atof(argv[1]);
  int n = atoi(argv[2]), mode = atoi(argv[3]);
  if (n < 1 || n > 1000) return 2;
  double w[1000];
  for (int i = 0; i < n; i++) {
    usleep(100000);
    double t0 = now(CLOCK_MONOTONIC);
    struct sched_param fifo = {.sched_priority = 1}, other = {.sched_priority = 0};
    if (mode == 1) sched_setscheduler(0, SCHED_FIFO, &fifo);
    if (mode >= 2) setpriority(PRIO_PROCESS, 0, -mode);
    burn(0.45 * s);
    usleep(400);
    burn(0.75 * s);
    usleep(400);
    burn(0.2 * s);
    if (mode == 1) sched_setscheduler(0, SCHED_OTHER, &other);
    if (mode >= 2) setpriority(PRIO_PROCESS, 0, 0);
    w[i] = now(CLOCK_MONOTONIC) - t0;
  }
  qsort(w, n, sizeof(double), cmp);
  printf("scale %.2f mode %d: wall median %.2f p75 %.2f p90 %.2f max %.2f ms (CPU %.2f ms, sleeps 0.8 ms)\n", s, mode,
         w[n / 2], w[n * 3 / 4], w[n * 9 / 10], w[n - 1], 1.4 * s);
  return 0;
}
