#!/usr/bin/env bash
# End-to-end load test of POST /wechat/callback beside its baselines, all driven by wrk with
# the same settings on the same machine: an axum hello world, and the durable-intake baseline
# (examples/durable.rs: axum, one SQLite writer thread committing everything queued as one
# transaction, WAL, synchronous=FULL, a row with a unique key per message, the answer after
# the commit), which receives the text requests; and the same baseline in its `intake` mode
# (both signatures checked, the message decrypted and parsed, a row keyed by MsgId: the least
# kefu's image path must do), which receives the image requests; and in its `text` mode
# (the intake, then kefu's classifier, the reply stored with the message and sent encrypted:
# the least kefu's text path must do), which receives the text requests; and in its `reply`
# mode (`text` without the classifier: every message acknowledged, the floor under any text
# path whatever it classifies with), which receives them too. Two kefu runs:
# shopper text messages (verify, decrypt, parse, classify, durable SQLite write, encrypted
# passive reply) and image messages (the same intake without the classifier and the reply).
# Each connection count gets its own hello / durable / durable-intake / durable-text /
# durable-reply / text / image runs; a summary table follows, with each run's share of the
# hello world and of the durable baseline, kefu's share of the least work of its kind (text
# of durable-text, image of durable-intake), and the callback's own stages timed on one idle
# core over the same requests (examples/stages.rs).
# Needs wrk (apt-get install wrk).
#   bench/load.sh [duration_secs] [connections ...]      (default: 10 32 64)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
shift || true
CONNS_LIST=("$@")
[ ${#CONNS_LIST[@]} -eq 0 ] && CONNS_LIST=(32 64)
THREADS=1
OUT=bench/out
mkdir -p "$OUT"
cargo build --release --quiet --bin kefu --example hello --example durable --example loadgen --example stages
# Enough distinct messages that no run wraps around to a duplicate.
N=$(( DUR * 120000 ))
./target/release/examples/loadgen "$N" "$OUT/requests.tsv" text
./target/release/examples/loadgen "$N" "$OUT/images.tsv" image

SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
TICK=$(getconf CLK_TCK)
settle() {  # write back what earlier runs and the request files left dirty, before measuring
  # (without it, a run could share the disk with the last one's writeback: the same build then
  # moved by up to a third between runs)
  sync
  sleep 1
}
cpu_ticks() {  # cpu_ticks PID: user + system time of the process so far, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}
record() {  # record LABEL CONNS WRK_OUTPUT_FILE CPU_TICKS_USED
  local rps p50 p99 n us
  rps=$(awk '/^Requests\/sec/ {print $2}' "$3")
  # A refused request is not a measurement: say so loudly (a stale request file, a bad key).
  if grep -q "Non-2xx" "$3"; then
    echo "!! $1 at $2 connections: $(awk '/Non-2xx/ {print $NF}' "$3") requests refused; its figures mean nothing" | tee -a "$OUT/refused.txt"
  fi
  p50=$(awk '$1 == "50%" {print $2}' "$3")
  p99=$(awk '$1 == "99%" {print $2}' "$3")
  n=$(awk '/requests in/ {print $1}' "$3")
  # The server's CPU time (all its threads, user and kernel) per request answered.
  us=$(awk -v t="$4" -v n="$n" -v hz="$TICK" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')
  echo "$1 $2 $rps $p50 $p99 $us" >> "$SUMMARY"
}

run_hello() {  # run_hello CONNS
  ./target/release/examples/hello 127.0.0.1:18081 & HELLO=$!
  sleep 0.5
  echo "== baseline: axum hello world, $1 connections"
  local t0
  settle
  t0=$(cpu_ticks $HELLO)
  wrk -t$THREADS -c"$1" -d"${DUR}s" --latency -s bench/replay.lua http://127.0.0.1:18081 | tee "$OUT/hello-$1.txt"
  record hello "$1" "$OUT/hello-$1.txt" $(( $(cpu_ticks $HELLO) - t0 ))
  kill $HELLO; wait $HELLO 2>/dev/null || true
}

run_durable() {  # run_durable CONNS [intake|text|reply]
  local mode=${2:-raw} label=durable file="$OUT/requests.tsv"
  if [ "$mode" = intake ]; then label=durable-intake; file="$OUT/images.tsv"; fi
  if [ "$mode" = text ]; then label=durable-text; fi
  if [ "$mode" = reply ]; then label=durable-reply; fi
  rm -rf "$OUT/durable-db"
  ./target/release/examples/durable 127.0.0.1:18083 "$OUT/durable-db/durable.db" "$mode" & DURABLE=$!
  sleep 0.5
  echo "== baseline: $label (one SQLite writer, WAL, synchronous=FULL), $1 connections"
  local t0
  settle
  t0=$(cpu_ticks $DURABLE)
  KEFU_LOAD_FILE="$file" wrk -t$THREADS -c"$1" -d"${DUR}s" --latency -s bench/replay.lua \
    http://127.0.0.1:18083 | tee "$OUT/$label-$1.txt"
  record "$label" "$1" "$OUT/$label-$1.txt" $(( $(cpu_ticks $DURABLE) - t0 ))
  kill $DURABLE; wait $DURABLE 2>/dev/null || true
}

run_kefu() {  # run_kefu LABEL REQUEST_FILE CONNS
  rm -rf "$OUT/db"
  KEFU_LISTEN=127.0.0.1:18082 KEFU_DATABASE_URL="sqlite://$OUT/db/kefu.db" \
  KEFU_CALLBACK_TIMESTAMP_TOLERANCE_SECS=3600 KEFU_LOG=warn \
    ./target/release/kefu --config kefu.toml serve & KEFU=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:18082/readyz >/dev/null && break; sleep 0.1; done
  echo "== kefu: POST /wechat/callback, $1, $3 connections (safe mode, SQLite synchronous=FULL)"
  local t0
  settle
  t0=$(cpu_ticks $KEFU)
  KEFU_LOAD_FILE="$2" wrk -t$THREADS -c"$3" -d"${DUR}s" --latency -s bench/replay.lua \
    http://127.0.0.1:18082 | tee "$OUT/kefu-$1-$3.txt"
  local used
  used=$(( $(cpu_ticks $KEFU) - t0 ))
  echo "rows stored: $(curl -s http://127.0.0.1:18082/metrics | grep '^kefu_messages_recorded_total' || true)"
  echo "duplicates:  $(curl -s http://127.0.0.1:18082/metrics | grep '^kefu_callback_duplicates_dropped_total' || echo 0)"
  echo "RSS kB: $(ps -o rss= -p $KEFU)"
  kill $KEFU; wait $KEFU 2>/dev/null || true
  record "kefu-$1" "$3" "$OUT/kefu-$1-$3.txt" "$used"
}

for C in "${CONNS_LIST[@]}"; do
  run_hello "$C"
  run_durable "$C"
  run_durable "$C" intake
  run_durable "$C" text
  run_durable "$C" reply
  run_kefu text "$OUT/requests.tsv" "$C"
  run_kefu image "$OUT/images.tsv" "$C"
done

echo
echo "== summary (req/s; its share of the hello-world and of the durable-baseline run at the"
echo "   same connection count; kefu's share of the least work of its kind, text of durable-text"
echo "   and image of durable-intake; the server's CPU time per request, all threads, user and"
echo "   kernel)"
awk '
  $1 == "hello" { base[$2] = $3 }
  $1 == "durable" { dur[$2] = $3 }
  $1 == "durable-text" { least["kefu-text", $2] = $3 }
  $1 == "durable-intake" { least["kefu-image", $2] = $3 }
  { rows[NR] = $0 }
  END {
    printf "%-15s %5s %10s %8s %8s %8s %9s %9s %12s\n", "server", "conns", "req/s", "/hello", "/durable", "/least", "p50", "p99", "cpu/req µs"
    for (i = 1; i <= NR; i++) {
      split(rows[i], f, " ")
      l = least[f[1], f[2]]
      printf "%-15s %5s %10.0f %7.1f%% %7.2fx %8s %9s %9s %12s\n", f[1], f[2], f[3], 100 * f[3] / base[f[2]], f[3] / dur[f[2]], (l > 0 ? sprintf("%.2fx", f[3] / l) : "-"), f[4], f[5], f[6]
    }
  }' "$SUMMARY"

echo
echo "== the callback's own stages on one idle core, over these requests (examples/stages.rs)"
./target/release/examples/stages "$OUT/requests.tsv" "$OUT/images.tsv"
