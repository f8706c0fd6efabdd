// Batch inference on a real model through accelpool's C++ wrapper: the same
// job as examples/batch_infer.rs and examples/c/batch_infer.c, with RAII
// types and exceptions. Deterministic synthetic text-line images go to the
// PP-OCR direction classifier from several submitting threads at a mix of
// priorities; it prints throughput, latency p50/p99 and the accounting line.
//
// Build and run (from the project root, after ./scripts/setup.sh):
//     ./scripts/capi.sh build && target/capi/batch_infer_cpp
#include "accelpool.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t H = 48, W = 192, PIXELS = 3 * H * W;

struct Options {
    std::string model = "models/ppocr/cls.onnx";
    std::string device = "CPU";
    std::string classes;
    long workers = 2, requests = 2000, threads = 4, capacity = 64;
};

// The same synthetic image as the Rust and C examples.
std::vector<float> text_line(size_t seed) {
    std::vector<float> img(PIXELS);
    for (size_t i = 0; i < PIXELS; i++) {
        size_t y = (i / W) % H, x = i % W;
        bool stroke = (x + seed * 7) % 13 < 3 && y > H / 4 && y < 3 * H / 4;
        float pixel = stroke ? 30.0f : 220.0f + float((x * 31 + y * 17 + seed) % 20);
        img[i] = (pixel / 255.0f - 0.5f) / 0.5f;
    }
    return img;
}

// The priority mix urgent=1, high=2, normal=5, low=2 (Knuth's hash).
accelpool::Priority priority_of(long i) {
    using P = accelpool::Priority;
    static const P levels[4] = {P::Urgent, P::High, P::Normal, P::Low};
    static const uint32_t weights[4] = {1, 2, 5, 2};
    uint32_t pick = (uint32_t(i) * 2654435761u) % 10u;
    for (int l = 0; l < 4; l++) {
        if (pick < weights[l]) return levels[l];
        pick -= weights[l];
    }
    return P::Normal;
}

bool parse(int argc, char **argv, Options &o) {
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--model") o.model = v;
        else if (k == "--device") o.device = v;
        else if (k == "--classes") o.classes = v;
        else {
            long n = std::strtol(v.c_str(), nullptr, 10);
            if (n <= 0) {
                std::cerr << "error: " << k << " needs a positive number, not `" << v << "`\n";
                return false;
            }
            if (k == "--workers") o.workers = n;
            else if (k == "--requests") o.requests = n;
            else if (k == "--threads") o.threads = n;
            else if (k == "--capacity") o.capacity = n;
            else {
                std::cerr << "error: unknown option " << k << "\n";
                return false;
            }
        }
    }
    return argc % 2 == 1;
}

} // namespace

