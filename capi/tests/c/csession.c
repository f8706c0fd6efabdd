/*
 * A device group whose sessions are written in C, driven through the C API:
 * outputs come back, per-item failures are retried then dead-lettered,
 * batches reach the session whole, lent buffers are released exactly once,
 * refused requests stay the caller's, dead letters drain as JSON and
 * replay, and the accounting identity holds. Runs under AddressSanitizer
 * and UndefinedBehaviorSanitizer too (no OpenVINO is loaded).
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

static atomic_int sessions_created, sessions_destroyed, released_user, buffers_released;
static atomic_int largest_batch;

struct session {
    size_t worker;
    long calls;
};

static int32_t create(void *user, const accelpool_worker_info *worker, void **out,
                      char *message) {
    (void)user;
    if (strcmp(worker->group, "c") != 0) {
        snprintf(message, ACCELPOOL_MESSAGE_CAPACITY, "unexpected group %s", worker->group);
        return ACCELPOOL_SESSION_STATUS_PERMANENT;
    }
    struct session *s = calloc(1, sizeof *s);
    s->worker = worker->worker;
    *out = s;
    atomic_fetch_add(&sessions_created, 1);
    return ACCELPOOL_SESSION_STATUS_OK;
}

/* Doubles each f32 element of input "x" into output "y". An input whose
 * first element is negative fails: -1 transiently, -2 permanently. */
static int32_t run(void *user, void *session, accelpool_batch *batch, char *message) {
    (void)user;
    struct session *s = session;
    s->calls++;
    size_t n = 0;
    if (accelpool_batch_len(batch, &n, NULL) != ACCELPOOL_CODE_OK) {
        snprintf(message, ACCELPOOL_MESSAGE_CAPACITY, "no batch length");
        return ACCELPOOL_SESSION_STATUS_PERMANENT;
    }
    int seen = atomic_load(&largest_batch);
    while ((int)n > seen && !atomic_compare_exchange_weak(&largest_batch, &seen, (int)n)) {
    }
    for (size_t i = 0; i < n; i++) {
        accelpool_tensor_view in;
        accelpool_error *err = NULL;
        if (accelpool_batch_input(batch, i, 0, &in, &err) != ACCELPOOL_CODE_OK) {
            accelpool_batch_fail(batch, i, ACCELPOOL_SESSION_STATUS_PERMANENT,
                                 accelpool_error_message(err), NULL);
            accelpool_error_free(err);
            continue;
        }
        const float *x = in.data;
        size_t len = in.byte_len / sizeof(float);
        if (len > 0 && x[0] == -1.0f) {
            accelpool_batch_fail(batch, i, ACCELPOOL_SESSION_STATUS_TRANSIENT, "device busy", NULL);
            continue;
        }
        if (len > 0 && x[0] == -2.0f) {
            accelpool_batch_fail(batch, i, ACCELPOOL_SESSION_STATUS_PERMANENT, "bad input", NULL);
            continue;
        }
        float y[64];
        for (size_t k = 0; k < len && k < 64; k++) y[k] = 2.0f * x[k];
        CHECK(accelpool_batch_add_output(batch, i, "y", ACCELPOOL_ELEMENT_TYPE_F32, in.dims,
                                         in.ndims, y, in.byte_len, NULL) == ACCELPOOL_CODE_OK);
    }
    /* Misuse from inside a session is caught too (checked on one call). */
    static atomic_flag checked = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&checked)) return ACCELPOOL_SESSION_STATUS_OK;
    EXPECT(accelpool_batch_input(batch, n, 0, &(accelpool_tensor_view){0}, &err),
           ACCELPOOL_CODE_NOT_FOUND, "past the batch");
    EXPECT(accelpool_batch_fail(batch, 0, 7, "x", &err), ACCELPOOL_CODE_INVALID_ARGUMENT,
           "no failure status");
    return ACCELPOOL_SESSION_STATUS_OK;
}

static void destroy(void *user, void *session) {
    (void)user;
    free(session);
    atomic_fetch_add(&sessions_destroyed, 1);
}

static void release(void *user) {
    (void)user;
    atomic_fetch_add(&released_user, 1);
}

static void give_back(void *user, const void *data) {
    (void)data;
    free(user);
    atomic_fetch_add(&buffers_released, 1);
}

static const char *YAML =
    "retry: { max_attempts: 2, initial_backoff: 1ms }\n"
    "tenants: { enabled: true }\n"
    "affinity: { enabled: true }\n"
    "groups:\n"
    "  - name: c\n"
    "    workers: 2\n"
    "    pin: false\n"
    "    capacity: { urgent: 8, high: 8, normal: 8, low: 8 }\n"
    "    batching: { max_batch_size: 4, max_queue_delay: 2ms }\n";

