#!/usr/bin/env bash
# Gateway benchmark: one `muster serve` node, and in a second process a
# simulated fleet (`muster sim fleet`) that manufactures, provisions and
# connects N devices over mTLS MQTT from several loopback source addresses,
# holds them, and publishes telemetry at a rate. The node's resident memory
# and open descriptors are sampled every second. Usage:
#
#   bench/gateway.sh DEVICES RATE_PER_DEVICE DURATION [extra sim flags]
#   bench/gateway.sh 19900 0 30s        # connections held, memory
#   bench/gateway.sh 10000 10 30s --qos 0   # 100,000 msgs/s offered
#
# BENCHMARKS.md says what it measured.
set -euo pipefail
devices=${1:?devices}; rate=${2:?rate per device}; duration=${3:?duration}; shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; kill "$sampler" 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/muster" "$root/cmd/muster"
cd "$work"
./muster serve --api-addr 127.0.0.1:0 --device-addr 127.0.0.1:0 --pki-addr 127.0.0.1:0 \
    --mqtt-addr 127.0.0.1:0 --log-level warn >serve.log 2>&1 &
server=$!
until [ -s muster-data/api.addr ]; do sleep 0.2; done
./muster factories add bench --models m1 --serial-pattern 'B-[0-9]+' >/dev/null
cat >template.yaml <<'YAML'
name: default
factories: [bench]
device:
  topics: {publish: ["devices/{{device.id}}/telemetry", "devices/{{device.id}}/metrics"]}
approval: auto
YAML
./muster templates create -f template.yaml >/dev/null
idle=$(awk '/VmRSS/{print $2}' /proc/$server/status)
metrics="http://$(cat muster-data/pki.addr)/metrics"
# Each second: time, RSS (KiB), open descriptors, CPU ticks, messages in.
(while sleep 1; do
  echo "$(date +%s) $(awk '/VmRSS/{print $2}' /proc/$server/status) $(ls /proc/$server/fd | wc -l)" \
    "$(awk '{print $14+$15}' /proc/$server/stat) $(curl -s "$metrics" | awk '/^muster_gateway_messages_in_total/{print $2}')"
done >samples.log) &
sampler=$!
echo "machine: $(nproc) cores, $(uname -r), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
./muster sim fleet --devices "$devices" --factory bench --model m1 --serial-format 'B-%d' \
    --rate "$rate" --report-every 0 --duration "$duration" --concurrency 64 \
    --local-addrs 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5 "$@" || true
kill "$sampler"
echo "server: $(curl -s "$metrics" | grep -E '^muster_gateway_(messages_in_total|authorization_failures_total)' | tr '\n' ' ')"
peak=$(sort -k2 -n samples.log | tail -1)
fds=$(sort -k3 -n samples.log | tail -1 | cut -d' ' -f3)
echo "server: idle RSS $((idle / 1024)) MB; peak RSS $(($(echo "$peak" | cut -d' ' -f2) / 1024)) MB; at most $fds descriptors open"
echo "server: $(( ($(echo "$peak" | cut -d' ' -f2) - idle) / devices )) KiB per held connection (peak RSS less idle RSS, over $devices devices)"
echo "server CPU: $(awk '{print ($14+$15)/100 " s"}' /proc/$server/stat) in all"
# The node's CPU per message while messages flowed: the broker's own cost,
# whatever the simulator (on the same cores) could offer.
awk 'prev != "" && $5 > pm { dc += $4 - pc; dm += $5 - pm }
     { pc = $4; pm = $5; prev = 1 }
     END { if (dm > 0) printf "server: %.1f µs of CPU per message received (%d messages), so about %.0f msgs/s per core\n", dc * 10000 / dm, dm, dm / (dc / 100) }' samples.log
