#!/usr/bin/env bash
# End-to-end load test of POST /wechat/callback beside an axum hello-world baseline, all
# driven by wrk with the same settings on the same machine. Two kefu runs: shopper text
# messages (verify, decrypt, parse, classify, durable SQLite write, encrypted passive reply)
# and image messages (the same intake without the classifier and the passive reply).
# Needs wrk (apt-get install wrk).
#   bench/load.sh [duration_secs] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-32}
THREADS=1
OUT=bench/out
mkdir -p "$OUT"
cargo build --release --quiet --bin kefu --example hello --example loadgen
N=$(( DUR * 60000 ))
./target/release/examples/loadgen "$N" "$OUT/requests.tsv" text
./target/release/examples/loadgen "$N" "$OUT/images.tsv" image

./target/release/examples/hello 127.0.0.1:18081 & HELLO=$!
sleep 0.5
echo "== baseline: axum hello world"
wrk -t$THREADS -c"$CONNS" -d"${DUR}s" --latency -s bench/replay.lua http://127.0.0.1:18081 | tee "$OUT/hello.txt"
kill $HELLO; wait $HELLO 2>/dev/null || true

run_kefu() {  # run_kefu LABEL REQUEST_FILE
  rm -rf "$OUT/db"
  KEFU_LISTEN=127.0.0.1:18082 KEFU_DATABASE_URL="sqlite://$OUT/db/kefu.db" \
  KEFU_CALLBACK_TIMESTAMP_TOLERANCE_SECS=3600 KEFU_LOG=warn \
    ./target/release/kefu --config kefu.toml serve & KEFU=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:18082/readyz >/dev/null && break; sleep 0.1; done
  echo "== kefu: POST /wechat/callback, $1 (safe mode, SQLite synchronous=FULL)"
  KEFU_LOAD_FILE="$2" wrk -t$THREADS -c"$CONNS" -d"${DUR}s" --latency -s bench/replay.lua \
    http://127.0.0.1:18082 | tee "$OUT/kefu-$1.txt"
  echo "rows stored: $(curl -s http://127.0.0.1:18082/metrics | grep '^kefu_messages_recorded_total' || true)"
  echo "duplicates:  $(curl -s http://127.0.0.1:18082/metrics | grep '^kefu_callback_duplicates_dropped_total' || echo 0)"
  echo "RSS kB: $(ps -o rss= -p $KEFU)"
  kill $KEFU; wait $KEFU 2>/dev/null || true
}
run_kefu text "$OUT/requests.tsv"
run_kefu image "$OUT/images.tsv"
