#!/usr/bin/env bash
# Runs every benchmark and writes the figures as JSON to bench-results/
# (one file per benchmark, and summary.json with all of them and the machine).
#
#   ./scripts/bench.sh --quick   # short runs: under two minutes once built
#   ./scripts/bench.sh           # full runs
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ "${1:-}" = "--quick" ]; then export ACCELPOOL_BENCH_QUICK=1; else export ACCELPOOL_BENCH_QUICK=0; fi
out=${ACCELPOOL_BENCH_OUT:-$PWD/bench-results}
export ACCELPOOL_BENCH_OUT=$out
mkdir -p "$out"
cargo bench --no-run --quiet
start=$(date +%s)
cargo bench --bench dispatch --bench throughput --bench priority_isolation --bench idle_cost --bench breaker_availability --bench inference --bench batching --bench deadline_admission --bench tenants --bench affinity
# The OCR pipeline end to end (its images are drawn with the tests' font).
./scripts/test-tools.sh
cargo bench -p accelpool-ocr --bench pipeline
# The remote group against the real test server (MLServer, installed into
# the venv) and MLServer's own Python client.
./scripts/setup.sh --server
cargo bench --features remote --bench remote
echo "benchmarks ran in $(( $(date +%s) - start )) s (quick=$ACCELPOOL_BENCH_QUICK)"
python3 - "$out" <<'PY'
import json, os, pathlib, platform, sys, time
out = pathlib.Path(sys.argv[1])
summary = {
    "machine": {
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor()),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
    },
    "quick": os.environ.get("ACCELPOOL_BENCH_QUICK") == "1",
    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
}
for name in ["dispatch", "throughput", "priority_isolation", "idle_cost", "breaker_availability", "inference", "batching", "deadline_admission", "tenants", "affinity", "ocr", "remote"]:
    f = out / f"{name}.json"
    summary[name] = json.loads(f.read_text()) if f.exists() else None
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print("summary written to", out / "summary.json")
PY
# The figures as SVG plots (bench-results/plots/).
cargo run --release --quiet --example bench_plots -- "$out"