static accelpool_request *request_of(float first, int lend) {
    accelpool_request *r = NULL;
    CHECK(accelpool_request_new(&r, NULL) == ACCELPOOL_CODE_OK);
    size_t dims[2] = {1, 4};
    float x[4] = {first, 1.0f, 2.0f, 3.0f};
    if (lend) {
        float *buf = malloc(sizeof x);
        memcpy(buf, x, sizeof x);
        CHECK(accelpool_request_add_tensor_lent(r, "x", ACCELPOOL_ELEMENT_TYPE_F32, dims, 2, buf,
                                                sizeof x, give_back, buf, NULL) ==
              ACCELPOOL_CODE_OK);
    } else {
        CHECK(accelpool_request_add_tensor(r, "x", ACCELPOOL_ELEMENT_TYPE_F32, dims, 2, x,
                                           sizeof x, NULL) == ACCELPOOL_CODE_OK);
    }
    return r;
}

struct submitter {
    accelpool_pool *pool;
    int id;
    long completed, failed;
};

#define PER_THREAD 300

static void *submit_many(void *arg) {
    struct submitter *s = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        float first = (i % 50 == 7) ? -1.0f : (i % 50 == 9) ? -2.0f : (float)(s->id * 1000 + i);
        accelpool_request *r = request_of(first, i % 2);
        CHECK(accelpool_request_set_priority(r, 1 + i % 4, NULL) == ACCELPOOL_CODE_OK);
        accelpool_handle *h = NULL;
        CHECK(accelpool_pool_submit(s->pool, &r, &h, NULL) == ACCELPOOL_CODE_OK);
        CHECK(r == NULL);
        accelpool_result *res = NULL;
        accelpool_error *err = NULL;
        accelpool_code c = accelpool_handle_wait(h, &res, &err);
        if (c == ACCELPOOL_CODE_OK) {
            accelpool_tensor_view y;
            CHECK(accelpool_result_output(res, 0, &y, NULL) == ACCELPOOL_CODE_OK);
            CHECK(strcmp(y.name, "y") == 0 && y.ndims == 2 && y.dims[1] == 4);
            CHECK(((const float *)y.data)[0] == 2.0f * first);
            accelpool_result_free(res);
            s->completed++;
        } else {
            CHECK(c == ACCELPOOL_CODE_DEAD_LETTERED);
            CHECK(first < 0);
            accelpool_error_free(err);
            s->failed++;
        }
        accelpool_handle_free(h);
    }
    return NULL;
}

