/*
 * accelpool: the C API (libaccelpool_c).
 *
 * Generated from capi/src by cbindgen (`./scripts/capi.sh header`); do not
 * edit. C++ users: include/accelpool.hpp wraps it.
 *
 * Conventions
 * - Every function that can fail returns an accelpool_code
 *   (ACCELPOOL_CODE_OK is 0) and takes, last, `accelpool_error **error`:
 *   when it is not NULL and the call fails, *error is set to a new error
 *   (code, message, field path for configuration errors) that the caller
 *   frees with accelpool_error_free. Nothing is written on success.
 * - Every pointer argument is checked: NULL where an object is needed is
 *   ACCELPOOL_CODE_NULL_ARGUMENT. A dangling pointer or a double free cannot
 *   be detected and is undefined behaviour.
 * - No panic crosses into C: a bug inside the library returns
 *   ACCELPOOL_CODE_INTERNAL.
 * - Objects are freed by their _free function, which ignores NULL.
 * - Threads: an accelpool_pool is shared by any number of threads. A
 *   request, handle, builder or replay list is used by one thread at a
 *   time (it may move between threads). A result is read-only and may be
 *   shared. Session callbacks run on the pool's worker threads.
 * - A submit takes the request (*request becomes NULL) only when it is
 *   accepted; a refused request stays the caller's, untouched.
 * - Enumerations are passed as int32_t arguments and checked; a value
 *   outside the enumeration is ACCELPOOL_CODE_INVALID_ARGUMENT.
 */

#ifndef ACCELPOOL_H
#define ACCELPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The most dimensions a tensor may have.
#define MAX_DIMS 32

// Bytes of the message buffer handed to `create` and `run`
// (NUL-terminated; a longer message is cut).
#define ACCELPOOL_MESSAGE_CAPACITY 512

// What a call returned. `ACCELPOOL_CODE_OK` (0) is success; every other
// code comes with an `accelpool_error` when the caller asked for one.
typedef enum accelpool_code {
  // Success.
  ACCELPOOL_CODE_OK = 0,
  // A pointer argument that must not be NULL was NULL (the message names it).
  ACCELPOOL_CODE_NULL_ARGUMENT = 1,
  // An argument is out of range or malformed: an unknown element type or
  // priority, a string that is not UTF-8, dims that do not match the
  // data's length (the message names the argument and the fix).
  ACCELPOOL_CODE_INVALID_ARGUMENT = 2,
  // The configuration is invalid; `accelpool_error_field` gives the
  // path of the offending field (for example `groups[0].workers`).
  ACCELPOOL_CODE_CONFIG = 10,
  // The OpenVINO runtime library was not found, could not be loaded, or
  // is too old.
  ACCELPOOL_CODE_LIBRARY = 11,
  // A model file is missing, unreadable, too large, or not a model.
  ACCELPOOL_CODE_MODEL = 12,
  // A configured device is not on this machine.
  ACCELPOOL_CODE_DEVICE = 13,
  // A library or model path is writable by other users and was refused.
  ACCELPOOL_CODE_INSECURE_PATH = 14,
  // OpenVINO failed a call (compiling a model, for example).
  ACCELPOOL_CODE_OPENVINO = 15,
  // The pool could not start: a group without sessions, a session that
  // failed to build, a thread that could not be spawned.
  ACCELPOOL_CODE_BUILD = 16,
  // Refused: every eligible queue of the request's level is full.
  ACCELPOOL_CODE_FULL = 20,
  // Refused: the queues stayed full until the submit timeout.
  ACCELPOOL_CODE_TIMEOUT = 21,
  // Refused: the pool is shut down.
  ACCELPOOL_CODE_CLOSED = 22,
  // Refused: the request named a group the pool does not have.
  ACCELPOOL_CODE_UNKNOWN_GROUP = 23,
  // Refused: memory is above the high watermark for the request's level.
  ACCELPOOL_CODE_MEMORY_PRESSURE = 24,
  // Refused: no eligible group can take requests (breakers open, no
  // healthy worker).
  ACCELPOOL_CODE_UNAVAILABLE = 25,
  // Refused: the input does not fit the model (tensor name, element type
  // or shape).
  ACCELPOOL_CODE_INVALID_INPUT = 26,
  // Refused: deadline-aware admission estimated the request would miss
  // its deadline (the timeout given with `accelpool_request_set_timeout_ms`).
  ACCELPOOL_CODE_DEADLINE_UNMEETABLE = 27,
  // Refused for a reason this version of the header does not know.
  ACCELPOOL_CODE_REFUSED = 29,
  // Every attempt failed; the request is in the dead-letter queue.
  ACCELPOOL_CODE_DEAD_LETTERED = 30,
  // The request was cancelled (by its caller or by shutdown).
  ACCELPOOL_CODE_CANCELLED = 31,
  // The request's deadline passed before a worker took it.
  ACCELPOOL_CODE_EXPIRED = 32,
  // The result was already taken from this handle.
  ACCELPOOL_CODE_ALREADY_TAKEN = 33,
  // A wait ran out of time; the request is still going and the handle
  // is still valid.
  ACCELPOOL_CODE_WAIT_TIMEOUT = 34,
  // Nothing to take (an empty list, an index past its end).
  ACCELPOOL_CODE_NOT_FOUND = 35,
  // A bug in accelpool (a caught panic); the message says where.
  ACCELPOOL_CODE_INTERNAL = 99,
} accelpool_code;

