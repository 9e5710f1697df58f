#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `fuzz/run.sh SECONDS [TARGET...]` (default 10 s
# each, all targets). Needs the nightly toolchain and cargo-fuzz. The committed seeds/<target>/
# are copied into corpus/<target>/ (not committed), which grows across runs. A crash stops the
# script with libFuzzer's reproducer under artifacts/<target>/; turn it into a regression test
# (tests/api/hostile.rs or the unit tests of the code at fault) before fixing.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(jwt_verify jwks_parse token_form refresh_token manifest_load)
fi
# No sanitizer: the crates forbid `unsafe` (what ASan would find is in C dependencies, which
# their own projects fuzz); debug assertions on, so integer overflows are crashes too.
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target" logs
  cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
  echo "== fuzz $target for ${seconds}s"
  log="logs/$target.log"
  if ! cargo +nightly fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target failed: reproducer in fuzz/artifacts/$target/"; exit 1
  fi
  # The summary: executions, coverage (cov: edges, ft: features) and corpus size at the end.
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"
done
