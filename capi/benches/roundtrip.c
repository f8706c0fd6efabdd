/*
 * The C path's submit+wait round trip on a no-op C session, as
 * capi/benches/c_overhead.rs measures the Rust path's: one submitting
 * thread, one worker, a request of one small f32 tensor built each time.
 * Prints `p50_ns N` and `p99_ns N`.
 */
#define _POSIX_C_SOURCE 200809L
#include "accelpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int32_t create(void *user, const accelpool_worker_info *w, void **s, char *m) {
    (void)user, (void)w, (void)m;
    *s = NULL;
    return ACCELPOOL_SESSION_STATUS_OK;
}

static int32_t run(void *user, void *session, accelpool_batch *b, char *m) {
    (void)user, (void)session, (void)b, (void)m;
    return ACCELPOOL_SESSION_STATUS_OK;
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    if (n < 1) n = 1;
    accelpool_builder *b = NULL;
    accelpool_pool *pool = NULL;
    accelpool_session_vtable vt = {NULL, create, run, NULL, NULL};
    if (accelpool_builder_from_yaml_str("groups:\n  - name: c\n    workers: 1\n    pin: false\n", &b,
                                        NULL) ||
        accelpool_builder_set_sessions(b, "c", &vt, NULL) ||
        accelpool_builder_build(&b, &pool, NULL)) {
        fprintf(stderr, "could not build the pool\n");
        return 1;
    }
    long long *ns = malloc((size_t)n * sizeof *ns);
    static const size_t dims[2] = {1, 4};
    static const float x[4] = {1, 2, 3, 4};
    for (long i = -n / 10; i < n; i++) {
        long long t0 = now_ns();
        accelpool_request *r = NULL;
        accelpool_handle *h = NULL;
        accelpool_result *res = NULL;
        if (accelpool_request_new(&r, NULL) ||
            accelpool_request_add_tensor(r, "x", ACCELPOOL_ELEMENT_TYPE_F32, dims, 2, x, sizeof x,
                                         NULL) ||
            accelpool_pool_submit(pool, &r, &h, NULL) || accelpool_handle_wait(h, &res, NULL)) {
            fprintf(stderr, "round trip failed\n");
            return 1;
        }
        accelpool_result_free(res);
        accelpool_handle_free(h);
        if (i >= 0) ns[i] = now_ns() - t0;
    }
    qsort(ns, (size_t)n, sizeof *ns, cmp);
    printf("p50_ns %lld\np99_ns %lld\n", ns[n / 2], ns[n * 99 / 100]);
    free(ns);
    accelpool_pool_free(pool);
    return 0;
}