// Priority levels (values of an `int32_t priority`). Higher levels are
// always served first.
typedef enum accelpool_priority {
  // Background work: taken only when nothing else waits.
  ACCELPOOL_PRIORITY_LOW = 1,
  // The default level.
  ACCELPOOL_PRIORITY_NORMAL = 2,
  // Interactive work.
  ACCELPOOL_PRIORITY_HIGH = 3,
  // Latency-critical work: always taken first.
  ACCELPOOL_PRIORITY_URGENT = 4,
} accelpool_priority;

// Element types of tensors (values of an `int32_t element_type`).
typedef enum accelpool_element_type {
  // 32-bit float (`float`).
  ACCELPOOL_ELEMENT_TYPE_F32 = 1,
  // Unsigned byte (`uint8_t`).
  ACCELPOOL_ELEMENT_TYPE_U8 = 2,
  // 32-bit signed integer (`int32_t`).
  ACCELPOOL_ELEMENT_TYPE_I32 = 3,
  // 64-bit signed integer (`int64_t`).
  ACCELPOOL_ELEMENT_TYPE_I64 = 4,
} accelpool_element_type;

// Where a request is (values written by `accelpool_handle_status`).
typedef enum accelpool_status {
  // Waiting in a queue, or for a retry.
  ACCELPOOL_STATUS_QUEUED = 0,
  // A session is running it.
  ACCELPOOL_STATUS_RUNNING = 1,
  // Finished with a result.
  ACCELPOOL_STATUS_COMPLETED = 2,
  // Every attempt failed; it is in the dead-letter queue.
  ACCELPOOL_STATUS_FAILED = 3,
  // Cancelled by its caller or by shutdown.
  ACCELPOOL_STATUS_CANCELLED = 4,
  // Its deadline passed before a worker took it.
  ACCELPOOL_STATUS_EXPIRED = 5,
} accelpool_status;

// What a C session's callback returns, and the kind of a failed item.
typedef enum accelpool_session_status {
  // Success.
  ACCELPOOL_SESSION_STATUS_OK = 0,
  // Worth trying again, possibly on another worker or group: retried.
  ACCELPOOL_SESSION_STATUS_TRANSIENT = 1,
  // Retrying cannot help (bad input, say): dead-lettered at once.
  ACCELPOOL_SESSION_STATUS_PERMANENT = 2,
  // Stopped because the request was cancelled.
  ACCELPOOL_SESSION_STATUS_CANCELLED = 3,
} accelpool_session_status;

// Which latency `accelpool_pool_latency` reports (values of an
// `int32_t which`).
typedef enum accelpool_latency_kind {
  // From acceptance at submit to the completed result.
  ACCELPOOL_LATENCY_KIND_END_TO_END = 1,
  // From entering a queue to a worker taking it (per attempt).
  ACCELPOOL_LATENCY_KIND_QUEUE_WAIT = 2,
  // Time inside the session (per attempt).
  ACCELPOOL_LATENCY_KIND_SERVICE = 3,
} accelpool_latency_kind;

// The requests of one `run` call, as the C session sees them. Valid only
// until `run` returns; used by one thread at a time.
typedef struct accelpool_batch accelpool_batch;