int main(int argc, char **argv) try {
    Options opt;
    if (!parse(argc, argv, opt)) {
        std::cerr << "usage: " << argv[0]
                  << " [--model FILE] [--device NAME] [--workers N] [--requests N]"
                     " [--threads N] [--capacity N] [--classes FILE]\n";
        return 2;
    }
    std::string cap = std::to_string(opt.capacity), workers = std::to_string(opt.workers);
    accelpool::Pool pool = accelpool::Pool::from_yaml_string(
        "groups:\n"
        "  - name: cpu\n"
        "    workers: " + workers + "\n"
        "    warmup: 2\n"
        "    capacity: { urgent: " + cap + ", high: " + cap + ", normal: " + cap +
        ", low: " + cap + " }\n"
        "    backend:\n"
        "      openvino:\n"
        "        model: \"" + opt.model + "\"\n"
        "        device: \"" + opt.device + "\"\n"
        "        reshape: { x: [1, 3, 48, 192] }\n"
        "        performance_hint: throughput\n"
        "        streams: " + workers + "\n");

    std::vector<std::vector<float>> inputs(size_t(opt.requests));
    for (long i = 0; i < opt.requests; i++) inputs[size_t(i)] = text_line(size_t(i));
    std::vector<int> classes(size_t(opt.requests), -1);
    std::vector<float> probs(size_t(opt.requests) * 2, 0.0f);
    std::atomic<long> refused{0}, failed{0};

    auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (long t = 0; t < opt.threads; t++) {
        threads.emplace_back([&, t] {
            std::deque<std::pair<long, accelpool::Handle>> pending;
            auto finish = [&] {
                auto [i, h] = std::move(pending.front());
                pending.pop_front();
                try {
                    accelpool::Result r = h.wait();
                    auto [p, end] = r.output(0).as<float>();
                    if (end - p == 2) {
                        classes[size_t(i)] = p[1] > p[0];
                        probs[2 * size_t(i)] = p[0];
                        probs[2 * size_t(i) + 1] = p[1];
                    }
                } catch (const accelpool::Error &e) {
                    std::cerr << "request " << i << ": " << e.what() << "\n";
                    failed++;
                }
            };
            for (long i = t; i < opt.requests; i += opt.threads) {
                accelpool::Request req;
                req.add_tensor("x", {1, 3, H, W}, inputs[size_t(i)]).priority(priority_of(i));
                if (long(pending.size()) == opt.capacity) finish();
                try {
                    pending.emplace_back(i, pool.submit(req));
                } catch (const accelpool::Refused &e) {
                    std::cerr << "refused: " << e.what() << "\n";
                    refused++;
                }
            }
            while (!pending.empty()) finish();
        });
    }
    for (auto &th : threads) th.join();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

    pool.shutdown(std::chrono::seconds(30));
    accelpool_counts c = pool.counts();
    accelpool_latency e2e = pool.latency(ACCELPOOL_LATENCY_KIND_END_TO_END);
    long angles[2] = {0, 0};
    for (int k : classes)
        if (k >= 0) angles[k]++;

    std::printf("accelpool batch inference (C++ wrapper %s, OpenVINO %s)\n",
                accelpool::version().c_str(),
                accelpool::openvino_version().value_or("not loaded").c_str());
    std::printf("  model     %s\n", opt.model.c_str());
    std::printf("  device    %s (%ld workers, %ld submitting threads)\n", opt.device.c_str(),
                opt.workers, opt.threads);
    std::printf("+-----------------------+--------------+\n");
    std::printf("| %-21s | %12ld |\n", "requests", opt.requests);
    std::printf("| %-21s | %12llu |\n", "completed", (unsigned long long)c.completed);
    std::printf("| %-21s | %12llu |\n", "dead-lettered", (unsigned long long)c.dead_lettered);
    std::printf("| %-21s | %12ld |\n", "refused at submit", refused.load());
    std::printf("| %-21s | %12.1f |\n", "throughput (req/s)", double(c.completed) / wall);
    std::printf("| %-21s | %12.3f |\n", "latency p50 (ms)", e2e.p50_us / 1e3);
    std::printf("| %-21s | %12.3f |\n", "latency p99 (ms)", e2e.p99_us / 1e3);
    std::printf("+-----------------------+--------------+\n");
    std::printf("  predicted angle 0 / 180: %ld / %ld\n", angles[0], angles[1]);
    std::printf("  accounting: accepted %llu = completed %llu + dead-lettered %llu + cancelled "
                "%llu + expired %llu\n",
                (unsigned long long)c.accepted, (unsigned long long)c.completed,
                (unsigned long long)c.dead_lettered, (unsigned long long)c.cancelled,
                (unsigned long long)c.expired);
    if (!opt.classes.empty()) {
        std::ofstream f(opt.classes);
        char line[96];
        for (long i = 0; i < opt.requests; i++) {
            std::snprintf(line, sizeof line, "%ld %d %.6f %.6f\n", i, classes[size_t(i)],
                          double(probs[2 * size_t(i)]), double(probs[2 * size_t(i) + 1]));
            f << line;
        }
    }
    bool balanced = c.accepted == c.completed + c.dead_lettered + c.cancelled + c.expired;
    return balanced && failed == 0 ? 0 : 1;
} catch (const accelpool::Error &e) {
    std::cerr << "error: " << e.what() << " (" << e.code_name() << ")\n";
    return 1;
}
