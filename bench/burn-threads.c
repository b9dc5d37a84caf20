/* bench/burn-threads.c: N threads spinning for S seconds in one process, then the CPU it got.
 * gcc -O2 -pthread -o burn bench/burn-threads.c && setsid ./burn 2 5  (bench/RESULTS.md, "The pool sender") */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/resource.h>
static volatile int stop;
static void *spin(void *a){ (void)a; while(!stop){} return 0; }
int main(int c, char **v){ int n=atoi(v[1]); double s=atof(v[2]); pthread_t t[16];
 for(int i=0;i<n;i++) pthread_create(&t[i],0,spin,0);
 struct timespec ts={ (time_t)s, (long)((s-(time_t)s)*1e9)}; nanosleep(&ts,0); stop=1;
 for(int i=0;i<n;i++) pthread_join(t[i],0);
 struct rusage r; getrusage(RUSAGE_SELF,&r);
 printf("threads=%d cpu=%.2f s over %.1f s = %.2f cores\n", n, r.ru_utime.tv_sec+r.ru_utime.tv_usec/1e6+r.ru_stime.tv_sec+r.ru_stime.tv_usec/1e6, s, (r.ru_utime.tv_sec+r.ru_utime.tv_usec/1e6+r.ru_stime.tv_sec+r.ru_stime.tv_usec/1e6)/s); return 0; }