// A configuration on its way to becoming a pool: set the sessions of the
// groups that have no `backend` here, then build. Used by one thread at a
// time.
typedef struct accelpool_builder accelpool_builder;

// The details of a failure. Read it with `accelpool_error_code`,
// `accelpool_error_message` and `accelpool_error_field`; free it with
// `accelpool_error_free`. Owned by the caller; not shared between
// threads.
typedef struct accelpool_error accelpool_error;

// A submitted request: wait for it, look at it, cancel it. Used by one
// thread at a time; it may move between threads. Freeing it before the
// request finishes is allowed: the request still runs (or is cancelled
// only if `accelpool_handle_cancel` was called) and its result is dropped.
typedef struct accelpool_handle accelpool_handle;

// A running pool. Shared by any number of threads: every function taking
// a `const accelpool_pool *` may be called concurrently.
// `accelpool_pool_free` must be the last call on it.
typedef struct accelpool_pool accelpool_pool;

// The outcomes of a replay, one per letter, oldest first. Used by one
// thread at a time.
typedef struct accelpool_replay accelpool_replay;

// A request being built, or handed back by a refusal. Used by one thread
// at a time.
typedef struct accelpool_request accelpool_request;

// A finished request's outputs. Every pointer read from it stays valid
// until it is freed. Read-only: may be shared by threads.
typedef struct accelpool_result accelpool_result;

// A read-only view of one tensor. Every pointer in it stays valid as long
// as the object it was read from (a result, or a batch during a session's
// `run`).
typedef struct accelpool_tensor_view {
  // The tensor's name, NUL-terminated UTF-8.
  const char *name;
  // One of `accelpool_element_type`.
  int32_t element_type;
  // The dimensions, outermost first.
  const size_t *dims;
  // How many dimensions.
  size_t ndims;
  // The elements, row-major, native-endian.
  const void *data;
  // The data's length in bytes (elements times the element size).
  size_t byte_len;
} accelpool_tensor_view;

// The worker a session is created for.
typedef struct accelpool_worker_info {
  // The device group's name, NUL-terminated (valid during `create`).
  const char *group;
  // The worker's index within its group.
  size_t worker;
  // The core the worker is pinned to, or -1 when it is not pinned.
  int64_t core;
  // 0 for the first session of this worker, then 1, 2, ... for each
  // rebuild after a failure.
  uint64_t rebuild;
} accelpool_worker_info;

// The callbacks of a C session type. The pool copies the struct.
//
// `create` runs on the worker thread that will use the session, once per
// worker (and again after a session is rebuilt); `run` and `destroy` run
// on that same thread. Callbacks of different workers run at the same
// time, so anything they share through `user` must be thread-safe.
// Callbacks must not unwind (no C++ exception may leave them).
typedef struct accelpool_session_vtable {
  // Passed to every callback as is.
  void *user;
  // Makes a session for `worker` in `*session`. Returns
  // `ACCELPOOL_SESSION_STATUS_OK`, or a failure status with a message
  // written to `message` (`ACCELPOOL_MESSAGE_CAPACITY` bytes). Required.
  int32_t (*create)(void *user,
                    const struct accelpool_worker_info *worker,
                    void **session,
                    char *message);
  // Runs a batch of one or more requests. For each item, add its outputs
  // with `accelpool_batch_add_output` or fail it alone with
  // `accelpool_batch_fail`, then return `ACCELPOOL_SESSION_STATUS_OK`.
  // Returning a failure status fails every item of the call, with the
  // message written to `message`. Required.
  int32_t (*run)(void *user,
                 void *session,
                 struct accelpool_batch *batch,
                 char *message);
  // Frees a session `create` made. Optional.
  void (*destroy)(void *user,
                  void *session);
  // Called once, from any thread, when the pool no longer needs `user`
  // (the pool was freed, or the builder was freed unbuilt). Optional.
  void (*release)(void *user);
} accelpool_session_vtable;

// The pool's request counters (the accounting identity holds once the
// pool is drained: `accepted = completed + dead_lettered + cancelled +
// expired`).
typedef struct accelpool_counts {
  // Requests taken into a queue.
  uint64_t accepted;
  // Submissions refused and handed back.
  uint64_t rejected;
  // Attempts a worker started.
  uint64_t started;
  // Requests that finished with a result.
  uint64_t completed;
  // Attempts that failed.
  uint64_t failed_attempts;
  // Failed attempts scheduled to run again.
  uint64_t retried;
  // Requests that exhausted their attempts.
  uint64_t dead_lettered;
  // Requests cancelled by their caller or by shutdown.
  uint64_t cancelled;
  // Requests whose deadline passed before a worker took them.
  uint64_t expired;
} accelpool_counts;

