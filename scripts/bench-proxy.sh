#!/usr/bin/env bash
# Benchmarks of the data path against baselines measured in the same run
# (issue 8, rows 1, 3 and 4). Run as root from the repository root:
#   scripts/bench-proxy.sh            (prints a Markdown table; OUT=file also writes it there)
# 1. Non-SMTP TCP throughput (iperf3, 4 streams) across the plain Linux bridge,
#    and across relaygate in monitor and in enforce mode with inspection on.
# 3. Bot flood: the relay's messages per second through the proxy, alone and
#    while non-relay sources open SMTP connections as fast as they can; the
#    API's latency (p50/p99) during the flood.
# 4. Memory: the daemon's RSS at rest and with N idle proxied relay sessions.
# Traffic stays inside the lab's namespaces. Medians of ROUNDS rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-proxy.sh needs root (network namespaces)" >&2; exit 1; }
export LAB=${LAB:-rgbench-proxy}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
# 10,000 sessions need more than 20,000 descriptors in the daemon (client and
# onward socket each); machines whose hard limit is 20,000 (and no
# CAP_SYS_RESOURCE to raise it) measure 9,000.
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ] || [ "$HARD" -gt 21000 ]; then DEFAULT_SESSIONS=10000; else DEFAULT_SESSIONS=9000; fi
SESSIONS=${SESSIONS:-$DEFAULT_SESSIONS}
MSGS=${MSGS:-300}
OUT=${OUT:-}
DIR=$(mktemp -d /tmp/relaygate-bench.XXXXXX)
BIN=$PWD/bin
. scripts/lab-config.sh
x() { local n=$1; shift; ip netns exec "$LAB-$n" "$@"; }
ulimit -n "$HARD"

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	pkill -f "appliance run --config $DIR" 2>/dev/null || true
	wait 2>/dev/null || true
	scripts/lab.sh down >/dev/null 2>&1 || true
	[ -n "${KEEP:-}" ] || rm -rf "$DIR"
}
trap cleanup EXIT

make -s build labtools >/dev/null
CGO_ENABLED=0 go build -o "$BIN/smtpflood" ./internal/testutil/smtpflood
scripts/lab.sh up >/dev/null
# Extra addresses for the bots: ten sources on the PC's subnet.
for i in $(seq 51 60); do x pc ip addr add 10.20.0.$i/24 dev eth0; done
BOTS=$(seq -s, -f '10.20.0.%g' 51 60)

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print 0} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

# --- the plain bridge: what the box is without relaygate
plain_bridge() {
	x box ip link add br0 type bridge 2>/dev/null || true
	x box ip link set br0 address 02:52:47:00:00:09
	x box ip link set eth1 master br0
	x box ip link set eth2 master br0
	x box sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 2>/dev/null || true
	x box ip link set eth1 up; x box ip link set eth2 up; x box ip link set br0 up
}

config() { # mode
	lab_config "$1" "$DIR/data-$1" "proxy:
  max_conns: $((SESSIONS * 2 + 1000))
  idle_timeout: 10m
inspect:
  reverse_dns: false" >"$DIR/$1.yaml"
}

