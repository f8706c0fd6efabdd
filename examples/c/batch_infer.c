/*
 * Batch inference on a real model through accelpool's C API: the same job as
 * examples/batch_infer.rs. Deterministic synthetic text-line images go to the
 * PP-OCR direction classifier (models/ppocr/cls.onnx) from several submitting
 * threads, at a mix of priorities; it prints throughput, latency p50/p99 and
 * the accounting line.
 *
 * Build and run (from the project root, after ./scripts/setup.sh):
 *     ./scripts/capi.sh build && target/capi/batch_infer_c
 *
 * The input buffers are lent to the pool (no copy): their release callback
 * counts them back, and the example checks every one came back.
 */
#define _POSIX_C_SOURCE 200809L
#include "accelpool.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define H 48
#define W 192
#define PIXELS (3 * H * W)

struct options {
    const char *model;
    const char *device;
    const char *config;
    const char *classes;
    long workers;
    long requests;
    long threads;
    long capacity;
    long max_batch;
};

struct shared {
    const struct options *opt;
    accelpool_pool *pool;
    float *inputs;          /* requests x PIXELS, lent to the pool */
    int *classes;           /* per request: 0 or 1 (0 or 180 degrees), -1 none */
    float *probs;           /* per request: two probabilities */
    atomic_long refused;
    atomic_long failed;
};

struct worker_arg {
    struct shared *s;
    long first;
};

static atomic_long released;

/* Called by the pool when it no longer needs a lent input. */
static void release_input(void *user, const void *data) {
    (void)user;
    (void)data;
    atomic_fetch_add(&released, 1);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* A synthetic text-line image in PP-OCR's input range, as batch_infer.rs
 * makes it: dark strokes on a light background, different per request. */
static void text_line(float *img, size_t seed) {
    for (size_t i = 0; i < PIXELS; i++) {
        size_t y = (i / W) % H, x = i % W;
        int stroke = (x + seed * 7) % 13 < 3 && y > H / 4 && y < 3 * H / 4;
        float pixel = stroke ? 30.0f : 220.0f + (float)((x * 31 + y * 17 + seed) % 20);
        img[i] = (pixel / 255.0f - 0.5f) / 0.5f;
    }
}

/* The priority mix of batch_infer.rs (urgent=1, high=2, normal=5, low=2),
 * scattered by Knuth's multiplicative hash. */
static int32_t priority_of(long i) {
    static const int32_t levels[4] = {ACCELPOOL_PRIORITY_URGENT, ACCELPOOL_PRIORITY_HIGH,
                                      ACCELPOOL_PRIORITY_NORMAL, ACCELPOOL_PRIORITY_LOW};
    static const uint32_t weights[4] = {1, 2, 5, 2};
    uint32_t pick = ((uint32_t)i * 2654435761u) % 10u;
    for (int l = 0; l < 4; l++) {
        if (pick < weights[l]) return levels[l];
        pick -= weights[l];
    }
    return ACCELPOOL_PRIORITY_NORMAL;
}

/* Prints an error's code name and message, and frees it. */
static void report(const char *what, accelpool_error *err) {
    fprintf(stderr, "error: %s: %s (%s)\n", what, accelpool_error_message(err),
            accelpool_code_name(accelpool_error_code(err)));
    accelpool_error_free(err);
}

struct pending {
    accelpool_handle *handle;
    long index;
};

static void finish(struct shared *s, struct pending *p) {
    accelpool_result *result = NULL;
    accelpool_error *err = NULL;
    if (accelpool_handle_wait(p->handle, &result, &err) != ACCELPOOL_CODE_OK) {
        report("request", err);
        atomic_fetch_add(&s->failed, 1);
    } else {
        accelpool_tensor_view out;
        if (accelpool_result_output(result, 0, &out, NULL) == ACCELPOOL_CODE_OK &&
            out.element_type == ACCELPOOL_ELEMENT_TYPE_F32 && out.byte_len == 2 * sizeof(float)) {
            const float *pr = out.data;
            s->classes[p->index] = pr[1] > pr[0];
            s->probs[2 * p->index] = pr[0];
            s->probs[2 * p->index + 1] = pr[1];
        }
        accelpool_result_free(result);
    }
    accelpool_handle_free(p->handle);
}

/* One submitting thread: requests first, first + threads, ...; keeps up to
 * `capacity` handles outstanding and waits for the oldest when full. */
static void *submitter(void *arg) {
    struct worker_arg *a = arg;
    struct shared *s = a->s;
    long window = s->opt->capacity;
    struct pending *ring = calloc((size_t)window, sizeof *ring);
    long head = 0, count = 0;
    static const size_t dims[4] = {1, 3, H, W};
    for (long i = a->first; i < s->opt->requests; i += s->opt->threads) {
        accelpool_request *req = NULL;
        accelpool_error *err = NULL;
        if (accelpool_request_new(&req, &err) != ACCELPOOL_CODE_OK ||
            accelpool_request_add_tensor_lent(req, "x", ACCELPOOL_ELEMENT_TYPE_F32, dims, 4,
                                              s->inputs + (size_t)i * PIXELS,
                                              PIXELS * sizeof(float), release_input, NULL,
                                              &err) != ACCELPOOL_CODE_OK ||
            accelpool_request_set_priority(req, priority_of(i), &err) != ACCELPOOL_CODE_OK) {
            report("request", err);
            accelpool_request_free(req);
            atomic_fetch_add(&s->failed, 1);
            continue;
        }
        if (count == window) {
            finish(s, &ring[head]);
            head = (head + 1) % window;
            count--;
        }
        struct pending *p = &ring[(head + count) % window];
        p->index = i;
        if (accelpool_pool_submit(s->pool, &req, &p->handle, &err) != ACCELPOOL_CODE_OK) {
            /* Refused: the request is still ours. */
            report("submit", err);
            accelpool_request_free(req);
            atomic_fetch_add(&s->refused, 1);
            continue;
        }
        count++;
    }
    while (count > 0) {
        finish(s, &ring[head]);
        head = (head + 1) % window;
        count--;
    }
    free(ring);
    return NULL;
}

static int usage(const char *self) {
    fprintf(stderr,
            "usage: %s [--model FILE] [--device NAME] [--workers N] [--requests N]\n"
            "          [--threads N] [--capacity N] [--max-batch N] [--config FILE.yaml]\n"
            "          [--classes FILE]\n",
            self);
    return 2;
}

static int parse(int argc, char **argv, struct options *o) {
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc) return usage(argv[0]);
        const char *v = argv[++i];
        char *end = NULL;
        long n = strtol(v, &end, 10);
        int numeric = end && *end == '\0' && n > 0;
        if (!strcmp(k, "--model")) o->model = v;
        else if (!strcmp(k, "--device")) o->device = v;
        else if (!strcmp(k, "--config")) o->config = v;
        else if (!strcmp(k, "--classes")) o->classes = v;
        else if (!numeric) {
            fprintf(stderr, "error: %s needs a positive number, not `%s`\n", k, v);
            return 2;
        } else if (!strcmp(k, "--workers")) o->workers = n;
        else if (!strcmp(k, "--requests")) o->requests = n;
        else if (!strcmp(k, "--threads")) o->threads = n;
        else if (!strcmp(k, "--capacity")) o->capacity = n;
        else if (!strcmp(k, "--max-batch")) o->max_batch = n;
        else return usage(argv[0]);
    }
    return 0;
}