// Percentiles of one latency, in microseconds, since the pool started.
typedef struct accelpool_latency {
  // Samples recorded.
  uint64_t count;
  // Mean.
  double mean_us;
  // Median.
  double p50_us;
  // 90th percentile.
  double p90_us;
  // 95th percentile.
  double p95_us;
  // 99th percentile.
  double p99_us;
  // 99.9th percentile.
  double p999_us;
  // Largest sample.
  double max_us;
} accelpool_latency;

// Gives a lent buffer back: called as `release(user, data)` once the pool
// no longer needs it. May be NULL.
typedef void (*accelpool_release_fn)(void *user,
                                     const void *data);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// The version of this library, as `MAJOR.MINOR.PATCH`. Never NULL.
const char *accelpool_version(void);

// The version of the OpenVINO runtime this process loaded (for example
// `2026.4.1-...`), or NULL when none is loaded yet (a pool with an
// OpenVINO group loads it).
const char *accelpool_openvino_version(void);

// Letters in the pool's dead-letter queue now, to `*count`.
enum accelpool_code accelpool_pool_dead_letter_count(const struct accelpool_pool *pool,
                                                     size_t *count,
                                                     struct accelpool_error **error);

// Removes every letter from the dead-letter queue and writes them to
// `*json` as a JSON array, oldest first: id, priority, group, the inputs'
// names, element types and shapes (not their data; use
// `accelpool_pool_replay_dead_letters` to run them again instead), every
// attempt's error, and timestamps. Free it with `accelpool_string_free`.
enum accelpool_code accelpool_pool_drain_dead_letters_json(const struct accelpool_pool *pool,
                                                           char **json,
                                                           struct accelpool_error **error);

// Drains the dead-letter queue and submits every letter again as a new
// request (same input, priority and group; no deadline), waiting while
// queues are full. `*replay` lists the outcomes: take each with
// `accelpool_replay_take`, then free the list.
enum accelpool_code accelpool_pool_replay_dead_letters(const struct accelpool_pool *pool,
                                                       struct accelpool_replay **replay,
                                                       struct accelpool_error **error);

// How many letters the replay holds, to `*len`.
enum accelpool_code accelpool_replay_len(const struct accelpool_replay *replay,
                                         size_t *len,
                                         struct accelpool_error **error);

// Takes entry `index`. `ACCELPOOL_CODE_OK`: it was resubmitted and
// `*handle` is its handle. A refusal code: it was refused and `*request`
// is the request, now the caller's (submit it again or free it).
// `NOT_FOUND` for an index past the end or an entry already taken.
enum accelpool_code accelpool_replay_take(struct accelpool_replay *replay,
                                          size_t index,
                                          struct accelpool_handle **handle,
                                          struct accelpool_request **request,
                                          struct accelpool_error **error);

// Frees a replay list; entries not taken are freed with it (their
// requests keep running; refused ones are dropped). NULL is ignored.
void accelpool_replay_free(struct accelpool_replay *replay);

// The code of `error`; `ACCELPOOL_CODE_INVALID_ARGUMENT` for NULL.
enum accelpool_code accelpool_error_code(const struct accelpool_error *error);

// What went wrong and what to do, as UTF-8. Valid until the error is
// freed; an empty string for NULL.
const char *accelpool_error_message(const struct accelpool_error *error);

// For `ACCELPOOL_CODE_CONFIG`, the path of the offending field (for
// example `groups[0].workers`); NULL otherwise. Valid until the error is
// freed.
const char *accelpool_error_field(const struct accelpool_error *error);

// Frees an error. NULL is ignored.
void accelpool_error_free(struct accelpool_error *error);

// A short, stable name for a code (`"full"`, `"dead_lettered"`, ...), for
// logs; `"unknown"` for a value that is no code. Never NULL.
const char *accelpool_code_name(int32_t code);