APP_PID=
start_appliance() { # mode
	config "$1"
	# Not through x(): $! must be the daemon (ip netns exec execs it).
	ip netns exec "$LAB-box" "$BIN/appliance" run --config "$DIR/$1.yaml" >"$DIR/appliance-$1.log" 2>&1 &
	APP_PID=$!
	for _ in $(seq 100); do grep -q 'msg=serving' "$DIR/appliance-$1.log" && break; sleep 0.2; done
	sleep 1
}
stop_appliance() {
	[ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null && wait "$APP_PID" 2>/dev/null || true
	APP_PID=
}
# The daemon's own process (ip netns exec execs it, so the PID is the daemon's).
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$APP_PID/status"; }

iperf() { # -> Mbit/s received
	x relay iperf3 -c 203.0.113.25 -P 4 -t "$SECS" -f m 2>/dev/null | awk '/SUM.*receiver/ {print $(NF-2)}'
}

x mx iperf3 -s -D --logfile "$DIR/iperf3.log"
plain_bridge
declare -A tput
for r in $(seq "$ROUNDS"); do
	stop_appliance
	tput[plain]+="$(iperf) "
	start_appliance monitor
	tput[monitor]+="$(iperf) "
	stop_appliance
	start_appliance enforce
	tput[enforce]+="$(iperf) "
	stop_appliance
done
p=$(echo ${tput[plain]} | tr ' ' '\n' | median)
m=$(echo ${tput[monitor]} | tr ' ' '\n' | median)
e=$(echo ${tput[enforce]} | tr ' ' '\n' | median)

# --- SMTP: smtp-sink as the remote MX
ip netns exec "$LAB-mx" smtp-sink -u nobody -m $((SESSIONS + 1000)) 203.0.113.25:25 4096 >"$DIR/sink.log" 2>&1 &
pids+=($!)
start_appliance enforce
TOKEN=$("$BIN/appliance" token create --data-dir "$DIR/data-enforce")
send() { x relay "$BIN/smtpflood" -mode send -target 203.0.113.25:25 -n "$MSGS" -concurrency 4 -size 10240; }
api_latency() { # n requests -> "p50 p99" in ms
	for _ in $(seq "$1"); do
		x admin curl -sk -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" https://10.255.0.1:8443/api/v1/status
	done | sort -g | awk '{a[NR]=$1*1000} END {m=int(NR*0.5)+1; if (m>NR) m=NR; q=int(NR*0.99)+1; if (q>NR) q=NR; printf "%.1f/%.1f", a[m], a[q]}'
}
declare -A rate
for r in $(seq "$ROUNDS"); do
	rate[alone]+="$(send | sed -n 's/.*per_second=\([0-9.]*\).*/\1/p') "
done
api_idle=$(api_latency 50)
# 512 workers with a short connect timeout: SYNs the kernel sheds are retried
# at once, so the bots keep offering thousands of connections per second.
ip netns exec "$LAB-pc" "$BIN/smtpflood" -mode flood -target 203.0.113.25:25 -src "$BOTS" -concurrency 512 -timeout 500ms -duration $((ROUNDS * 20))s >"$DIR/flood.log" 2>&1 &
FLOOD=$!
pids+=($FLOOD)
sleep 2
for r in $(seq "$ROUNDS"); do
	rate[flood]+="$(send | sed -n 's/.*per_second=\([0-9.]*\).*/\1/p') "
done
api_flood=$(api_latency 50)
wait "$FLOOD" || true
shed=$(x admin curl -sk -H "Authorization: Bearer $TOKEN" https://10.255.0.1:8443/api/v1/status | grep -o '"flood_dropped":[0-9]*' | cut -d: -f2)
ra=$(echo ${rate[alone]} | tr ' ' '\n' | median)
rf=$(echo ${rate[flood]} | tr ' ' '\n' | median)
flood_line=$(cat "$DIR/flood.log")

# --- memory: idle relay sessions held through the proxy
sleep 2
rss_rest=$(rss_kib)
ip netns exec "$LAB-relay" "$BIN/smtpflood" -mode hold -target 203.0.113.25:25 -n "$SESSIONS" -hold 30s -timeout 60s >"$DIR/hold.log" 2>&1 &
HOLD=$!
pids+=($HOLD)
for _ in $(seq 300); do grep -q '^held' "$DIR/hold.log" && break; sleep 1; done
sleep 3
rss_held=$(rss_kib)
held=$(sed -n 's/^held established=\([0-9]*\).*/\1/p' "$DIR/hold.log")
wait "$HOLD" || true
stop_appliance

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
per=$(awk -v h="$rss_held" -v r="$rss_rest" -v n="${held:-0}" 'BEGIN { if (n > 0) printf "%.1f", (h - r) / n; else print "n/a" }')
{
	echo "| # | measurement | baseline | relaygate | ratio / value | target |"
	echo "|---|---|---|---|---|---|"
	echo "| 1 | iperf3 4 streams, Mbit/s, monitor + inspection | plain bridge $p | $m | $(ratio "$m" "$p") | >= 0.95 |"
	echo "| 1 | iperf3 4 streams, Mbit/s, enforce + inspection | plain bridge $p | $e | $(ratio "$e" "$p") | >= 0.95 |"
	echo "| 3 | relay msgs/s (10 KB, 4 sessions) under a bot flood | alone $ra | flooded $rf | $(ratio "$rf" "$ra") | >= 0.9 |"
	echo "| 3 | API /api/v1/status latency ms (p50/p99) | idle $api_idle | flood $api_flood | | responsive |"
	echo "| 4 | daemon RSS KiB | at rest $rss_rest | ${held:-0} idle sessions $rss_held | $per KiB/session | <= 64 KiB |"
	echo
	echo "Rounds: $ROUNDS x ${SECS}s iperf3; throughput samples (Mbit/s): plain ${tput[plain]}/ monitor ${tput[monitor]}/ enforce ${tput[enforce]}."
	echo "Relay rates (msgs/s): alone ${rate[alone]}/ flooded ${rate[flood]}. Flood: $flood_line; SYNs shed by the kernel (flood_dropped): ${shed:-n/a}."
} | tee ${OUT:+"$OUT"}
