#!/usr/bin/env bash
# The C API: build the library and compile the C and C++ programs against it
# with the system compilers, check the generated header, and compare the C
# path with the Rust path.
#
#   ./scripts/capi.sh build            libaccelpool_c (release) + examples in target/capi/
#   ./scripts/capi.sh compile LIBDIR OUTDIR [--sanitize]
#                                      compile examples/c, examples/cpp and the C tests
#                                      in capi/tests/c against LIBDIR/libaccelpool_c.a
#   ./scripts/capi.sh header [--check] regenerate include/accelpool.h with cbindgen
#                                      (--check: fail if the committed one differs)
#   ./scripts/capi.sh valgrind         the C example on the real model under valgrind:
#                                      no error, no leak (capi/tests/valgrind.supp)
#   ./scripts/capi.sh bench            C batch example against the Rust one, same run
set -euo pipefail
cd "$(dirname "$0")/.."

# What a Rust static library needs from the system (rustc --print native-static-libs).
NATIVE_LIBS=(-ldl -lgcc_s -lutil -lrt -lpthread -lm -lc)
WARNINGS=(-Wall -Wextra -Werror)
CC=${CC:-cc}
CXX=${CXX:-c++}

compile() {
  local libdir=$1 out=$2 sanitize=${3:-}
  local lib="$libdir/libaccelpool_c.a" flags=(-O2 -g -Iinclude)
  [[ -f $lib ]] || { echo "capi: $lib not found; build the library first (cargo build -p accelpool-capi)" >&2; exit 1; }
  if [[ $sanitize == --sanitize ]]; then
    flags=(-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -Iinclude)
  fi
  mkdir -p "$out"
  "$CC" -std=c11 "${WARNINGS[@]}" "${flags[@]}" examples/c/batch_infer.c "$lib" "${NATIVE_LIBS[@]}" -o "$out/batch_infer_c"
  "$CXX" -std=c++17 "${WARNINGS[@]}" "${flags[@]}" examples/cpp/batch_infer.cpp "$lib" "${NATIVE_LIBS[@]}" -o "$out/batch_infer_cpp"
  for t in capi/tests/c/*.c capi/benches/*.c; do
    "$CC" -std=c11 "${WARNINGS[@]}" "${flags[@]}" "$t" "$lib" "${NATIVE_LIBS[@]}" -o "$out/$(basename "$t" .c)"
  done
  for t in capi/tests/c/*.cpp; do
    [[ -e $t ]] || continue
    "$CXX" -std=c++17 "${WARNINGS[@]}" "${flags[@]}" "$t" "$lib" "${NATIVE_LIBS[@]}" -o "$out/$(basename "$t" .cpp)"
  done
}

case ${1:-} in
  build)
    cargo build --release -p accelpool-capi
    compile target/release target/capi
    echo "capi: built target/release/libaccelpool_c.{so,a}; programs in target/capi/" >&2
    ;;
  compile)
    [[ $# -ge 3 ]] || { echo "usage: $0 compile LIBDIR OUTDIR [--sanitize]" >&2; exit 2; }
    compile "$2" "$3" "${4:-}"
    ;;
  header)
    ./scripts/dev-tools.sh
    out=include/accelpool.h
    [[ ${2:-} == --check ]] && out=$(mktemp)
    cbindgen --quiet --config capi/cbindgen.toml --crate accelpool-capi --output "$out" capi
    if [[ ${2:-} == --check ]]; then
      if ! diff -u include/accelpool.h "$out"; then
        echo "capi: include/accelpool.h is out of date; run ./scripts/capi.sh header and commit it" >&2
        exit 1
      fi
      echo "capi: include/accelpool.h is up to date" >&2
    fi
    ;;
  valgrind)
    # AddressSanitizer cannot load OpenVINO (its threading library is opened
    # with RTLD_DEEPBIND), so the example on the real model runs here. The
    # suppressions cover the loader and the OpenVINO binding's own leaks,
    # each explained in the file.
    ./scripts/setup.sh >/dev/null
    cargo build --quiet -p accelpool-capi
    out=target/debug/capi-valgrind
    compile target/debug "$out"
    log=$(mktemp)
    valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
      --show-leak-kinds=definite,indirect --num-callers=60 \
      --suppressions=capi/tests/valgrind.supp \
      "$out/batch_infer_c" --requests 8 --workers 1 --threads 2 2>"$log" | grep accounting
    grep -E 'ERROR SUMMARY|definitely lost|indirectly lost' "$log" >&2
    grep -q 'ERROR SUMMARY: 0 errors' "$log"
    echo "capi: valgrind found no error and no leak" >&2
    ;;
  bench)
    ./scripts/setup.sh >/dev/null
    "$0" build >/dev/null
    cargo build --release --example batch_infer -q
    cargo bench -p accelpool-capi --bench c_overhead
    ;;
  *)
    sed -n '2,14p' "$0" >&2
    exit 2
    ;;
esac
