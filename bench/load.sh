#!/usr/bin/env bash
# Load test of the stamp issuer against its references, measured in one run (issue 6).
#
# Builds the release binary, starts the issuer on loopback with a fresh data directory pinned to
# one core (SERVER_CORE, default 0), drives it with wrk pinned to another (CLIENT_CORE, default 1),
# and prints one table: every figure next to the reference it is judged against (OpenSSL's sign
# rate, a trivial route on the same server, bare argon2id, the idle latency, the peer), as a ratio.
# Absolute figures depend on the machine; the ratios are what the targets are about.
#
# The machine is shared, so wall-clock rates say as much about the neighbours as about the
# issuer. Every throughput is therefore also counted per CPU-second of the server process
# (utime + stime from /proc/PID/stat over the run), which is how `openssl speed` and the argon2
# reference count too; the ratios use those. Wall-clock rates are printed next to them.
#
#   bench/load.sh            # stamp alone (about 3 minutes)
#   bench/load.sh --peer     # also node-oidc-provider 9, installed from npm into target/bench/peer
#
# Options: --duration S (seconds per measurement, default 10), --connections N (default 32).
# Only loopback traffic; every load loop is bounded by time (wrk -d) and by a request cap.
# The refresh grant is also measured on PostgreSQL when $PG_URL (default
# postgres://postgres@127.0.0.1:5432) answers: a scratch database is created and dropped.
# Installs wrk with apt-get if it is missing. The results table is also written to
# target/bench/results.md (under CARGO_TARGET_DIR if set).
set -euo pipefail

usage() {
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
  echo "load.sh: $*" >&2
  exit 1
}

PEER=0
DURATION=10
CONNS=32
while [ $# -gt 0 ]; do
  case "$1" in
    --peer) PEER=1 ;;
    --duration) DURATION=${2:?--duration needs a value}; shift ;;
    --connections) CONNS=${2:?--connections needs a value}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
# Caps on top of wrk's -d: no run sends more than this many requests per connection batch.
MAX_REQUESTS=${MAX_REQUESTS:-3000000}
WARMUP=2
SHORT=$(( DURATION / 2 > 3 ? DURATION / 2 : 3 ))
PASSWORD='correct horse battery staple'
CLIENT_ID=bench-svc
SCOPE=api.read
REFRESH_CONNS=8
LOGIN_CONNS=8
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT="$TARGET_DIR/bench"
mkdir -p "$OUT"
# The data directory is on disk under target/, never tmpfs: SQLite's fsync has to be real.
RUN=$(mktemp -d "$OUT/run.XXXXXX")
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${PG_DB:-}" ]; then
    psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
  fi
  if [ "${KEEP_RUN:-0}" = 1 ]; then echo "kept $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Tools

ensure_wrk() {
  command -v wrk >/dev/null && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  command -v apt-get >/dev/null || die "wrk is missing and apt-get is not available: install wrk"
  echo "installing wrk (apt-get)..." >&2
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" apt-get install -y -qq wrk >&2
  command -v wrk >/dev/null || die "could not install wrk"
}

for tool in taskset curl openssl awk getconf; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
ensure_wrk
CLK_TCK=$(getconf CLK_TCK)
[ "$(nproc --all)" -ge 2 ] || die "needs at least 2 cores (server and load generator apart)"

echo "building the release binary and the argon2 reference..." >&2
cargo build --release --quiet --bin stamp --example argon2_rate
BIN="$TARGET_DIR/release/stamp"
ARGON2_RATE="$TARGET_DIR/release/examples/argon2_rate"

# ---------------------------------------------------------------------------------------------
# Helpers

# wrk on the load-generator core. Usage: load NAME CONNECTIONS SECONDS URL [SCRIPT]; the output
# goes to $RUN/NAME.txt. Extra environment (BODY, TOKENS_FILE) is passed by the caller.
# The server's CPU time during the run goes to $RUN/NAME.cpu (clock ticks of TARGET_PID).
load() {
  local name=$1 conns=$2 seconds=$3 url=$4 script=${5:-$ROOT/bench/wrk/get.lua} before
  before=$(cpu_ticks "$TARGET_PID")
  MAX_REQUESTS=$MAX_REQUESTS taskset -c "$CLIENT_CORE" \
    wrk -t1 -c"$conns" -d"${seconds}s" --timeout 10s --latency -s "$script" "$url" \
    >"$RUN/$name.txt" 2>&1 || die "wrk failed: $(cat "$RUN/$name.txt")"
  echo $(( $(cpu_ticks "$TARGET_PID") - before )) >"$RUN/$name.cpu"
  check_errors "$name"
}

