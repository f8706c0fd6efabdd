/* Assertions for the C tests: a failed check prints where and exits 1. */
#ifndef ACCELPOOL_TEST_CHECK_H
#define ACCELPOOL_TEST_CHECK_H

#include "accelpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)


/* Runs `call` with `&err` as its error argument; checks the code and that
 * the message contains `needle`. */
static inline void expect(accelpool_code got, accelpool_error *err, accelpool_code want,
                          const char *needle, const char *what, int line) {
    if (got != want) {
        fprintf(stderr, "line %d: %s returned %s (%s), expected %s\n", line, what,
                accelpool_code_name(got), err ? accelpool_error_message(err) : "",
                accelpool_code_name(want));
        exit(1);
    }
    if (want != ACCELPOOL_CODE_OK) {
        if (!err || accelpool_error_code(err) != want) {
            fprintf(stderr, "line %d: %s: no error object with the code\n", line, what);
            exit(1);
        }
        if (needle && !strstr(accelpool_error_message(err), needle)) {
            fprintf(stderr, "line %d: %s: message `%s` lacks `%s`\n", line, what,
                    accelpool_error_message(err), needle);
            exit(1);
        }
        printf("ok   %-40s %-16s %s\n", what, accelpool_code_name(got),
               accelpool_error_message(err));
    }
    accelpool_error_free(err);
}

#define EXPECT(call_with_err, want, needle)                                           \
    do {                                                                              \
        accelpool_error *err = NULL;                                                  \
        accelpool_code got_ = (call_with_err);                                        \
        expect(got_, err, (want), (needle), #call_with_err, __LINE__);                \
    } while (0)

#endif