int main(int argc, char **argv) {
    struct options opt = {"models/ppocr/cls.onnx", "CPU", NULL, NULL, 2, 2000, 4, 64, 1};
    int bad = parse(argc, argv, &opt);
    if (bad) return bad;

    accelpool_pool *pool = NULL;
    accelpool_error *err = NULL;
    double started = now_ms();
    accelpool_code code;
    if (opt.config) {
        code = accelpool_pool_from_yaml_file(opt.config, &pool, &err);
    } else {
        /* The Rust example's pool, as YAML: one group, throughput hint, one
         * stream per worker, the shape fixed before compiling. */
        char yaml[1024];
        long batch = opt.max_batch;
        snprintf(yaml, sizeof yaml,
                 "groups:\n"
                 "  - name: cpu\n"
                 "    workers: %ld\n"
                 "    warmup: 2\n"
                 "    capacity: { urgent: %ld, high: %ld, normal: %ld, low: %ld }\n"
                 "    batching: { max_batch_size: %ld, max_queue_delay: 100us }\n"
                 "    backend:\n"
                 "      openvino:\n"
                 "        model: \"%s\"\n"
                 "        device: \"%s\"\n"
                 "        reshape: { x: [%ld, 3, %d, %d] }\n"
                 "        performance_hint: throughput\n"
                 "        streams: %ld\n",
                 opt.workers, opt.capacity, opt.capacity, opt.capacity, opt.capacity, batch, opt.model, opt.device, batch, H, W,
                 opt.workers);
        code = accelpool_pool_from_yaml_str(yaml, &pool, &err);
    }
    if (code != ACCELPOOL_CODE_OK) {
        report("could not start the pool", err);
        return 1;
    }
    double ready = now_ms() - started;

    struct shared s = {0};
    s.opt = &opt;
    s.pool = pool;
    s.inputs = malloc((size_t)opt.requests * PIXELS * sizeof(float));
    s.classes = malloc((size_t)opt.requests * sizeof(int));
    s.probs = calloc((size_t)opt.requests * 2, sizeof(float));
    if (!s.inputs || !s.classes || !s.probs) {
        fprintf(stderr, "error: out of memory for %ld requests\n", opt.requests);
        return 1;
    }
    for (long i = 0; i < opt.requests; i++) {
        text_line(s.inputs + (size_t)i * PIXELS, (size_t)i);
        s.classes[i] = -1;
    }

    double run_started = now_ms();
    pthread_t *threads = malloc((size_t)opt.threads * sizeof(pthread_t));
    struct worker_arg *args = malloc((size_t)opt.threads * sizeof(struct worker_arg));
    for (long t = 0; t < opt.threads; t++) {
        args[t].s = &s;
        args[t].first = t;
        pthread_create(&threads[t], NULL, submitter, &args[t]);
    }
    for (long t = 0; t < opt.threads; t++) pthread_join(threads[t], NULL);
    double wall_ms = now_ms() - run_started;

    char *report_json = NULL;
    if (accelpool_pool_shutdown(pool, 30000, &report_json, &err) != ACCELPOOL_CODE_OK) {
        report("shutdown", err);
        return 1;
    }
    accelpool_string_free(report_json);
    /* Latency as the pool measures it, from acceptance to the result (the
     * Rust example prints the same figures). */
    accelpool_counts c;
    accelpool_latency e2e;
    if (accelpool_pool_counts(pool, &c, &err) != ACCELPOOL_CODE_OK ||
        accelpool_pool_latency(pool, ACCELPOOL_LATENCY_KIND_END_TO_END, &e2e, &err) !=
            ACCELPOOL_CODE_OK) {
        report("stats", err);
        return 1;
    }
    const char *ov = accelpool_openvino_version();
    printf("accelpool batch inference (C API %s, OpenVINO %s)\n", accelpool_version(),
           ov ? ov : "not loaded");
    accelpool_pool_free(pool);

    long angles[2] = {0, 0};
    for (long i = 0; i < opt.requests; i++)
        if (s.classes[i] >= 0) angles[s.classes[i]]++;

    printf("  model     %s\n", opt.config ? opt.config : opt.model);
    printf("  device    %s (%ld workers, %ld submitting threads, ready in %.2fms)\n", opt.device,
           opt.workers, opt.threads, ready);
    printf("+-----------------------+--------------+\n");
    printf("| %-21s | %12ld |\n", "requests", opt.requests);
    printf("| %-21s | %12" PRIu64 " |\n", "completed", c.completed);
    printf("| %-21s | %12" PRIu64 " |\n", "failed attempts", c.failed_attempts);
    printf("| %-21s | %12" PRIu64 " |\n", "dead-lettered", c.dead_lettered);
    printf("| %-21s | %5" PRIu64 " / %-4" PRIu64 " |\n", "cancelled / expired", c.cancelled,
           c.expired);
    printf("| %-21s | %12ld |\n", "refused at submit", atomic_load(&s.refused));
    printf("| %-21s | %12.1f |\n", "throughput (req/s)", (double)c.completed / (wall_ms / 1e3));
    printf("| %-21s | %12.3f |\n", "latency p50 (ms)", e2e.p50_us / 1e3);
    printf("| %-21s | %12.3f |\n", "latency p99 (ms)", e2e.p99_us / 1e3);
    printf("+-----------------------+--------------+\n");
    printf("  predicted angle 0 / 180: %ld / %ld\n", angles[0], angles[1]);
    printf("  lent buffers released: %ld of %ld\n", atomic_load(&released), opt.requests);
    printf("  accounting: accepted %" PRIu64 " = completed %" PRIu64 " + dead-lettered %" PRIu64
           " + cancelled %" PRIu64 " + expired %" PRIu64 "\n",
           c.accepted, c.completed, c.dead_lettered, c.cancelled, c.expired);

    int status = 0;
    if (opt.classes) {
        FILE *f = fopen(opt.classes, "w");
        if (!f) {
            perror(opt.classes);
            status = 1;
        } else {
            for (long i = 0; i < opt.requests; i++)
                fprintf(f, "%ld %d %.6f %.6f\n", i, s.classes[i], s.probs[2 * i],
                        s.probs[2 * i + 1]);
            fclose(f);
        }
    }
    if (atomic_load(&released) != opt.requests) status = 1;
    if (c.accepted != c.completed + c.dead_lettered + c.cancelled + c.expired) status = 1;
    free(threads);
    free(args);
    free(s.inputs);
    free(s.classes);
    free(s.probs);
    return status;
}