// Blocks until the request finishes. On `ACCELPOOL_CODE_OK`, `*result` is
// its outputs (free with `accelpool_result_free`). Otherwise the code
// says why there is none: `DEAD_LETTERED`, `CANCELLED`, `EXPIRED`, or
// `ALREADY_TAKEN` on a second wait. The handle stays valid either way.
enum accelpool_code accelpool_handle_wait(struct accelpool_handle *handle,
                                          struct accelpool_result **result,
                                          struct accelpool_error **error);

// As `accelpool_handle_wait`, but gives up after `timeout_ms`
// milliseconds with `ACCELPOOL_CODE_WAIT_TIMEOUT` (the request goes on;
// wait again later). `UINT64_MAX` waits for ever.
enum accelpool_code accelpool_handle_wait_timeout(struct accelpool_handle *handle,
                                                  uint64_t timeout_ms,
                                                  struct accelpool_result **result,
                                                  struct accelpool_error **error);

// Takes the result if the request has finished, without blocking;
// `ACCELPOOL_CODE_WAIT_TIMEOUT` if it has not.
enum accelpool_code accelpool_handle_try_get(struct accelpool_handle *handle,
                                             struct accelpool_result **result,
                                             struct accelpool_error **error);

// Writes where the request is now (an `accelpool_status`) to `*status`.
enum accelpool_code accelpool_handle_status(const struct accelpool_handle *handle,
                                            int32_t *status,
                                            struct accelpool_error **error);

// The request's id, unique within its pool, to `*id`.
enum accelpool_code accelpool_handle_id(const struct accelpool_handle *handle,
                                        uint64_t *id,
                                        struct accelpool_error **error);

// Cancels the request. `*cancelled` (may be NULL) is true when it was
// still queued and is now cancelled for good; false when it is running
// (its session is told and may stop early) or already finished.
enum accelpool_code accelpool_handle_cancel(const struct accelpool_handle *handle,
                                            bool *cancelled,
                                            struct accelpool_error **error);

// Frees a handle. The request is not cancelled; its result, when it
// comes, is dropped. NULL is ignored.
void accelpool_handle_free(struct accelpool_handle *handle);

// How many output tensors the result has, to `*count`.
enum accelpool_code accelpool_result_output_count(const struct accelpool_result *result,
                                                  size_t *count,
                                                  struct accelpool_error **error);

// A view of output `index` (name, element type, dims, data), valid until
// the result is freed.
enum accelpool_code accelpool_result_output(const struct accelpool_result *result,
                                            size_t index,
                                            struct accelpool_tensor_view *view,
                                            struct accelpool_error **error);

// Frees a result. NULL is ignored.
void accelpool_result_free(struct accelpool_result *result);

// Reads a pool configuration from the YAML file at `path` (UTF-8) into a
// new builder. Errors: `CONFIG` (with the field path) for a bad file.
enum accelpool_code accelpool_builder_from_yaml_file(const char *path,
                                                     struct accelpool_builder **builder,
                                                     struct accelpool_error **error);

// Reads a pool configuration from YAML text (UTF-8, NUL-terminated) into a
// new builder. Errors: `CONFIG` (with the field path) for bad YAML.
enum accelpool_code accelpool_builder_from_yaml_str(const char *yaml,
                                                    struct accelpool_builder **builder,
                                                    struct accelpool_error **error);

// Makes the sessions of group `group` (one without a `backend` in the
// configuration) from the C vtable `vtable` (copied). Its `release` runs
// when the pool, or this builder unbuilt, is freed.
enum accelpool_code accelpool_builder_set_sessions(struct accelpool_builder *builder,
                                                   const char *group,
                                                   const struct accelpool_session_vtable *vtable,
                                                   struct accelpool_error **error);

// Builds the pool and frees the builder, whatever the outcome (`*builder`
// is set to NULL). OpenVINO groups compile their models now; every worker
// builds its first session before this returns. Errors: `CONFIG`,
// `LIBRARY`, `MODEL`, `DEVICE`, `INSECURE_PATH`, `OPENVINO`, `BUILD`.
enum accelpool_code accelpool_builder_build(struct accelpool_builder **builder,
                                            struct accelpool_pool **pool,
                                            struct accelpool_error **error);

// Frees a builder that was not built, releasing the vtables given to it.
// NULL is ignored.
void accelpool_builder_free(struct accelpool_builder *builder);

