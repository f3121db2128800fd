#!/usr/bin/env bash
# The long run of the fault suite (tests/it/fault.rs): a stream of kf and Official Account
# messages through two kefu replicas on a PostgreSQL of its own, with five SIGKILLs, one
# PostgreSQL stop and 20% WeCom faults. The counts go to target/fault-report.txt.
#
#   bench/fault.sh          # 5000 messages
#   bench/fault.sh 20000
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo test, not nextest: the long run outlasts nextest's two-minute limit.
KEFU_FAULT_MESSAGES="${1:-5000}" cargo test --test it -- --nocapture --exact \
  fault::nothing_accepted_is_lost_or_duplicated_under_crashes_and_outages
cat target/fault-report.txt