# utime + stime of a process, in clock ticks.
cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Completed requests per CPU-second of the server during run NAME.
per_cpu() {
  awk -v ticks="$(cat "$RUN/$1.cpu")" -v hz="$CLK_TCK" '/ requests in / {
    if (ticks > 0) printf "%.0f", $1 / (ticks / hz); else print "n/a"
  }' "$RUN/$1.txt"
}

# Share of one core the server got during run NAME (the rest went to neighbours or idled).
cpu_share() {
  awk -v ticks="$(cat "$RUN/$1.cpu")" -v hz="$CLK_TCK" '/ requests in / {
    secs = $4; sub(/s,?$/, "", secs)
    printf "%.0f%%", 100 * (ticks / hz) / secs
  }' "$RUN/$1.txt"
}

# Fails the run when wrk saw errors: a figure made of 400s would be meaningless.
check_errors() {
  local file="$RUN/$1.txt"
  if grep -q 'Non-2xx or 3xx responses' "$file"; then
    die "$1: non-2xx responses: $(cat "$file")"
  fi
  if grep -Eq 'Socket errors:.*(connect [1-9]|read [1-9]|write [1-9]|timeout [1-9])' "$file"; then
    echo "warning: $1: $(grep 'Socket errors' "$file")" >&2
  fi
}

# "N/cpu-s (W/s, S of a core)" for run NAME.
both() {
  echo "$(per_cpu "$1")/cpu-s ($(rps "$1")/s, $(cpu_share "$1") of a core)"
}

rps() {
  awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$RUN/$1.txt"
}

# 99th percentile latency of a wrk --latency run, in milliseconds.
p99_ms() {
  awk '$1 == "99%" {
    v = $2
    if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v) }
    else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
    printf "%.3f", v
  }' "$RUN/$1.txt"
}

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

percent() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "n/a" }'
}

# The unrounded ratio, for verdicts: a rounded figure must not turn 0.448 into a pass at 0.45.
exact() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.6f", a / b; else print "n/a" }'
}

# verdict VALUE OP LIMIT -> "met" / "NOT met"
verdict() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    if (v == "n/a" || v == "") { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 <= l + 0)
    print ok ? "met" : "NOT met"
  }'
}