// Builds a pool from the YAML file at `path`, whose groups all have an
// OpenVINO `backend`: `accelpool_builder_from_yaml_file` then
// `accelpool_builder_build`.
enum accelpool_code accelpool_pool_from_yaml_file(const char *path,
                                                  struct accelpool_pool **pool,
                                                  struct accelpool_error **error);

// Builds a pool from YAML text whose groups all have an OpenVINO
// `backend`.
enum accelpool_code accelpool_pool_from_yaml_str(const char *yaml,
                                                 struct accelpool_pool **pool,
                                                 struct accelpool_error **error);

// Submits `*request` without waiting. On success the pool owns the request
// (`*request` is set to NULL) and `*handle` is its handle. When refused
// (`FULL`, `CLOSED`, `UNKNOWN_GROUP`, `MEMORY_PRESSURE`, `UNAVAILABLE`,
// `INVALID_INPUT`), the request is untouched and still the caller's: submit
// it again, or free it.
enum accelpool_code accelpool_pool_try_submit(const struct accelpool_pool *pool,
                                              struct accelpool_request **request,
                                              struct accelpool_handle **handle,
                                              struct accelpool_error **error);

// As `accelpool_pool_try_submit`, but waits while the queues are full.
enum accelpool_code accelpool_pool_submit(const struct accelpool_pool *pool,
                                          struct accelpool_request **request,
                                          struct accelpool_handle **handle,
                                          struct accelpool_error **error);

// As `accelpool_pool_submit`, but waits at most `timeout_ms`
// milliseconds for room, then refuses with `TIMEOUT`.
enum accelpool_code accelpool_pool_submit_timeout(const struct accelpool_pool *pool,
                                                  struct accelpool_request **request,
                                                  uint64_t timeout_ms,
                                                  struct accelpool_handle **handle,
                                                  struct accelpool_error **error);

// The pool's counters now, to `*counts`.
enum accelpool_code accelpool_pool_counts(const struct accelpool_pool *pool,
                                          struct accelpool_counts *counts,
                                          struct accelpool_error **error);

// One of the pool's latencies (`which`: an `accelpool_latency_kind`), to
// `*latency`; the same figures as the stats JSON's `latency` object.
enum accelpool_code accelpool_pool_latency(const struct accelpool_pool *pool,
                                           int32_t which,
                                           struct accelpool_latency *latency,
                                           struct accelpool_error **error);

// The pool's stats as JSON (the snapshot the Rust API's `Pool::stats`
// serialises: counts, latencies, groups, workers, breakers, health,
// memory) in `*json`; free it with `accelpool_string_free`.
enum accelpool_code accelpool_pool_stats_json(const struct accelpool_pool *pool,
                                              char **json,
                                              struct accelpool_error **error);

// Shuts the pool down: stops taking requests, lets queued ones finish for
// up to `timeout_ms` milliseconds, cancels the rest, joins the workers.
// `*report_json` (may be NULL) gets the report as JSON (free it with
// `accelpool_string_free`). A second shutdown reports nothing new. The
// pool must still be freed.
enum accelpool_code accelpool_pool_shutdown(const struct accelpool_pool *pool,
                                            uint64_t timeout_ms,
                                            char **report_json,
                                            struct accelpool_error **error);

// Frees a pool, shutting it down first if it is running (queued requests
// get the configured drop timeout to finish). No other thread may use it
// during or after this call. NULL is ignored.
void accelpool_pool_free(struct accelpool_pool *pool);

// Frees a string this library returned. NULL is ignored.
void accelpool_string_free(char *string);

// Makes an empty request (no tensors, priority normal, no deadline, any
// group) in `*request`. Free it with `accelpool_request_free` unless a
// submit takes it.
enum accelpool_code accelpool_request_new(struct accelpool_request **request,
                                          struct accelpool_error **error);

// Adds an input tensor, copying `byte_len` bytes from `data` (the caller
// may reuse its buffer at once). `dims` has `ndims` (at most 32)
// dimensions whose product times the element size must equal `byte_len`.
// Names must be unique within the request.
enum accelpool_code accelpool_request_add_tensor(struct accelpool_request *request,
                                                 const char *name,
                                                 int32_t element_type,
                                                 const size_t *dims,
                                                 size_t ndims,
                                                 const void *data,
                                                 size_t byte_len,
                                                 struct accelpool_error **error);