int main(void) {
    accelpool_builder *b = NULL;
    accelpool_session_vtable vt = {NULL, create, run, destroy, release};
    EXPECT(accelpool_builder_from_yaml_str(YAML, &b, &err), ACCELPOOL_CODE_OK, NULL);
    EXPECT(accelpool_builder_set_sessions(b, "gpu", &vt, &err), ACCELPOOL_CODE_UNKNOWN_GROUP,
           "no group `gpu`");
    accelpool_session_vtable no_run = {NULL, create, NULL, destroy, NULL};
    EXPECT(accelpool_builder_set_sessions(b, "c", &no_run, &err), ACCELPOOL_CODE_NULL_ARGUMENT,
           "vtable->run");
    EXPECT(accelpool_builder_set_sessions(b, "c", &vt, &err), ACCELPOOL_CODE_OK, NULL);
    accelpool_pool *pool = NULL;
    EXPECT(accelpool_builder_build(&b, &pool, &err), ACCELPOOL_CODE_OK, NULL);
    CHECK(b == NULL);
    CHECK(atomic_load(&sessions_created) == 2);

    /* Several threads at once, mixed priorities, lent and copied inputs. */
    enum { THREADS = 4 };
    pthread_t t[THREADS];
    struct submitter s[THREADS];
    for (int i = 0; i < THREADS; i++) {
        s[i] = (struct submitter){pool, i, 0, 0};
        pthread_create(&t[i], NULL, submit_many, &s[i]);
    }
    long completed = 0, failed = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        completed += s[i].completed;
        failed += s[i].failed;
    }
    CHECK(completed + failed == THREADS * PER_THREAD);
    CHECK(failed == THREADS * 2 * (PER_THREAD / 50));

    /* A refused request stays the caller's, intact: an unknown group. */
    accelpool_request *r = request_of(5.0f, 1);
    CHECK(accelpool_request_set_group(r, "npu", NULL) == ACCELPOOL_CODE_OK);
    accelpool_handle *h = NULL;
    EXPECT(accelpool_pool_try_submit(pool, &r, &h, &err), ACCELPOOL_CODE_UNKNOWN_GROUP, "npu");
    CHECK(r != NULL && h == NULL);
    CHECK(accelpool_request_set_group(r, "c", NULL) == ACCELPOOL_CODE_OK);
    /* A tenant and an affinity key: the tenant shows in the stats below. */
    CHECK(accelpool_request_set_tenant(r, "c-client", NULL) == ACCELPOOL_CODE_OK);
    CHECK(accelpool_request_set_affinity(r, 42, NULL) == ACCELPOOL_CODE_OK);
    EXPECT(accelpool_request_set_tenant(r, NULL, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "tenant");
    EXPECT(accelpool_request_set_affinity(NULL, 42, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "request");
    EXPECT(accelpool_pool_submit_timeout(pool, &r, 1000, &h, &err), ACCELPOOL_CODE_OK, NULL);
    CHECK(r == NULL);
    accelpool_result *res = NULL;
    EXPECT(accelpool_handle_wait_timeout(h, 10000, &res, &err), ACCELPOOL_CODE_OK, NULL);
    EXPECT(accelpool_handle_wait(h, &res, &err), ACCELPOOL_CODE_ALREADY_TAKEN, "already taken");
    int32_t status = -1;
    CHECK(accelpool_handle_status(h, &status, NULL) == ACCELPOOL_CODE_OK);
    CHECK(status == ACCELPOOL_STATUS_COMPLETED);
    accelpool_result_free(res);
    accelpool_handle_free(h);

    /* Dead letters: counted, drained as JSON, then a new one replayed. */
    size_t letters = 0;
    CHECK(accelpool_pool_dead_letter_count(pool, &letters, NULL) == ACCELPOOL_CODE_OK);
    CHECK(letters == (size_t)failed);
    char *json = NULL;
    EXPECT(accelpool_pool_drain_dead_letters_json(pool, &json, &err), ACCELPOOL_CODE_OK, NULL);
    CHECK(json[0] == '[' && strstr(json, "\"device busy\"") && strstr(json, "\"bad input\""));
    accelpool_string_free(json);
    CHECK(accelpool_pool_dead_letter_count(pool, &letters, NULL) == ACCELPOOL_CODE_OK);
    CHECK(letters == 0);
    r = request_of(-2.0f, 1);
    CHECK(accelpool_pool_submit(pool, &r, &h, NULL) == ACCELPOOL_CODE_OK);
    EXPECT(accelpool_handle_wait(h, &res, &err), ACCELPOOL_CODE_DEAD_LETTERED, "bad input");
    accelpool_handle_free(h);
    accelpool_replay *replay = NULL;
    EXPECT(accelpool_pool_replay_dead_letters(pool, &replay, &err), ACCELPOOL_CODE_OK, NULL);
    size_t n = 0;
    CHECK(accelpool_replay_len(replay, &n, NULL) == ACCELPOOL_CODE_OK && n == 1);
    accelpool_request *back = NULL;
    EXPECT(accelpool_replay_take(replay, 0, &h, &back, &err), ACCELPOOL_CODE_OK, NULL);
    EXPECT(accelpool_replay_take(replay, 0, &h, &back, &err), ACCELPOOL_CODE_NOT_FOUND,
           "already taken");
    accelpool_replay_free(replay);
    EXPECT(accelpool_handle_wait(h, &res, &err), ACCELPOOL_CODE_DEAD_LETTERED, "bad input");
    accelpool_handle_free(h);

    /* Stats as JSON, and the pool's counters. */
    CHECK(accelpool_pool_stats_json(pool, &json, NULL) == ACCELPOOL_CODE_OK);
    CHECK(strstr(json, "\"counts\"") && strstr(json, "\"groups\""));
    CHECK(strstr(json, "\"tenant\":\"c-client\""));
    accelpool_string_free(json);

    char *report = NULL;
    EXPECT(accelpool_pool_shutdown(pool, 10000, &report, &err), ACCELPOOL_CODE_OK, NULL);
    CHECK(strstr(report, "\"drained\":true"));
    accelpool_string_free(report);

    /* Submitting after shutdown: refused, the request still ours. */
    r = request_of(1.0f, 1);
    EXPECT(accelpool_pool_submit(pool, &r, &h, &err), ACCELPOOL_CODE_CLOSED, "shut down");
    CHECK(r != NULL);
    accelpool_request_free(r);

    accelpool_counts c;
    CHECK(accelpool_pool_counts(pool, &c, NULL) == ACCELPOOL_CODE_OK);
    printf("accounting: accepted %llu = completed %llu + dead-lettered %llu + cancelled %llu + "
           "expired %llu\nlargest batch %d\n",
           (unsigned long long)c.accepted, (unsigned long long)c.completed,
           (unsigned long long)c.dead_lettered, (unsigned long long)c.cancelled,
           (unsigned long long)c.expired, atomic_load(&largest_batch));
    CHECK(c.accepted == c.completed + c.dead_lettered + c.cancelled + c.expired);
    CHECK(c.accepted == (uint64_t)(THREADS * PER_THREAD + 3));
    CHECK(c.completed == (uint64_t)completed + 1);
    accelpool_pool_free(pool);

    /* Every session destroyed, the vtable's user released once, every
     * lent buffer given back once (the lent half of the requests, plus the
     * refused-then-run one, the two dead-lettered ones and the closed one). */
    CHECK(atomic_load(&sessions_destroyed) == atomic_load(&sessions_created));
    CHECK(atomic_load(&released_user) == 1);
    CHECK(atomic_load(&buffers_released) == THREADS * PER_THREAD / 2 + 3);
    printf("csession: all checks passed\n");
    return 0;
}
