#!/usr/bin/env bash
# bench-smtp.sh: SMTP messages per second and added latency per message
# through the proxy, against direct delivery, measured in the same run
# (issue 3 "Done when", issue 8 item 2).
#
# The lab of scripts/lab.sh (LAB=rgbench) with smtp-sink on the MX
# (203.0.113.25:25) and the load from the relay host (10.10.0.25, a
# configured relay), in three phases:
#   direct:  the box namespace holds a plain Linux bridge (br0 over eth1 and
#            eth2, STP off), no relaygate at all;
#   floor:   br0 deleted, internal/testutil/splicerelay started on the
#            appliance's configuration: the same bridge, ruleset,
#            transparent listener and onward dialer as the appliance, but
#            it only copies bytes both ways (splice(2)), no SMTP. What any
#            transparent proxy costs on this machine (FLOOR=0 skips it);
#   through: br0 deleted, the appliance started in enforce mode; every
#            connection is diverted to the proxy, which connects onward
#            from the relay's own address.
# For each message size (10 KB, 1 MB) and concurrency (1, 20, 200 sessions):
#   - messages/s: smtp-source -s SESSIONS -m COUNT -l SIZE, timed from start
#     to exit (one message per connection, as a relay delivers);
#   - latency: internal/testutil/smtpflood -mode load at the same concurrency, one
#     message per connection, per message the time from the TCP connect to
#     the 250 after the end of DATA; median and p99.
#   - CPU: each CPU's busy share (user, system, interrupts; not idle, not
#     steal) while smtp-source ran, to see which side saturates.
# Prints Markdown tables; keeps raw output in $OUT.
#
# Each phase runs ROUNDS times, alternating; the table has the medians.
# "floor ratio" is floor over direct, "of floor" through over floor.
#
# CPUs: in production the relay, the box and the MX are three machines. In
# this lab they share the machine's CPUs, and every cycle the proxy spends
# would be taken from the load generator and the sink, which the direct
# phase does not pay. So by default (PIN=1, with at least 2 CPUs) the hosts
# (smtp-source, smtpflood, smtp-sink) run on HOST_CPUS (default: CPU 0) and
# the appliance on BOX_CPUS (default: the other CPUs), in both phases
# alike; on veth the kernel's work for a packet runs on the sender's CPU,
# so the hosts' CPU carries what it carries in the direct phase, and the
# box's work lands on the box's CPUs. PIN=0 runs everything unpinned (the
# shared-CPU view, which charges the proxy's work to the hosts too).
#
# RPS=1 (with PIN=1) also steers each packet's receive work to the CPUs of
# the namespace that receives it (receive packet steering on every
# interface: the box's eth1 and eth2 to BOX_CPUS, all others to
# HOST_CPUS), as on three machines with their own NICs. In this VM each
# steered packet costs an inter-processor interrupt, which slows both
# phases (docs/benchmarks.md, 2026-11-27 afternoon); off by default.
#
# Usage: sudo scripts/bench-smtp.sh   (LAB=rgbench, ROUNDS=3, SCALE=1 multiplies
#        the message counts, RELAYGATE_BIN=dir with a prebuilt appliance,
#        OUT=dir for raw output and the table, PIN=0, RPS=1, FLOOR=0)
set -euo pipefail
cd "$(dirname "$0")/.."
LAB=${LAB:-rgbench}
SCALE=${SCALE:-1}
ROUNDS=${ROUNDS:-3}
MX=203.0.113.25
PIN=${PIN:-1}
RPS=${RPS:-0}
FLOOR=${FLOOR:-1}
ncpu=$(nproc)
if [ "$PIN" = 1 ] && [ "$ncpu" -ge 2 ]; then
	HOST_CPUS=${HOST_CPUS:-0}
	if [ "$ncpu" -eq 2 ]; then BOX_CPUS=${BOX_CPUS:-1}; else BOX_CPUS=${BOX_CPUS:-1-$((ncpu - 1))}; fi
	onhost=(taskset -c "$HOST_CPUS")
	onbox=(taskset -c "$BOX_CPUS")
	cpus="hosts on CPU $HOST_CPUS, appliance on CPU $BOX_CPUS"
else
	onhost=()
	onbox=()
	cpus="unpinned"
fi