// Adds an input tensor without copying: the pool reads `data` in place.
// The buffer must stay valid and unchanged until
// `release(release_user, data)` is called, which happens exactly once,
// from any thread, when no part of the pool needs it any more (after the
// request finished and its result or dead letter was let go, or when a
// request that was never submitted is freed). `release` may be NULL when
// the buffer outlives the pool. If this call fails, the buffer was not
// taken and `release` is not called.
enum accelpool_code accelpool_request_add_tensor_lent(struct accelpool_request *request,
                                                      const char *name,
                                                      int32_t element_type,
                                                      const size_t *dims,
                                                      size_t ndims,
                                                      const void *data,
                                                      size_t byte_len,
                                                      accelpool_release_fn release,
                                                      void *release_user,
                                                      struct accelpool_error **error);

// Sets the priority: one of `accelpool_priority`.
enum accelpool_code accelpool_request_set_priority(struct accelpool_request *request,
                                                   int32_t priority,
                                                   struct accelpool_error **error);

// Sets the deadline to `timeout_ms` milliseconds from now: a request still
// queued then expires instead of running.
enum accelpool_code accelpool_request_set_timeout_ms(struct accelpool_request *request,
                                                     uint64_t timeout_ms,
                                                     struct accelpool_error **error);

// Restricts the request to the device group named `group` (a copy is
// kept). A name the pool does not have is refused at submit with
// `ACCELPOOL_CODE_UNKNOWN_GROUP`.
enum accelpool_code accelpool_request_set_group(struct accelpool_request *request,
                                                const char *group,
                                                struct accelpool_error **error);

// Sets the tenant the request is served for (a copy is kept). With the
// pool's tenant fairness on (`tenants: { enabled: true }`), tenants of one
// priority level share the workers by weight and each has its own bound;
// without it the key is carried and ignored. Requests without a tenant
// share the default one.
enum accelpool_code accelpool_request_set_tenant(struct accelpool_request *request,
                                                 const char *tenant,
                                                 struct accelpool_error **error);

// Sets the request's affinity key. With the pool's affinity on
// (`affinity: { enabled: true }`), requests with the same key prefer the
// worker that last ran that key, for sessions that keep per-key state
// warm; without it the key is carried and ignored.
enum accelpool_code accelpool_request_set_affinity(struct accelpool_request *request,
                                                   uint64_t key,
                                                   struct accelpool_error **error);

// Frees a request the caller still owns (never submitted, or refused),
// releasing its lent buffers. NULL is ignored.
void accelpool_request_free(struct accelpool_request *request);

// How many requests `batch` holds (1 unless the group batches).
enum accelpool_code accelpool_batch_len(const struct accelpool_batch *batch,
                                        size_t *len,
                                        struct accelpool_error **error);

// How many input tensors item `item` has.
enum accelpool_code accelpool_batch_input_count(const struct accelpool_batch *batch,
                                                size_t item,
                                                size_t *count,
                                                struct accelpool_error **error);

// A view of input `index` of item `item`, valid until `run` returns.
enum accelpool_code accelpool_batch_input(const struct accelpool_batch *batch,
                                          size_t item,
                                          size_t index,
                                          struct accelpool_tensor_view *view,
                                          struct accelpool_error **error);

// True in `*cancelled` when item `item`'s request was cancelled while it
// runs: a long call may stop early and fail the item with
// `ACCELPOOL_SESSION_STATUS_CANCELLED`.
enum accelpool_code accelpool_batch_is_cancelled(const struct accelpool_batch *batch,
                                                 size_t item,
                                                 bool *cancelled,
                                                 struct accelpool_error **error);

// Adds an output tensor to item `item`'s result, copying the data (the
// same rules as `accelpool_request_add_tensor`).
enum accelpool_code accelpool_batch_add_output(struct accelpool_batch *batch,
                                               size_t item,
                                               const char *name,
                                               int32_t element_type,
                                               const size_t *dims,
                                               size_t ndims,
                                               const void *data,
                                               size_t byte_len,
                                               struct accelpool_error **error);

// Fails item `item` alone with `status` (a failure status) and `message`
// (NULL for none); the other items keep their outputs.
enum accelpool_code accelpool_batch_fail(struct accelpool_batch *batch,
                                         size_t item,
                                         int32_t status,
                                         const char *message,
                                         struct accelpool_error **error);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* ACCELPOOL_H */
