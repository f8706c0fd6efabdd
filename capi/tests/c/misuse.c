/*
 * Misuse of the C API: each mistake returns its documented code and a
 * message that names the problem, and nothing crashes. Runs from the
 * project root (the real PP-OCR classifier in models/ppocr).
 */
#include "check.h"

#include <stdint.h>

static const char *CLS =
    "groups:\n"
    "  - name: cpu\n"
    "    workers: 1\n"
    "    pin: false\n"
    "    backend:\n"
    "      openvino:\n"
    "        model: models/ppocr/cls.onnx\n"
    "        device: CPU\n"
    "        reshape: { x: [1, 3, 48, 192] }\n";

static float pixels[3 * 48 * 192];

static accelpool_request *image(size_t width) {
    accelpool_request *r = NULL;
    CHECK(accelpool_request_new(&r, NULL) == ACCELPOOL_CODE_OK);
    size_t dims[4] = {1, 3, 48, width};
    CHECK(accelpool_request_add_tensor(r, "x", ACCELPOOL_ELEMENT_TYPE_F32, dims, 4, pixels,
                                       3 * 48 * width * sizeof(float), NULL) == ACCELPOOL_CODE_OK);
    return r;
}

int main(void) {
    accelpool_pool *pool = NULL;
    accelpool_request *r = NULL;
    accelpool_handle *h = NULL;
    accelpool_result *res = NULL;

    /* NULL pointers. */
    EXPECT(accelpool_pool_from_yaml_str(NULL, &pool, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "`yaml`");
    EXPECT(accelpool_pool_from_yaml_str(CLS, NULL, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "`pool`");
    EXPECT(accelpool_pool_from_yaml_file(NULL, &pool, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "`path`");
    EXPECT(accelpool_request_new(NULL, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "`request`");
    EXPECT(accelpool_request_add_tensor(NULL, "x", 1, NULL, 0, NULL, 4, &err),
           ACCELPOOL_CODE_NULL_ARGUMENT, "`request`");
    EXPECT(accelpool_pool_submit(NULL, &r, &h, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "`pool`");
    EXPECT(accelpool_handle_wait(NULL, &res, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "`handle`");
    EXPECT(accelpool_handle_status(NULL, NULL, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "`handle`");
    EXPECT(accelpool_pool_stats_json(NULL, NULL, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "`pool`");
    EXPECT(accelpool_result_output(NULL, 0, NULL, &err), ACCELPOOL_CODE_NULL_ARGUMENT, "`result`");
    CHECK(accelpool_pool_from_yaml_str(NULL, &pool, NULL) == ACCELPOOL_CODE_NULL_ARGUMENT);
    accelpool_pool_free(NULL);
    accelpool_request_free(NULL);
    accelpool_handle_free(NULL);
    accelpool_result_free(NULL);
    accelpool_error_free(NULL);
    accelpool_string_free(NULL);
    accelpool_builder_free(NULL);
    accelpool_replay_free(NULL);
    CHECK(strcmp(accelpool_error_message(NULL), "") == 0);
    CHECK(accelpool_error_field(NULL) == NULL);
    CHECK(strcmp(accelpool_code_name(12345), "unknown") == 0);
    CHECK(strcmp(accelpool_code_name(ACCELPOOL_CODE_FULL), "full") == 0);
    CHECK(accelpool_version() && strlen(accelpool_version()) >= 5);

    /* Bad tensors and settings, before any pool. */
    CHECK(accelpool_request_new(&r, NULL) == ACCELPOOL_CODE_OK);
    size_t dims[2] = {2, 3};
    float six[6] = {0};
    EXPECT(accelpool_request_add_tensor(r, "x", 9, dims, 2, six, sizeof six, &err),
           ACCELPOOL_CODE_INVALID_ARGUMENT, "not an element type");
    EXPECT(accelpool_request_add_tensor(r, "x", ACCELPOOL_ELEMENT_TYPE_F32, dims, 2, six, 20, &err),
           ACCELPOOL_CODE_INVALID_ARGUMENT, "need 24 bytes");
    size_t huge[2] = {SIZE_MAX, 4};
    EXPECT(accelpool_request_add_tensor(r, "x", ACCELPOOL_ELEMENT_TYPE_F32, huge, 2, six, 24, &err),
           ACCELPOOL_CODE_INVALID_ARGUMENT, "more bytes than memory can");
    EXPECT(accelpool_request_add_tensor(r, "x", ACCELPOOL_ELEMENT_TYPE_F32, dims, 99, six, 24, &err),
           ACCELPOOL_CODE_INVALID_ARGUMENT, "at most 32 dimensions");
    EXPECT(accelpool_request_add_tensor(r, "x", ACCELPOOL_ELEMENT_TYPE_F32, dims, 2, NULL, 24, &err),
           ACCELPOOL_CODE_NULL_ARGUMENT, "`data`");
    EXPECT(accelpool_request_add_tensor(r, "\xff\xfe", ACCELPOOL_ELEMENT_TYPE_F32, dims, 2, six, 24,
                                        &err),
           ACCELPOOL_CODE_INVALID_ARGUMENT, "not UTF-8");
    EXPECT(accelpool_request_add_tensor(r, "x", ACCELPOOL_ELEMENT_TYPE_F32, dims, 2, six, 24, &err),
           ACCELPOOL_CODE_OK, NULL);
    EXPECT(accelpool_request_add_tensor(r, "x", ACCELPOOL_ELEMENT_TYPE_F32, dims, 2, six, 24, &err),
           ACCELPOOL_CODE_INVALID_ARGUMENT, "already has a tensor named `x`");
    EXPECT(accelpool_request_set_priority(r, 0, &err), ACCELPOOL_CODE_INVALID_ARGUMENT,
           "not a priority");
    accelpool_request_free(r);
    r = NULL;

    /* Bad configurations: the code, the field, the fix. */
    EXPECT(accelpool_pool_from_yaml_str("groups: [", &pool, &err), ACCELPOOL_CODE_CONFIG, NULL);
    {
        accelpool_error *err = NULL;
        CHECK(accelpool_pool_from_yaml_str("groups:\n  - name: cpu\n    workers: 0\n", &pool,
                                           &err) == ACCELPOOL_CODE_CONFIG);
        CHECK(accelpool_error_field(err) && strcmp(accelpool_error_field(err), "groups[0].workers") == 0);
        printf("ok   %-40s %-16s %s\n", "workers: 0", "config", accelpool_error_message(err));
        accelpool_error_free(err);
    }
    EXPECT(accelpool_pool_from_yaml_file("config/none.yaml", &pool, &err), ACCELPOOL_CODE_CONFIG,
           "none.yaml");
    EXPECT(accelpool_pool_from_yaml_str("groups:\n  - name: cpu\n    workers: 1\n", &pool, &err),
           ACCELPOOL_CODE_BUILD, "accelpool_builder_set_sessions");
    EXPECT(accelpool_pool_from_yaml_str("groups:\n  - name: cpu\n    backend:\n      openvino:\n"
                                        "        model: models/none.onnx\n        device: CPU\n",
                                        &pool, &err),
           ACCELPOOL_CODE_MODEL, "models/none.onnx not found");
    CHECK(pool == NULL);

    /* A real pool. */
    EXPECT(accelpool_pool_from_yaml_str(CLS, &pool, &err), ACCELPOOL_CODE_OK, NULL);
    CHECK(accelpool_openvino_version() != NULL);

    /* A tensor of the wrong shape: refused at submit, still ours. */
    r = image(100);
    EXPECT(accelpool_pool_submit(pool, &r, &h, &err), ACCELPOOL_CODE_INVALID_INPUT, "expected f32 [1,3,48,192]");
    CHECK(r != NULL && h == NULL);
    accelpool_request_free(r);

    /* Freeing a handle before waiting: the request still runs. */
    r = image(192);
    EXPECT(accelpool_pool_submit(pool, &r, &h, &err), ACCELPOOL_CODE_OK, NULL);
    accelpool_handle_free(h);

    /* A result's outputs, and an index past them. */
    r = image(192);
    EXPECT(accelpool_pool_submit(pool, &r, &h, &err), ACCELPOOL_CODE_OK, NULL);
    EXPECT(accelpool_handle_wait(h, &res, &err), ACCELPOOL_CODE_OK, NULL);
    size_t n = 0;
    CHECK(accelpool_result_output_count(res, &n, NULL) == ACCELPOOL_CODE_OK && n == 1);
    accelpool_tensor_view v;
    CHECK(accelpool_result_output(res, 0, &v, NULL) == ACCELPOOL_CODE_OK);
    CHECK(v.element_type == ACCELPOOL_ELEMENT_TYPE_F32 && v.ndims == 2 && v.dims[1] == 2);
    CHECK(v.byte_len == 2 * sizeof(float));
    EXPECT(accelpool_result_output(res, 1, &v, &err), ACCELPOOL_CODE_NOT_FOUND, "past");
    EXPECT(accelpool_handle_wait_timeout(h, 0, &res, &err), ACCELPOOL_CODE_ALREADY_TAKEN, NULL);
    accelpool_result_free(res);
    accelpool_handle_free(h);

    /* Submitting after shutdown. */
    char *report = NULL;
    EXPECT(accelpool_pool_shutdown(pool, 10000, &report, &err), ACCELPOOL_CODE_OK, NULL);
    accelpool_string_free(report);
    r = image(192);
    EXPECT(accelpool_pool_try_submit(pool, &r, &h, &err), ACCELPOOL_CODE_CLOSED, "shut down");
    CHECK(r != NULL);
    accelpool_request_free(r);
    accelpool_counts c;
    CHECK(accelpool_pool_counts(pool, &c, NULL) == ACCELPOOL_CODE_OK);
    CHECK(c.accepted == 2 && c.completed == 2);
    CHECK(c.accepted == c.completed + c.dead_lettered + c.cancelled + c.expired);
    EXPECT(accelpool_pool_latency(pool, 42, &(accelpool_latency){0}, &err),
           ACCELPOOL_CODE_INVALID_ARGUMENT, "no accelpool_latency_kind");
    accelpool_pool_free(pool);
    printf("misuse: all checks passed\n");
    return 0;
}
