#!/usr/bin/env bash
# Runs every `skykoi bench` mode against a local gateway whose Bedrock is
# the fake (cmd/fakebedrock), and prints the results. Nothing here talks to
# AWS. Usage: scripts/bench-local.sh [N]
set -euo pipefail

n=${1:-200}
work=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf -- "$work"
}
trap cleanup EXIT

go build -o "$work/skykoi" ./cmd/skykoi
go build -o "$work/fakebedrock" ./cmd/fakebedrock

# 2,000 deltas at about 10,000 per second: 100 deltas, then 10 ms.
"$work/fakebedrock" -deltas 2000 -pause-every-100 10ms >"$work/fake.url" &
pids+=($!)
until [[ -s $work/fake.url ]]; do sleep 0.05; done
fake=$(head -n 1 "$work/fake.url")

token=$("$work/skykoi" token new 2>/dev/null)
printf '%s\n' "$token" >"$work/token"
port=18799
"$work/skykoi" config generate --token-stdin -o "$work/skykoi.json" --port "$port" \
	--workspace "$work/koi" --log-level warn --region us-east-1 --endpoint "$fake" <"$work/token"
AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true \
	"$work/skykoi" gateway run --config "$work/skykoi.json" 2>"$work/gateway.log" &
pids+=($!)
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.05; done

url="ws://127.0.0.1:$port/"
run() { echo "== skykoi bench $*"; "$work/skykoi" bench "$@" --url "$url" --token-file "$work/token"; echo; }
run handshake -n "$n"
run handshake -n "$n" --hold 1000
run rtt -n "$((n * 5))"
run clients -n 1000
run stream -n 10
run fanout -n 100
