#!/usr/bin/env bash
# What observability costs the hot path when nobody looks: the dispatch and
# throughput benchmarks built twice, without metrics and request spans
# (`--no-default-features --features openvino`) and with both compiled in
# (`--features request-spans`, metrics on by default) but no tracing
# subscriber installed and no scrape, run alternately in the same session.
# Writes bench-results/observability.json with the median ratios.
#
#   ./scripts/bench-observability.sh [ROUNDS]   # default 3 rounds
#   ./scripts/bench-observability.sh --report N # summarise N earlier rounds
set -euo pipefail
cd "$(dirname "$0")/.."
report_only=false
if [ "${1:-}" = --report ]; then report_only=true; shift; fi
rounds=${1:-3}
out=${ACCELPOOL_BENCH_OUT:-$PWD/bench-results}
if ! $report_only; then
plain_dir=target/bench-plain
cargo bench --no-run --quiet --bench dispatch --bench throughput \
  --no-default-features --features openvino --target-dir "$plain_dir"
cargo bench --no-run --quiet --bench dispatch --bench throughput --features request-spans
run() { # FEATURES-ARGS... -- OUT
  local dest=${*: -1}
  ACCELPOOL_BENCH_OUT=$dest cargo bench --quiet "${@:1:$#-1}" --bench dispatch --bench throughput >/dev/null
}
for r in $(seq "$rounds"); do
  run --no-default-features --features openvino --target-dir "$plain_dir" "$out/observability/plain-$r"
  run --features request-spans "$out/observability/full-$r"
done
fi
python3 - "$out" "$rounds" <<'PY'
import json, pathlib, statistics, sys
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def read(kind, r, name):
    return json.loads((out / "observability" / f"{kind}-{r}" / f"{name}.json").read_text())
rows = {}
for r in range(1, rounds + 1):
    p, f = read("plain", r, "dispatch"), read("full", r, "dispatch")
    tp, tf = read("plain", r, "throughput"), read("full", r, "throughput")
    rows.setdefault("hot_p50", []).append(f["pool_hot"]["p50_ns"] / p["pool_hot"]["p50_ns"])
    rows.setdefault("cold_p50", []).append(f["pool_cold"]["p50_ns"] / p["pool_cold"]["p50_ns"])
    rows.setdefault("throughput", []).append(tf["pool_requests_per_s"] / tp["pool_requests_per_s"])
    # Each build against the raw channel measured in its own run: noise of
    # the moment cancels out.
    rows.setdefault("hot_p50_vs_channel", []).append(
        f["ratio_hot_p50_vs_channel"] / p["ratio_hot_p50_vs_channel"])
    rows.setdefault("throughput_vs_rayon", []).append(
        tf["ratio_pool_vs_rayon"] / tp["ratio_pool_vs_rayon"])
result = {k: {"median": round(statistics.median(v), 3), "runs": [round(x, 3) for x in v]}
          for k, v in rows.items()}
result["rounds"] = rounds
result["meaning"] = "with metrics and request spans compiled in (no subscriber, no scrape) / without; goal within 1.03 (throughput: at least 0.97)"
(out / "observability.json").write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
PY
