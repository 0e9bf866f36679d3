/*
 * test_fork.c -- libera across fork(). Two threads keep calling libera (discrete ERA and the
 * token entropy, large enough that every call splits its rows across libera's worker threads)
 * while the main thread forks 100 times. Each child must compute, with libera's threads
 * (era_set_num_threads(2)), results equal bit for bit to the serial run, and exit; a child
 * that hangs (the pool's lock copied while held, or a pool that waits for workers the child
 * does not have) is killed by its alarm and counts as a failure. The parent's threads must
 * keep giving the serial results throughout.
 * Prints "ok N - name" / "not ok N - name" per case and ends with "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#include "era.h"

#include "test_support.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Small calls (just above the size libera splits across threads), so that the callers take
 * the pool's lock often and some forks land while it is held. */
enum { FORKS = 100, DR = 64, DC = 2048, LT = 8, LV = 16384, CHILD_SECONDS = 30 };

static double *dz, *dref;      /* discrete logits and the serial output */
static float *lz, *lref;       /* LLM logits and the serial token entropies */
static era_discrete_params dparams;

/* One discrete and one token-entropy call; 1 when both succeed and equal the serial run. */
static int compute_and_compare(double *dout, float *lout) {
    if (era_discrete_forward_f64(&dparams, DR, DC, dz, dout) != ERA_OK) return 0;
    if (era_token_entropy_f32(LT, LV, lz, lout) != ERA_OK) return 0;
    return memcmp(dout, dref, sizeof(double) * DR * DC) == 0 && memcmp(lout, lref, sizeof(float) * LT) == 0;
}

static volatile sig_atomic_t stop;
typedef struct { long calls, mismatched; } caller_state;

static void *caller(void *arg) {
    caller_state *state = arg;
    double *dout = xmalloc(sizeof(double) * DR * DC);
    float *lout = xmalloc(sizeof(float) * LT);
    while (!stop) {
        if (!compute_and_compare(dout, lout)) state->mismatched++;
        state->calls++;
    }
    free(dout);
    free(lout);
    return NULL;
}

/* Threads of this process (Linux /proc/self/task); -1 where that cannot be read. */
static int thread_count(void) {
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL)
        if (entry->d_name[0] != '.') count++;
    closedir(dir);
    return count;
}

int main(void) {
    era_discrete_params_init(&dparams);
    dparams.target_entropy = 0.5 * log((double)DC);
    dz = xmalloc(sizeof(double) * DR * DC);
    dref = xmalloc(sizeof(double) * DR * DC);
    lz = xmalloc(sizeof(float) * LT * LV);
    lref = xmalloc(sizeof(float) * LT);
    for (long i = 0; i < (long)DR * DC; i++) dz[i] = 6.0 * uniform() - 3.0;
    for (long i = 0; i < (long)LT * LV; i++) lz[i] = (float)(8.0 * uniform() - 4.0);

    int ok = era_set_num_threads(1) == ERA_OK && era_discrete_forward_f64(&dparams, DR, DC, dz, dref) == ERA_OK &&
             era_token_entropy_f32(LT, LV, lz, lref) == ERA_OK && era_set_num_threads(2) == ERA_OK;
    report(ok, "serial reference run, then era_set_num_threads(2)");
    if (!ok) {
        printf("%d passed, %d failed\n", passed, failed);
        return 1;
    }

    caller_state states[2];
    pthread_t threads[2];
    memset(states, 0, sizeof states);
    for (int t = 0; t < 2; t++)
        if (pthread_create(&threads[t], NULL, caller, &states[t]) != 0) {
            report(0, "starting the two calling threads");
            printf("%d passed, %d failed\n", passed, failed);
            return 1;
        }

    int clean = 0, wrong = 0, single = 0, hung = 0, other = 0;
    double t0 = now(), slowest = 0;
    fflush(stdout);  /* nothing buffered is inherited by the children */
    for (int f = 0; f < FORKS; f++) {
        /* Fork at a different moment of the callers' work each time. */
        struct timespec pause = {0, (long)(200000 + 1800000 * uniform())};
        nanosleep(&pause, NULL);
        double started = now();
        pid_t pid = fork();
        if (pid < 0) { other++; continue; }
        if (pid == 0) {
            alarm(CHILD_SECONDS);
            double *dout = malloc(sizeof(double) * DR * DC);
            float *lout = malloc(sizeof(float) * LT);
            int good = dout && lout && era_get_num_threads() == 2;
            for (int r = 0; r < 2 && good; r++) good = compute_and_compare(dout, lout);
            /* The child's calls ran on a pool of its own: worker threads were started in it. */
            int threads = thread_count();
            _exit(!good ? 3 : threads == 1 ? 4 : 0);
        }
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) { other++; continue; }
        if (now() - started > slowest) slowest = now() - started;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) clean++;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 3) wrong++;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 4) single++;
        else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) hung++;
        else other++;
    }
    stop = 1;
    for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
    printf("# %d forks in %.2f s (slowest child %.3f s): %d clean, %d wrong results, %d without worker threads, "
           "%d hung, %d other\n", FORKS, now() - t0, slowest, clean, wrong, single, hung, other);
    printf("# parent threads: %ld + %ld calls during the forks\n", states[0].calls, states[1].calls);

    char name[160];
    snprintf(name, sizeof name, "%d forks while two threads are inside libera: every child computes with 2 threads, "
             "bit-identical, and exits", FORKS);
    report(clean == FORKS, name);
    report(states[0].calls > 0 && states[1].calls > 0 && states[0].mismatched == 0 && states[1].mismatched == 0,
           "the parent's calling threads kept giving the serial results");
    /* And the parent's own pool still works after all those forks. */
    double *dout = xmalloc(sizeof(double) * DR * DC);
    float *lout = xmalloc(sizeof(float) * LT);
    report(compute_and_compare(dout, lout), "the parent computes with its threads after the forks");
    free(dout);
    free(lout);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