rss_mib() {
  awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# Samples the resident memory of PID every 0.2 s for SECONDS; prints the peak in MiB.
peak_rss_mib() {
  local pid=$1 seconds=$2 peak=0 now i
  for ((i = 0; i < seconds * 5; i++)); do
    now=$(rss_mib "$pid" 2>/dev/null || echo 0)
    peak=$(awk -v a="$peak" -v b="$now" 'BEGIN { print (b > a) ? b : a }')
    sleep 0.2
  done
  echo "$peak"
}

wait_http() {
  local url=$1 i
  for ((i = 0; i < 300; i++)); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  die "server at $url did not come up"
}

# The issuer's settings for one instance: Usage: stamp_env DIR ALG PORT (sets STAMP_ENV).
stamp_env() {
  STAMP_ENV=(
    ROCKET_CONFIG="$ROOT/Rocket.toml"
    ROCKET_PROFILE=release
    ROCKET_ADDRESS=127.0.0.1
    ROCKET_PORT="$3"
    ROCKET_ISSUER="http://127.0.0.1:$3"
    ROCKET_SIGNING_ALG="$2"
    ROCKET_KEYS_DIR="$1/keys"
    ROCKET_DATABASE_URL="${DATABASE_URL_OVERRIDE:-sqlite://$1/stamp.db}"
    ROCKET_LOG_LEVEL=critical
    ROCKET_CLI_COLORS=false
  )
}

# Starts an issuer with a fresh data directory, a user and a service client.
# Usage: start_stamp NAME ALG PORT. Sets SERVER_PID and CLIENT_SECRET.
start_stamp() {
  local dir="$RUN/$1"
  mkdir -p "$dir"
  stamp_env "$dir" "$2" "$3"
  # `stamp init` creates the deployment (other commands refuse a missing one); users and
  # clients next, before the server: two processes migrating one fresh SQLite file would race.
  env "${STAMP_ENV[@]}" "$BIN" init >"$dir/cli.log" 2>&1 || die "init failed: $(cat "$dir/cli.log")"
  printf '%s\n' "$PASSWORD" | env "${STAMP_ENV[@]}" "$BIN" users add bench --password-stdin \
    >>"$dir/cli.log" 2>&1 || die "users add failed: $(cat "$dir/cli.log")"
  CLIENT_SECRET=$(env "${STAMP_ENV[@]}" "$BIN" clients add "$CLIENT_ID" --scope "$SCOPE" \
    2>>"$dir/cli.log") || die "clients add failed: $(cat "$dir/cli.log")"
  taskset -c "$SERVER_CORE" env "${STAMP_ENV[@]}" "$BIN" serve >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  TARGET_PID=$SERVER_PID
  PIDS+=("$SERVER_PID")
  wait_http "http://127.0.0.1:$3/health/ready"
}

stop_server() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

cc_body() {
  echo "grant_type=client_credentials&client_id=$CLIENT_ID&client_secret=$1&scope=$SCOPE"
}

login_body() {
  echo "grant_type=password&username=bench&password=${PASSWORD// /+}"
}

# Checks one token response by hand before measuring: an access token signed with ALG.
# Usage: check_token URL BODY ALG
check_token() {
  local response header
  response=$(curl -fsS -d "$2" "$1") || die "token request to $1 failed"
  header=$(printf '%s' "$response" | sed -n 's/.*"access_token":"\([^".]*\)\..*/\1/p')
  [ -n "$header" ] || die "no access token from $1: $response"
  # base64url -> base64, padded.
  header=$(printf '%s' "$header" | tr '_-' '/+')
  while [ $(( ${#header} % 4 )) -ne 0 ]; do header="$header="; done
  printf '%s' "$header" | base64 -d 2>/dev/null | grep -q "\"alg\":\"$3\"" \
    || die "token from $1 is not $3"
}

# ---------------------------------------------------------------------------------------------
# References: OpenSSL's signing limit and bare argon2id, on the server's core.

echo "openssl speed (one core)..." >&2
taskset -c "$SERVER_CORE" openssl speed -seconds "$SHORT" ecdsap256 rsa2048 >"$RUN/openssl.txt" 2>/dev/null
OPENSSL_ES256=$(awk '/ecdsa \(nistp256\)/ { printf "%.0f", $(NF-1) }' "$RUN/openssl.txt")
OPENSSL_RS256=$(awk '/^rsa 2048 bits/ { printf "%.0f", $(NF-1) }' "$RUN/openssl.txt")
if [ -z "$OPENSSL_ES256" ] || [ -z "$OPENSSL_RS256" ]; then
  die "could not read openssl speed: $(cat "$RUN/openssl.txt")"
fi

# Bare argon2id verifications on the server's core, one thread; run NAME. Prints the rate per
# CPU-second; the wall-clock rate is in $RUN/NAME.txt. Run right before and right after the
# login flood (argon2 is memory-bound, so the neighbours' load moves it a lot).
argon2_reference() {
  TIMEFORMAT='%3U %3S'
  { time taskset -c "$SERVER_CORE" "$ARGON2_RATE" --seconds "$SHORT" --threads 1 >"$RUN/$1.txt"; } 2>"$RUN/$1.time"
  awk -v n="$(awk '/^verifications:/ { print $2 }' "$RUN/$1.txt")" \
    '{ printf "%.1f", n / ($1 + $2) }' "$RUN/$1.time"
}

# ---------------------------------------------------------------------------------------------
# ES256 issuer: client_credentials, JWKS vs a trivial route, logins, memory, refresh.

PORT=18700
URL="http://127.0.0.1:$PORT"
echo "ES256 issuer..." >&2
start_stamp es256 ES256 "$PORT"
ES_PID=$SERVER_PID
ES_SECRET=$CLIENT_SECRET
sleep 1
RSS_IDLE=$(rss_mib "$ES_PID")

check_token "$URL/oauth/token" "$(cc_body "$ES_SECRET")" ES256
BODY=$(cc_body "$ES_SECRET") load warm-es256 "$CONNS" "$WARMUP" "$URL/oauth/token" "$ROOT/bench/wrk/post.lua"
BODY=$(cc_body "$ES_SECRET") load cc-es256 "$CONNS" "$DURATION" "$URL/oauth/token" "$ROOT/bench/wrk/post.lua"

# JWKS and the trivial route alternate, twice, and each keeps its best round: both see the same
# neighbours.
load warm-jwks "$CONNS" "$WARMUP" "$URL/.well-known/jwks.json"
best() {
  awk -v a="$1" -v b="$2" 'BEGIN { print (b + 0 > a + 0) ? b : a }'
}
JWKS=0 JWKS_WALL=0 LIVE=0 LIVE_WALL=0
for round in 1 2; do
  load "live-$round" "$CONNS" "$SHORT" "$URL/health/live"
  load "jwks-$round" "$CONNS" "$SHORT" "$URL/.well-known/jwks.json"
  LIVE=$(best "$LIVE" "$(per_cpu "live-$round")")
  JWKS=$(best "$JWKS" "$(per_cpu "jwks-$round")")
  LIVE_WALL=$(best "$LIVE_WALL" "$(rps "live-$round")")
  JWKS_WALL=$(best "$JWKS_WALL" "$(rps "jwks-$round")")
done

# Latency: one connection, closed loop; idle first, then under a login flood.
load jwks-idle 1 "$SHORT" "$URL/.well-known/jwks.json"
P99_IDLE=$(p99_ms jwks-idle)

echo "login flood..." >&2
ARGON2_BEFORE=$(argon2_reference argon2-before)
BODY=$(login_body) load warm-login "$LOGIN_CONNS" "$WARMUP" "$URL/oauth/token" "$ROOT/bench/wrk/post.lua"
BODY=$(login_body) load login "$LOGIN_CONNS" "$DURATION" "$URL/oauth/token" "$ROOT/bench/wrk/post.lua" &
FLOOD=$!
RSS_FLOOD=$(peak_rss_mib "$ES_PID" "$(( DURATION - 1 ))")
wait "$FLOOD" || die "login flood failed"
RSS_AFTER=$(rss_mib "$ES_PID")
# The bound the issuer promises: idle, plus one reused 19 MiB argon2 work area per permit
# (password_concurrency defaults to the cores the issuer may run on), plus 16 MiB of slack.
ARGON2_AREAS=$(taskset -c "$SERVER_CORE" nproc)
RSS_BOUND=$(awk -v idle="$RSS_IDLE" -v n="$ARGON2_AREAS" 'BEGIN { printf "%.1f", idle + 19 * n + 16 }')
ARGON2_AFTER=$(argon2_reference argon2-after)
ARGON2=$(awk -v a="$ARGON2_BEFORE" -v b="$ARGON2_AFTER" 'BEGIN { printf "%.1f", (a + b) / 2 }')

BODY=$(login_body) load login-bg "$LOGIN_CONNS" "$(( SHORT + 3 ))" "$URL/oauth/token" "$ROOT/bench/wrk/post.lua" &
FLOOD=$!
sleep 2
load jwks-flood 1 "$SHORT" "$URL/.well-known/jwks.json"
wait "$FLOOD" || die "login flood failed"
P99_FLOOD=$(p99_ms jwks-flood)

echo "refresh grant (SQLite)..." >&2
refresh_run() {
  local name=$1 url=$2 i token
  : >"$RUN/$name-tokens"
  # wrk calls request() once more than it has connections before it starts: two spare tokens.
  for ((i = 0; i < REFRESH_CONNS + 2; i++)); do
    curl -sS -d "$(login_body)" "$url/oauth/token" >"$RUN/$name-login.json" || true
    # (The response has no final newline, and sed would keep it that way.)
    token=$(sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p' "$RUN/$name-login.json")
    [ -z "$token" ] || printf '%s\n' "$token" >>"$RUN/$name-tokens"
  done
  if [ "$(grep -c . "$RUN/$name-tokens")" -ne $(( REFRESH_CONNS + 2 )) ]; then
    die "logins for the $name run failed: $(cat "$RUN/$name-login.json")"
  fi
  TOKENS_FILE="$RUN/$name-tokens" load "$name" "$REFRESH_CONNS" "$DURATION" "$url/oauth/token" "$ROOT/bench/wrk/refresh.lua"
}
refresh_run refresh "$URL"
stop_server "$ES_PID"

# The same on PostgreSQL, if one answers at $PG_URL. Its server is not pinned: only the issuer's
# CPU is counted.
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PG_ROW="not measured: no PostgreSQL at $PG_URL | - | - | reported | NOT met"
if command -v psql >/dev/null && psql -q "$PG_URL/postgres" -c 'SELECT 1' >/dev/null 2>&1; then
  echo "refresh grant (PostgreSQL)..." >&2
  PG_DB="stamp_bench_$$"
  psql -q "$PG_URL/postgres" -c "CREATE DATABASE $PG_DB" >/dev/null
  DATABASE_URL_OVERRIDE="$PG_URL/$PG_DB" start_stamp pg ES256 18703
  refresh_run refresh-pg "http://127.0.0.1:18703"
  stop_server "$SERVER_PID"
  PG_ROW="$(both refresh-pg) | - | - | reported | reported"
fi

# ---------------------------------------------------------------------------------------------
# RS256 issuer: a separate instance configured with ROCKET_SIGNING_ALG=RS256.

echo "RS256 issuer..." >&2
PORT=18701
URL="http://127.0.0.1:$PORT"
start_stamp rs256 RS256 "$PORT"
RS_PID=$SERVER_PID
check_token "$URL/oauth/token" "$(cc_body "$CLIENT_SECRET")" RS256
BODY=$(cc_body "$CLIENT_SECRET") load warm-rs256 "$CONNS" "$WARMUP" "$URL/oauth/token" "$ROOT/bench/wrk/post.lua"
BODY=$(cc_body "$CLIENT_SECRET") load cc-rs256 "$CONNS" "$DURATION" "$URL/oauth/token" "$ROOT/bench/wrk/post.lua"
stop_server "$RS_PID"

# ---------------------------------------------------------------------------------------------
# The peer: node-oidc-provider 9, same client, scope, algorithm, audience and lifetime.

if [ "$PEER" -eq 1 ]; then
  echo "peer: node-oidc-provider..." >&2
  for tool in node npm; do
    command -v "$tool" >/dev/null || die "--peer needs $tool"
  done
  PEER_DIR="$OUT/peer"
  mkdir -p "$PEER_DIR"
  if [ ! -f "$PEER_DIR/node_modules/oidc-provider/package.json" ]; then
    [ -f "$PEER_DIR/package.json" ] || echo '{"private":true,"type":"module"}' >"$PEER_DIR/package.json"
    (cd "$PEER_DIR" && npm install --no-audit --no-fund --silent oidc-provider@9 >&2)
  fi
  PEER_VERSION=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$PEER_DIR/node_modules/oidc-provider/package.json")
  cp "$ROOT/bench/peer/server.mjs" "$PEER_DIR/server.mjs"
  PORT=18702
  URL="http://127.0.0.1:$PORT"
  (cd "$PEER_DIR" && exec taskset -c "$SERVER_CORE" env NODE_ENV=production \
    node server.mjs "$PORT" "$CLIENT_ID" "$ES_SECRET" "$SCOPE" >"$RUN/peer.log" 2>&1) &
  PEER_PID=$!
  TARGET_PID=$PEER_PID
  PIDS+=("$PEER_PID")
  wait_http "$URL/jwks"
  sleep 1
  PEER_RSS=$(rss_mib "$PEER_PID")
  check_token "$URL/token" "$(cc_body "$ES_SECRET")" ES256
  BODY=$(cc_body "$ES_SECRET") load peer-warm "$CONNS" "$WARMUP" "$URL/token" "$ROOT/bench/wrk/post.lua"
  BODY=$(cc_body "$ES_SECRET") load peer-cc "$CONNS" "$DURATION" "$URL/token" "$ROOT/bench/wrk/post.lua"
  load peer-jwks "$CONNS" "$SHORT" "$URL/jwks"
  stop_server "$PEER_PID"
fi

# ---------------------------------------------------------------------------------------------
# The table. "N/cpu-s (W/s)": N completed per CPU-second of the server, W per wall second.


CC_ES256=$(per_cpu cc-es256)
CC_RS256=$(per_cpu cc-rs256)
LOGINS=$(per_cpu login)
P99_RATIO=$(ratio "$P99_FLOOD" "$P99_IDLE")
PEER_ROW_CC="- | peer: not run (--peer) | - | >= 4x | n/a"
PEER_ROW_JWKS="- | peer: not run (--peer) | - | >= 2x | n/a"
PEER_RSS=${PEER_RSS:-n/a}
if [ "$PEER" -eq 1 ]; then
  PEER_CC=$(per_cpu peer-cc)
  PEER_JWKS=$(per_cpu peer-jwks)
  PEER_ROW_CC="$(both cc-es256) | peer: $(both peer-cc) | $(ratio "$CC_ES256" "$PEER_CC")x | >= 4x | $(verdict "$(exact "$CC_ES256" "$PEER_CC")" ">=" 4)"
  PEER_ROW_JWKS="${JWKS}/cpu-s (${JWKS_WALL}/s) | peer: $(both peer-jwks) | $(ratio "$JWKS" "$PEER_JWKS")x | >= 2x | $(verdict "$(exact "$JWKS" "$PEER_JWKS")" ">=" 2)"
fi

{
  echo "## stamp load test, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc --all) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
    "shared; issuer on core $SERVER_CORE, wrk (1 thread) on core $CLIENT_CORE;" \
    "$(awk '{ printf "load average %s %s %s", $1, $2, $3 }' /proc/loadavg) at the end."
  echo "Each measurement ${DURATION} s (references and alternating pairs ${SHORT} s), ${CONNS} connections" \
    "(logins ${LOGIN_CONNS}, refresh ${REFRESH_CONNS}, latency 1)." \
    "Peer: $([ "$PEER" -eq 1 ] && echo "oidc-provider $PEER_VERSION on node $(node --version)" || echo "not run (use --peer)")."
  echo "Throughput: per CPU-second of the server (the ratios use these), then per wall second and the"
  echo "share of its core the server got. OpenSSL and argon2 references are per CPU-second too."
  echo
  echo "| what | stamp | reference | ratio | target | verdict |"
  echo "| --- | --- | --- | --- | --- | --- |"
  echo "| ES256 client_credentials tokens | $(both cc-es256) | OpenSSL ES256 signs: ${OPENSSL_ES256}/cpu-s | $(percent "$CC_ES256" "$OPENSSL_ES256") | >= 45% | $(verdict "$(exact "$CC_ES256" "$OPENSSL_ES256")" ">=" 0.45) |"
  echo "| ES256 client_credentials tokens | $PEER_ROW_CC |"
  echo "| RS256 client_credentials tokens | $(both cc-rs256) | OpenSSL RS256 signs: ${OPENSSL_RS256}/cpu-s | $(percent "$CC_RS256" "$OPENSSL_RS256") | >= 80% | $(verdict "$(exact "$CC_RS256" "$OPENSSL_RS256")" ">=" 0.80) |"
  echo "| JWKS requests (best of 2) | ${JWKS}/cpu-s (${JWKS_WALL}/s) | GET /health/live: ${LIVE}/cpu-s (${LIVE_WALL}/s) | $(percent "$JWKS" "$LIVE") | >= 90% | $(verdict "$(exact "$JWKS" "$LIVE")" ">=" 0.90) |"
  echo "| JWKS requests | $PEER_ROW_JWKS |"
  echo "| refresh grants, SQLite (WAL, synchronous=FULL, ${REFRESH_CONNS} connections) | $(both refresh) | - | - | reported | reported |"
  echo "| refresh grants, PostgreSQL (${REFRESH_CONNS} connections, server unpinned) | $PG_ROW |"
  echo "| password logins (argon2id 19 MiB, t=2, p=1) | $(both login) | bare argon2id verifications, same core, 1 thread: ${ARGON2}/cpu-s (before ${ARGON2_BEFORE}, after ${ARGON2_AFTER}) | $(percent "$LOGINS" "$ARGON2") | >= 90% | $(verdict "$(exact "$LOGINS" "$ARGON2")" ">=" 0.90) |"
  echo "| JWKS p99 latency, 1 connection, during the login flood | ${P99_FLOOD} ms | idle: ${P99_IDLE} ms | ${P99_RATIO}x | <= 3x | $(verdict "$P99_RATIO" "<=" 3) |"
  echo "| resident memory idle | ${RSS_IDLE} MiB | peer idle: ${PEER_RSS} MiB | - | < 32 MiB | $(verdict "$RSS_IDLE" "<=" 32) |"
  echo "| resident memory during the login flood, peak / after | ${RSS_FLOOD} / ${RSS_AFTER} MiB | idle: ${RSS_IDLE} MiB | $(ratio "$RSS_FLOOD" "$RSS_IDLE")x | idle + ${ARGON2_AREAS} x 19 MiB work area + 16 MiB | $(verdict "$RSS_FLOOD" "<=" "$RSS_BOUND") |"
} | tee "$OUT/results.md"
