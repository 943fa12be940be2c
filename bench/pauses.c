/*
 * pauses — how often, and for how long, this machine stops running a thread that wants to
 * run. A probe for bench/intake, whose latency target a single pause of 10 ms can miss.
 *
 * NOTES ON THE DESIGN
 *
 * N threads each read CLOCK_MONOTONIC in a tight loop for S seconds. Two reads in a row are
 * a few tens of nanoseconds apart while the thread runs; a step of 1 ms or more means it did
 * not run for that long: the kernel ran something else on its core, or the hypervisor ran
 * something else on the virtual CPU. On a quiet machine with as many threads as free cores
 * there should be hardly any; on a virtual machine whose host takes its CPUs back, there
 * are many, and steal time in /proc/stat does not always show them.
 *
 * With N equal to the number of cores this is also what a fully loaded server meets: the
 * numbers say how much of its time, and in what size of pieces, it loses.
 *
 * Output: a readable line on stderr and one line on stdout,
 *   pauses threads=N seconds=S count=C per_s=R lost_share=F p50_ms=.. p99_ms=.. max_ms=..
 * where count and the percentiles are over all pauses of 1 ms or more, of all threads, and
 * lost_share is their total time over N x S.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAUSE_MIN_NS 1000000LL /* a step this long or longer is a pause */
#define PAUSES_MAX   1000000   /* kept per thread; more are counted, not kept */
#define THREADS_MAX  64

typedef struct probe {
    pthread_t thread;
    double seconds;
    long long *pauses; /* ns */
    size_t n_kept, n;
    long long lost_ns;
} probe;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *spin(void *arg)
{
    probe *p = arg;
    long long end = now_ns() + (long long)(p->seconds * 1e9);
    long long last = now_ns();
    for (;;) {
        long long t = now_ns();
        long long step = t - last;
        if (step >= PAUSE_MIN_NS) {
            if (p->n_kept < PAUSES_MAX)
                p->pauses[p->n_kept++] = step;
            p->n++;
            p->lost_ns += step;
        }
        last = t;
        if (t >= end)
            break;
    }
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *out)
{
    fputs("usage: pauses [--threads N] [--seconds S]\n"
          "\n"
          "Runs N threads (default 2) that do nothing but read the clock for S seconds\n"
          "(default 3) and counts the steps of 1 ms or more between two reads: times the\n"
          "thread wanted to run and did not. Prints their number, rate, share of the time and\n"
          "p50/p99/max, and a `pauses key=value ...` line. Exit status 0, or 2 on a usage\n"
          "error, 1 when it cannot start its threads.\n",
          out);
}

int main(int argc, char **argv)
{
    int n = 2;
    double seconds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "pauses: %s needs a value (see --help)\n", argv[i]);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(argv[i - 1], "--threads"))
            n = atoi(v);
        else if (!strcmp(argv[i - 1], "--seconds"))
            seconds = atof(v);
        else {
            fprintf(stderr, "pauses: unknown option %s (see --help)\n", argv[i - 1]);
            return 2;
        }
    }
    if (n < 1 || n > THREADS_MAX || !(seconds > 0 && seconds <= 600)) {
        fprintf(stderr, "pauses: --threads 1..%d and --seconds 0..600 (see --help)\n", THREADS_MAX);
        return 2;
    }
    probe probes[THREADS_MAX];
    memset(probes, 0, sizeof probes);
    for (int i = 0; i < n; i++) {
        probes[i].seconds = seconds;
        probes[i].pauses = malloc(PAUSES_MAX * sizeof *probes[i].pauses);
        if (probes[i].pauses == NULL ||
            pthread_create(&probes[i].thread, NULL, spin, &probes[i]) != 0) {
            fprintf(stderr, "pauses: cannot start thread %d\n", i + 1);
            return 1;
        }
    }
    size_t total = 0, kept = 0;
    long long lost = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(probes[i].thread, NULL);
        total += probes[i].n;
        kept += probes[i].n_kept;
        lost += probes[i].lost_ns;
    }
    long long *all = malloc((kept ? kept : 1) * sizeof *all);
    if (all == NULL) {
        fprintf(stderr, "pauses: out of memory\n");
        return 1;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, probes[i].pauses, probes[i].n_kept * sizeof *all);
        k += probes[i].n_kept;
        free(probes[i].pauses);
    }
    qsort(all, kept, sizeof *all, by_value);
    double p50 = kept ? all[kept / 2] / 1e6 : 0, p99 = kept ? all[kept * 99 / 100] / 1e6 : 0;
    double max = kept ? all[kept - 1] / 1e6 : 0;
    double share = lost / (n * seconds * 1e9);
    fprintf(stderr,
            "pauses: %d busy threads for %.1f s: %zu pauses of 1 ms or more (%.1f/s), %.1f%% of "
            "the time lost; pause p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
            n, seconds, total, total / seconds, share * 100, p50, p99, max);
    printf("pauses threads=%d seconds=%.1f count=%zu per_s=%.1f lost_share=%.4f p50_ms=%.3f "
           "p99_ms=%.3f max_ms=%.3f\n",
           n, seconds, total, total / seconds, share, p50, p99, max);
    free(all);
    return 0;
}
