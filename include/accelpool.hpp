// accelpool: a header-only C++17 wrapper over the C API (accelpool.h).
//
// RAII types own the C objects: Pool, Builder, Request, Handle, Result. All
// are move-only. Errors are exceptions: every failing call throws
// accelpool::Error (code(), field(), what()); a refused submit throws
// accelpool::Refused, a subclass, and leaves the Request with the caller,
// untouched, so it can be submitted again. A wait that times out is not an
// error: Handle::wait_for returns an empty std::optional.
//
// Threads: one Pool may be used by any number of threads at once. A
// Request, Handle or Builder by one thread at a time. A Result is
// read-only and may be shared.
//
//     auto pool = accelpool::Pool::from_yaml_file("config/ppocr_cls_batching.yaml");
//     accelpool::Request req;
//     req.add_tensor("x", {1, 3, 48, 192}, pixels);          // std::vector<float>
//     accelpool::Result out = pool.submit(req).wait();
//     auto probs = out.output(0).as<float>();                 // std::pair of pointers
#ifndef ACCELPOOL_HPP
#define ACCELPOOL_HPP

#include "accelpool.h"

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace accelpool {

/// A failed call: its code, message and (for configuration errors) field.
class Error : public std::runtime_error {
public:
    Error(accelpool_code code, const std::string &message, std::string field)
        : std::runtime_error(message), code_(code), field_(std::move(field)) {}

    /// The C API's code.
    accelpool_code code() const noexcept { return code_; }
    /// The code's short name ("full", "dead_lettered", ...).
    const char *code_name() const noexcept { return accelpool_code_name(code_); }
    /// For ACCELPOOL_CODE_CONFIG, the offending field's path; empty otherwise.
    const std::string &field() const noexcept { return field_; }

private:
    accelpool_code code_;
    std::string field_;
};

/// A submit the pool refused (full, closed, unknown group, invalid input,
/// ...): the Request is still the caller's.
class Refused : public Error {
public:
    using Error::Error;
    /// True for ACCELPOOL_CODE_FULL and ACCELPOOL_CODE_TIMEOUT: the pool is
    /// open but saturated; retrying later may succeed.
    bool is_backpressure() const noexcept {
        return code() == ACCELPOOL_CODE_FULL || code() == ACCELPOOL_CODE_TIMEOUT;
    }
};

namespace detail {

inline bool is_refusal(accelpool_code c) {
    return c >= ACCELPOOL_CODE_FULL && c <= ACCELPOOL_CODE_REFUSED;
}

/// Throws the error of a failed call (Refused for a refusal).
inline void check(accelpool_code code, accelpool_error *err) {
    if (code == ACCELPOOL_CODE_OK) return;
    std::string message = err ? accelpool_error_message(err) : accelpool_code_name(code);
    const char *f = err ? accelpool_error_field(err) : nullptr;
    std::string field = f ? f : "";
    accelpool_error_free(err);
    if (is_refusal(code)) throw Refused(code, message, field);
    throw Error(code, message, field);
}

/// Owns a C string the library returned.
inline std::string take_string(char *s) {
    std::string out = s ? s : "";
    accelpool_string_free(s);
    return out;
}

template <class T> struct element_of;
template <> struct element_of<float> { static constexpr int32_t value = ACCELPOOL_ELEMENT_TYPE_F32; };
template <> struct element_of<uint8_t> { static constexpr int32_t value = ACCELPOOL_ELEMENT_TYPE_U8; };
template <> struct element_of<int32_t> { static constexpr int32_t value = ACCELPOOL_ELEMENT_TYPE_I32; };
template <> struct element_of<int64_t> { static constexpr int32_t value = ACCELPOOL_ELEMENT_TYPE_I64; };

} // namespace detail

/// Priority levels; higher is always served first.
enum class Priority : int32_t {
    Low = ACCELPOOL_PRIORITY_LOW,
    Normal = ACCELPOOL_PRIORITY_NORMAL,
    High = ACCELPOOL_PRIORITY_HIGH,
    Urgent = ACCELPOOL_PRIORITY_URGENT,
};

/// A read-only view of a tensor, valid as long as the Result it came from.
struct TensorView {
    std::string_view name;
    int32_t element_type;
    std::vector<size_t> dims;
    const void *data;
    size_t byte_len;

    /// The elements as T (its element type must match), as [begin, end).
    template <class T> std::pair<const T *, const T *> as() const {
        if (detail::element_of<T>::value != element_type)
            throw Error(ACCELPOOL_CODE_INVALID_ARGUMENT,
                        "tensor `" + std::string(name) + "` holds another element type", "");
        const T *p = static_cast<const T *>(data);
        return {p, p + byte_len / sizeof(T)};
    }
};

/// A finished request's outputs.
class Result {
public:
    explicit Result(accelpool_result *r) noexcept : r_(r) {}
    Result(Result &&o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    Result &operator=(Result &&o) noexcept {
        if (this != &o) {
            accelpool_result_free(r_);
            r_ = std::exchange(o.r_, nullptr);
        }
        return *this;
    }
    Result(const Result &) = delete;
    Result &operator=(const Result &) = delete;
    ~Result() { accelpool_result_free(r_); }

    /// How many outputs.
    size_t size() const {
        size_t n = 0;
        accelpool_error *e = nullptr;
        detail::check(accelpool_result_output_count(r_, &n, &e), e);
        return n;
    }

    /// Output `i`.
    TensorView output(size_t i) const {
        accelpool_tensor_view v{};
        accelpool_error *e = nullptr;
        detail::check(accelpool_result_output(r_, i, &v, &e), e);
        return TensorView{v.name, v.element_type, std::vector<size_t>(v.dims, v.dims + v.ndims),
                          v.data, v.byte_len};
    }

    /// The C object (still owned by this Result).
    const accelpool_result *get() const noexcept { return r_; }

private:
    accelpool_result *r_;
};

/// A submitted request.
class Handle {
public:
    explicit Handle(accelpool_handle *h) noexcept : h_(h) {}
    Handle(Handle &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    Handle &operator=(Handle &&o) noexcept {
        if (this != &o) {
            accelpool_handle_free(h_);
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;
    /// Frees the handle; the request still runs and its result is dropped.
    ~Handle() { accelpool_handle_free(h_); }

    /// Blocks until the request finishes; throws Error with
    /// ACCELPOOL_CODE_DEAD_LETTERED, _CANCELLED, _EXPIRED or _ALREADY_TAKEN
    /// when there is no result.
    Result wait() {
        accelpool_result *r = nullptr;
        accelpool_error *e = nullptr;
        detail::check(accelpool_handle_wait(h_, &r, &e), e);
        return Result(r);
    }

    /// As wait(), but empty when `timeout` passes first (the request goes on).
    template <class Rep, class Period>
    std::optional<Result> wait_for(std::chrono::duration<Rep, Period> timeout) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
        accelpool_result *r = nullptr;
        accelpool_error *e = nullptr;
        accelpool_code c = accelpool_handle_wait_timeout(h_, ms < 0 ? 0 : uint64_t(ms), &r, &e);
        if (c == ACCELPOOL_CODE_WAIT_TIMEOUT) {
            accelpool_error_free(e);
            return std::nullopt;
        }
        detail::check(c, e);
        return Result(r);
    }

    /// Where the request is (an accelpool_status value).
    accelpool_status status() const {
        int32_t s = 0;
        accelpool_error *e = nullptr;
        detail::check(accelpool_handle_status(h_, &s, &e), e);
        return static_cast<accelpool_status>(s);
    }

    /// Cancels it: true when it was still queued and is now cancelled.
    bool cancel() {
        bool c = false;
        accelpool_error *e = nullptr;
        detail::check(accelpool_handle_cancel(h_, &c, &e), e);
        return c;
    }

    /// The request's id within its pool.
    uint64_t id() const {
        uint64_t id = 0;
        accelpool_error *e = nullptr;
        detail::check(accelpool_handle_id(h_, &id, &e), e);
        return id;
    }

private:
    accelpool_handle *h_;
};

/// A request being built. Submitting an accepted request empties it
/// (valid() becomes false); a refused one keeps everything.
class Request {
public:
    Request() {
        accelpool_error *e = nullptr;
        detail::check(accelpool_request_new(&r_, &e), e);
    }
    Request(Request &&o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    Request &operator=(Request &&o) noexcept {
        if (this != &o) {
            accelpool_request_free(r_);
            r_ = std::exchange(o.r_, nullptr);
        }
        return *this;
    }
    Request(const Request &) = delete;
    Request &operator=(const Request &) = delete;
    ~Request() { accelpool_request_free(r_); }

    /// Adds a tensor, copying `data`.
    template <class T>
    Request &add_tensor(const std::string &name, std::initializer_list<size_t> dims,
                        const std::vector<T> &data) {
        return add_tensor(name, detail::element_of<T>::value, std::vector<size_t>(dims),
                          data.data(), data.size() * sizeof(T));
    }

    /// Adds a tensor of any element type, copying `byte_len` bytes.
    Request &add_tensor(const std::string &name, int32_t element_type,
                        const std::vector<size_t> &dims, const void *data, size_t byte_len) {
        accelpool_error *e = nullptr;
        detail::check(accelpool_request_add_tensor(r_, name.c_str(), element_type, dims.data(),
                                                   dims.size(), data, byte_len, &e),
                      e);
        return *this;
    }

    /// Adds a tensor without copying: `data` must stay valid and unchanged
    /// until `release(user, data)` is called (or, with a NULL `release`,
    /// until the pool is freed).
    Request &add_tensor_lent(const std::string &name, int32_t element_type,
                             const std::vector<size_t> &dims, const void *data, size_t byte_len,
                             accelpool_release_fn release, void *user) {
        accelpool_error *e = nullptr;
        detail::check(accelpool_request_add_tensor_lent(r_, name.c_str(), element_type,
                                                        dims.data(), dims.size(), data, byte_len,
                                                        release, user, &e),
                      e);
        return *this;
    }

    /// Sets the priority.
    Request &priority(Priority p) {
        accelpool_error *e = nullptr;
        detail::check(accelpool_request_set_priority(r_, static_cast<int32_t>(p), &e), e);
        return *this;
    }

    /// Sets the deadline to `timeout` from now.
    template <class Rep, class Period> Request &timeout(std::chrono::duration<Rep, Period> t) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
        accelpool_error *e = nullptr;
        detail::check(accelpool_request_set_timeout_ms(r_, ms < 0 ? 0 : uint64_t(ms), &e), e);
        return *this;
    }

    /// Restricts the request to one device group.
    Request &group(const std::string &name) {
        accelpool_error *e = nullptr;
        detail::check(accelpool_request_set_group(r_, name.c_str(), &e), e);
        return *this;
    }

    /// Sets the tenant the request is served for (tenant fairness).
    Request &tenant(const std::string &key) {
        accelpool_error *e = nullptr;
        detail::check(accelpool_request_set_tenant(r_, key.c_str(), &e), e);
        return *this;
    }

    /// Sets the affinity key: requests with the same key prefer the worker
    /// that last ran it.
    Request &affinity(uint64_t key) {
        accelpool_error *e = nullptr;
        detail::check(accelpool_request_set_affinity(r_, key, &e), e);
        return *this;
    }

    /// False once a submit took the request.
    bool valid() const noexcept { return r_ != nullptr; }

    /// The C object, for a submit (still owned by this Request).
    accelpool_request **get() noexcept { return &r_; }

private:
    accelpool_request *r_ = nullptr;
};

/// A running pool of workers.
class Pool {
public:
    /// Builds a pool from a YAML file whose groups all run OpenVINO.
    static Pool from_yaml_file(const std::string &path) {
        accelpool_pool *p = nullptr;
        accelpool_error *e = nullptr;
        detail::check(accelpool_pool_from_yaml_file(path.c_str(), &p, &e), e);
        return Pool(p);
    }

    /// Builds a pool from YAML text whose groups all run OpenVINO.
    static Pool from_yaml_string(const std::string &yaml) {
        accelpool_pool *p = nullptr;
        accelpool_error *e = nullptr;
        detail::check(accelpool_pool_from_yaml_str(yaml.c_str(), &p, &e), e);
        return Pool(p);
    }

    explicit Pool(accelpool_pool *p) noexcept : p_(p) {}
    Pool(Pool &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Pool &operator=(Pool &&o) noexcept {
        if (this != &o) {
            accelpool_pool_free(p_);
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    Pool(const Pool &) = delete;
    Pool &operator=(const Pool &) = delete;
    /// Shuts the pool down (queued requests get the drop timeout) and frees it.
    ~Pool() { accelpool_pool_free(p_); }

    /// Submits, waiting while the queues are full. Throws Refused (the
    /// request stays with the caller) when the pool cannot take it.
    Handle submit(Request &r) { return submit_with(r, &accelpool_pool_submit); }

    /// Submits without waiting: throws Refused with ACCELPOOL_CODE_FULL
    /// when the queues are full.
    Handle try_submit(Request &r) { return submit_with(r, &accelpool_pool_try_submit); }

    /// Submits, waiting at most `timeout` for room.
    template <class Rep, class Period>
    Handle submit_for(Request &r, std::chrono::duration<Rep, Period> timeout) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
        accelpool_handle *h = nullptr;
        accelpool_error *e = nullptr;
        detail::check(
            accelpool_pool_submit_timeout(p_, r.get(), ms < 0 ? 0 : uint64_t(ms), &h, &e), e);
        return Handle(h);
    }

    /// The request counters.
    accelpool_counts counts() const {
        accelpool_counts c{};
        accelpool_error *e = nullptr;
        detail::check(accelpool_pool_counts(p_, &c, &e), e);
        return c;
    }

    /// One latency's percentiles.
    accelpool_latency latency(accelpool_latency_kind which) const {
        accelpool_latency l{};
        accelpool_error *e = nullptr;
        detail::check(accelpool_pool_latency(p_, which, &l, &e), e);
        return l;
    }

    /// The full stats snapshot as JSON.
    std::string stats_json() const {
        char *s = nullptr;
        accelpool_error *e = nullptr;
        detail::check(accelpool_pool_stats_json(p_, &s, &e), e);
        return detail::take_string(s);
    }

    /// Letters in the dead-letter queue.
    size_t dead_letter_count() const {
        size_t n = 0;
        accelpool_error *e = nullptr;
        detail::check(accelpool_pool_dead_letter_count(p_, &n, &e), e);
        return n;
    }

    /// Removes every dead letter and returns them as a JSON array.
    std::string drain_dead_letters_json() {
        char *s = nullptr;
        accelpool_error *e = nullptr;
        detail::check(accelpool_pool_drain_dead_letters_json(p_, &s, &e), e);
        return detail::take_string(s);
    }

    /// Shuts down, waiting up to `timeout` for queued requests; returns the
    /// report as JSON.
    template <class Rep, class Period>
    std::string shutdown(std::chrono::duration<Rep, Period> timeout) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
        char *s = nullptr;
        accelpool_error *e = nullptr;
        detail::check(accelpool_pool_shutdown(p_, ms < 0 ? 0 : uint64_t(ms), &s, &e), e);
        return detail::take_string(s);
    }

    /// The C object (still owned by this Pool).
    const accelpool_pool *get() const noexcept { return p_; }

private:
    using SubmitFn = accelpool_code (*)(const accelpool_pool *, accelpool_request **,
                                        accelpool_handle **, accelpool_error **);
    Handle submit_with(Request &r, SubmitFn f) {
        accelpool_handle *h = nullptr;
        accelpool_error *e = nullptr;
        detail::check(f(p_, r.get(), &h, &e), e);
        return Handle(h);
    }

    accelpool_pool *p_;
};

/// A configuration whose groups without a backend get C sessions.
class Builder {
public:
    /// Reads YAML text.
    static Builder from_yaml_string(const std::string &yaml) {
        accelpool_builder *b = nullptr;
        accelpool_error *e = nullptr;
        detail::check(accelpool_builder_from_yaml_str(yaml.c_str(), &b, &e), e);
        return Builder(b);
    }

    /// Reads a YAML file.
    static Builder from_yaml_file(const std::string &path) {
        accelpool_builder *b = nullptr;
        accelpool_error *e = nullptr;
        detail::check(accelpool_builder_from_yaml_file(path.c_str(), &b, &e), e);
        return Builder(b);
    }

    Builder(Builder &&o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
    Builder &operator=(Builder &&o) noexcept {
        if (this != &o) {
            accelpool_builder_free(b_);
            b_ = std::exchange(o.b_, nullptr);
        }
        return *this;
    }
    Builder(const Builder &) = delete;
    Builder &operator=(const Builder &) = delete;
    ~Builder() { accelpool_builder_free(b_); }

    /// Gives group `group` sessions made by `vtable`.
    Builder &sessions(const std::string &group, const accelpool_session_vtable &vtable) {
        accelpool_error *e = nullptr;
        detail::check(accelpool_builder_set_sessions(b_, group.c_str(), &vtable, &e), e);
        return *this;
    }

    /// Builds the pool; the builder is used up either way.
    Pool build() {
        accelpool_pool *p = nullptr;
        accelpool_error *e = nullptr;
        detail::check(accelpool_builder_build(&b_, &p, &e), e);
        return Pool(p);
    }

private:
    explicit Builder(accelpool_builder *b) noexcept : b_(b) {}
    accelpool_builder *b_;
};

/// This library's version.
inline std::string version() { return accelpool_version(); }

/// The OpenVINO runtime's version, once a pool has loaded it.
inline std::optional<std::string> openvino_version() {
    const char *v = accelpool_openvino_version();
    if (!v) return std::nullopt;
    return std::string(v);
}

} // namespace accelpool

#endif // ACCELPOOL_HPP