if [ "$(id -u)" != 0 ]; then
	echo "bench-smtp: needs root (network namespaces, a bridge, nftables)" >&2
	exit 1
fi
for c in smtp-source smtp-sink go ip; do
	command -v "$c" >/dev/null || { echo "bench-smtp: $c missing (make deps)" >&2; exit 1; }
done

OUT=${OUT:-$(mktemp -d /tmp/relaygate-bench-smtp-XXXXXX)}
mkdir -p "$OUT/bin"
chmod 755 "$OUT"
BIN=${RELAYGATE_BIN:-$OUT/bin}
[ -n "${RELAYGATE_BIN:-}" ] || CGO_ENABLED=0 go build -o "$BIN/appliance" ./cmd/appliance
CGO_ENABLED=0 go build -o "$OUT/bin/smtpflood" ./internal/testutil/smtpflood
CGO_ENABLED=0 go build -o "$OUT/bin/splicerelay" ./internal/testutil/splicerelay
phases=(direct through)
if [ "$FLOOR" = 1 ]; then phases=(direct floor through); fi

x() { local n=$1; shift; ip netns exec "$LAB-$n" "$@"; }
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	LAB=$LAB bash scripts/lab.sh down || true
}
trap cleanup EXIT

LAB=$LAB bash scripts/lab.sh up
# cpumask LIST: the hexadecimal mask of a CPU list such as "0" or "1-3,5".
cpumask() {
	local m=0 part a b c
	for part in ${1//,/ }; do
		a=${part%-*} b=${part#*-}
		for ((c = a; c <= b; c++)); do m=$((m | 1 << c)); done
	done
	printf '%x' "$m"
}
if [ "$RPS" = 1 ] && [ ${#onbox[@]} -gt 0 ]; then
	for n in relay pc switch box router mx admin; do
		for d in $(ip netns exec "$LAB-$n" ls /sys/class/net); do
			[ "$d" = lo ] && continue
			mask=$(cpumask "$HOST_CPUS")
			if [ "$n" = box ] && [ "$d" != eth0 ]; then mask=$(cpumask "$BOX_CPUS"); fi
			ip netns exec "$LAB-$n" sh -c "echo $mask >/sys/class/net/$d/queues/rx-0/rps_cpus"
		done
	done
	cpus="$cpus, receive work steered (RPS) to the receiving namespace's CPUs"
fi
# Many short connections from one address: room for them in TIME_WAIT.
x relay sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
x mx sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096
ip netns exec "$LAB-mx" "${onhost[@]}" smtp-sink -u nobody -m 1000 "$MX:25" 4096 >"$OUT/sink.log" 2>&1 &
pids+=($!)

cnt() { awk -v a="$1" -v s="$SCALE" 'BEGIN { n = int(a * s); print (n < 1 ? 1 : n) }'; }
# Rows: size, sessions, smtp-source messages, smtpflood (load) messages.
rows=(
	"10240 1 $(cnt 1000) $(cnt 400)"
	"10240 20 $(cnt 4000) $(cnt 2000)"
	"10240 200 $(cnt 4000) $(cnt 2000)"
	"1048576 1 $(cnt 100) $(cnt 50)"
	"1048576 20 $(cnt 300) $(cnt 200)"
	"1048576 200 $(cnt 400) $(cnt 400)"
)

# cpustat: per CPU, its busy and total jiffies so far ("cpuN busy total ...").
cpustat() { awk '/^cpu[0-9]/ { b = $2 + $3 + $4 + $7 + $8; printf "%s %d %d ", $1, b, b + $5 + $6 }' /proc/stat; }
# cpubusy BEFORE AFTER: each CPU's busy percentage between two cpustat.
cpubusy() {
	awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
		for (i = 1; i < n; i += 3) printf "%s%.0f", (i > 1 ? " " : ""), 100 * (y[i+1] - x[i+1]) / (y[i+2] - x[i+2] + 1e-9) }'
}

# measure PHASE: one pass over the rows, results in $OUT/PHASE.txt as
# "size sessions rate p50 p99 busy-cpu0 busy-cpu1 ...".
measure() {
	local phase=$1 size s n nl t0 t1 c0 c1 busy rate lat
	: >"$OUT/$phase.txt"
	# Warm up: neighbour discovery, and the proxy's first connections.
	x relay "${onhost[@]}" smtp-source -s 2 -m 20 -l 1024 -f bench@relay.lab.example -t sink@remote.example "$MX:25" >/dev/null
	for row in "${rows[@]}"; do
		read -r size s n nl <<<"$row"
		c0=$(cpustat)
		t0=$(date +%s.%N)
		x relay "${onhost[@]}" timeout 300 smtp-source -s "$s" -m "$n" -l "$size" \
			-f bench@relay.lab.example -t sink@remote.example "$MX:25" >>"$OUT/$phase-source.log" 2>&1
		t1=$(date +%s.%N)
		c1=$(cpustat)
		busy=$(cpubusy "$c0" "$c1")
		rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
		lat=$(x relay "${onhost[@]}" timeout 300 "$OUT/bin/smtpflood" -mode load -target "$MX:25" -n "$nl" -concurrency "$s" -size "$size")
		echo "$phase size=$size sessions=$s source_msgs=$n source_rate=$rate cpu_busy%=${busy// //} smtpflood: $lat" | tee -a "$OUT/$phase-raw.log" >&2
		p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$lat")
		p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$lat")
		echo "$size $s $rate $p50 $p99 $busy" >>"$OUT/$phase.txt"
	done
}

bridge_up() {
	x box ip link add br0 type bridge stp_state 0 forward_delay 0
	x box ip link set eth1 master br0
	x box ip link set eth2 master br0
	for l in eth1 eth2 br0; do x box ip link set "$l" up; done
}
bridge_down() {
	x box ip link del br0 2>/dev/null || true
	x box ip link set eth1 down
	x box ip link set eth2 down
}

. scripts/lab-config.sh
lab_config enforce "$OUT/data" "log:
  level: warn" >"$OUT/appliance.yaml"
apid=
# appliance_up [COMMAND...]: the appliance, or COMMAND on its configuration
# (the floor's splicerelay), in the box namespace until diverting.
appliance_up() {
	local cmd=("$@")
	[ ${#cmd[@]} -gt 0 ] || cmd=("$BIN/appliance" run --config)
	ip netns exec "$LAB-box" "${onbox[@]}" "${cmd[@]}" "$OUT/appliance.yaml" >>"$OUT/appliance.log" 2>&1 &
	apid=$!
	pids+=($apid)
	for i in $(seq 100); do
		x box nft list set bridge relaygate alive 2>/dev/null | grep -q 'elements' && break
		kill -0 "$apid" 2>/dev/null || { cat "$OUT/appliance.log" >&2; exit 1; }
		sleep 0.2
	done
	sleep 1
}
# appliance_down LABEL: stop it, record the packets it had diverted.
appliance_down() {
	local diverted
	diverted=$(x box nft list counter bridge relaygate diverted 2>/dev/null | sed -n 's/.*packets \([0-9]*\).*/\1/p' | head -1)
	echo "$1: ${diverted:-?}" >>"$OUT/diverted.txt"
	kill "$apid"
	wait "$apid" || true
	x box "$BIN/appliance" teardown --config "$OUT/appliance.yaml" >/dev/null
	bridge_down
}

# Alternate the phases, so that other load on the machine hits both alike.
for r in $(seq "$ROUNDS"); do
	bridge_up
	measure "direct-$r"
	bridge_down
	if [ "$FLOOR" = 1 ]; then
		appliance_up "$OUT/bin/splicerelay" -config
		measure "floor-$r"
		appliance_down "round $r, floor"
	fi
	appliance_up
	measure "through-$r"
	appliance_down "round $r, through"
done

# Per row, the median over the rounds of each number.
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
for phase in "${phases[@]}"; do
	: >"$OUT/$phase.txt"
	for i in $(seq ${#rows[@]}); do
		read -r size s _ <<<"${rows[$((i - 1))]}"
		line="$size $s"
		for col in $(seq 3 $((5 + ncpu))); do
			line="$line $(for r in $(seq "$ROUNDS"); do sed -n "${i}p" "$OUT/$phase-$r.txt" | cut -d' ' -f$col; done | median)"
		done
		echo "$line" >>"$OUT/$phase.txt"
	done
done

# Per row, the lowest and highest of the rounds' own ratios (through of
# round r over direct of round r): how far one round can stray in this VM.
: >"$OUT/ratio-range.txt"
for i in $(seq ${#rows[@]}); do
	for r in $(seq "$ROUNDS"); do
		paste -d' ' <(sed -n "${i}p" "$OUT/direct-$r.txt" | cut -d' ' -f3) <(sed -n "${i}p" "$OUT/through-$r.txt" | cut -d' ' -f3)
	done | awk 'NR == 1 || $2 / $1 < lo { lo = $2 / $1 } NR == 1 || $2 / $1 > hi { hi = $2 / $1 } END { printf "%.2f-%.2f\n", lo, hi }' >>"$OUT/ratio-range.txt"
done

# The table.
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
state=""
if [ -n "$(git status --porcelain -- smtpproxy 2>/dev/null)" ]; then state=" with uncommitted proxy work"; fi
floorf=/dev/null
if [ "$FLOOR" = 1 ]; then floorf=$OUT/floor.txt; fi
# table: one line per row from direct.txt, floor.txt (or nothing),
# through.txt and ratio-range.txt; WHAT is "rates" or "busy".
table() {
	awk -v what="$1" -v n="$ncpu" '
		FILENAME == ARGV[1] { d[FNR] = $0; rows = FNR; next }
		FILENAME == ARGV[2] { f[FNR] = $0; next }
		FILENAME == ARGV[3] { t[FNR] = $0; next }
		{ rr[FNR] = $0 }
		function busy(line,   x, i, out) {
			split(line, x, " ")
			for (i = 0; i < n; i++) out = out (i ? "/" : "") x[6 + i]
			return out
		}
		END {
			for (i = 1; i <= rows; i++) {
				split(d[i], D, " "); split(t[i], T, " ")
				label = (D[1] >= 1048576 ? int(D[1] / 1048576) " MB" : int(D[1] / 1024) " KB")
				if (what == "busy") {
					printf "| %s | %d | %s | %s | %s |\n", label, D[2], busy(d[i]), (i in f ? busy(f[i]) : "-"), busy(t[i])
					continue
				}
				fr = "-"; fratio = "-"; of = "-"; fadd = "-"
				if (i in f) {
					split(f[i], F, " ")
					fr = sprintf("%.0f", F[3]); fratio = sprintf("%.2f", F[3] / D[3])
					of = sprintf("%.2f", T[3] / F[3]); fadd = sprintf("%+.2f", F[4] - D[4])
				}
				printf "| %s | %d | %.0f | %s | %.0f | %.2f | %s | %s | %s | %.2f | %s | %.2f | %+.2f | %.2f | %.2f | %+.2f |\n",
					label, D[2], D[3], fr, T[3], T[3] / D[3], rr[i], fratio, of,
					D[4], fadd, T[4], T[4] - D[4], D[5], T[5], T[5] - D[5]
			}
		}' "$OUT/direct.txt" "$floorf" "$OUT/through.txt" "$OUT/ratio-range.txt"
}
{
	echo "SMTP through the proxy vs direct: $(date -u +%Y-%m-%dT%H:%MZ), $rev$state, $(nproc) CPUs ($cpus), $(uname -r)"
	echo
	echo "| size | sessions | direct msg/s | floor msg/s | through msg/s | ratio | rounds' ratios | floor ratio | of floor | direct p50 ms | floor added p50 ms | through p50 ms | added p50 ms | direct p99 ms | through p99 ms | added p99 ms |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	table rates
	echo
	echo "Medians over $ROUNDS alternating rounds (${phases[*]}, ...); \"ratio\": through over direct;"
	echo "\"rounds' ratios\": the lowest and highest of each round's through over the same round's direct;"
	echo "\"floor ratio\": floor (a transparent relay that only copies bytes) over direct; \"of floor\":"
	echo "through over floor. Packets diverted (0 would mean the bridge was measured):"
	echo
	sed 's/^/    /' "$OUT/diverted.txt"
	echo
	echo "Busy share of each CPU (cpu0/cpu1/...) while smtp-source ran, medians:"
	echo
	echo "| size | sessions | direct: busy % per CPU | floor: busy % per CPU | through: busy % per CPU |"
	echo "|---|---|---|---|---|"
	table busy
} | tee "$OUT/bench-smtp.md"
echo "raw output in $OUT" >&2
