#!/usr/bin/env bash
# bench-smtp.sh: SMTP messages per second, added latency and CPU per
# message through relaygate, against direct delivery and against other
# transparent relays on the same data path, all measured in the same run
# (issues 3, 8 and 20).
#
# The lab of scripts/lab.sh (LAB=rgbench) with smtp-sink on the MX
# (203.0.113.25:25) and the load from the relay host (10.10.0.25, a
# configured relay), in four phases:
#   direct:  the box namespace holds a plain Linux bridge (br0 over eth1 and
#            eth2, STP off), no relaygate at all;
#   floor:   br0 deleted, internal/testutil/splicerelay started on the
#            appliance's configuration: the same bridge, ruleset,
#            transparent listener and onward dialer as the appliance, but
#            it only copies bytes both ways (splice(2)), no SMTP. What a
#            transparent relay that does nothing else costs here (FLOOR=0
#            skips it);
#   haproxy: br0 deleted, the same bridge and diversion (splicerelay
#            -divert-only), and HAProxy (Debian's package) on the proxy
#            port as a transparent L4 relay: `bind :PORT transparent`,
#            `source 0.0.0.0 usesrc clientip`, `server orig 0.0.0.0` (the
#            original destination), `option splice-auto`, default threads.
#            What an admin would put inline to relay port 25 transparently,
#            without any SMTP awareness: the peer of issue 20 (HAPROXY=0
#            skips it). HAProxy 2.6 cannot mark its server-side sockets as
#            relaygate marks its own, so two policy rules send the box's
#            own port-25 packets to the same routing tables instead;
#   through: br0 deleted, the appliance (relaygate) started in enforce mode;
#            every connection is diverted to the proxy, which connects onward
#            from the relay's own address.
# The phases alternate in every round (direct, floor, haproxy, through,
# direct, ...; ROUNDS=3), so that other load on the machine hits all alike.
#
# Throughput pass, for each message size (10 KB, 1 MB) and concurrency (1,
# 20, 200 sessions):
#   - messages/s: smtp-source -s SESSIONS -m COUNT -l SIZE, timed from start
#     to exit (one message per connection, as a relay delivers);
#   - CPU per message: utime + stime of the relaying process (splicerelay,
#     HAProxy, the appliance) while smtp-source ran, over COUNT;
#   - CPU busy: each CPU's busy share (user, system, interrupts; not idle,
#     not steal) while smtp-source ran, to see which side saturates;
#   - latency: internal/testutil/smtpflood -mode load at the same
#     concurrency, one message per connection, per message the time from the
#     TCP connect to the 250 after the end of DATA; median and p99.
# Fixed-load pass (LOAD=1), for LOAD_ROWS (10 KB and 1 MB at 20 sessions):
#   smtpflood -mode load -rate offers LOAD_SHARE % (60) of the lowest median
#   messages/s any phase reached in the throughput pass, for LOAD_SECS (10)
#   seconds, in ROUNDS alternating rounds. Per message: the box's CPU time
#   (busy jiffies of /proc/stat: all CPUs unpinned, BOX_CPUS pinned; this
#   includes the kernel's packet work wherever it ran) and the relaying
#   process's utime + stime. At a rate every phase carries, the figures do
#   not depend on how the load generator and the sink share the CPUs; the
#   box's CPU over direct's is what the relay costs.
# System calls (STRACE=1, the default): one more fixed-load run of the first
#   LOAD_ROWS row for floor, haproxy and through under strace -c -f; a table
#   of calls per message. The fixed-load pass also reports each relaying
#   process's context switches and user/system time per message.
# Profiles (PROFILE=1): one more fixed-load run per LOAD_ROWS row for
#   haproxy and through, with `perf record -g -p PID` on the relaying
#   process and the appliance's own --cpuprofile; the top entries of each
#   are kept in $OUT/profile-*.txt.
# Prints Markdown tables; keeps raw output in $OUT.
#
# CPUs: in production the relay, the box and the MX are three machines;
# in this lab they share the machine's CPUs. By default (PIN=0) nothing is
# pinned: every relay pays for its cycles with the load generator's and the
# sink's, and pinning would add an inter-processor wake-up per hop on this
# VM. PIN=1 (with at least 2 CPUs) runs the hosts (smtp-source, smtpflood,
# smtp-sink) on HOST_CPUS (default: CPU 0) and the box's processes on
# BOX_CPUS (default: the other CPUs), in all phases alike.
#
# RPS=1 (with PIN=1) also steers each packet's receive work to the CPUs of
# the namespace that receives it (receive packet steering on every
# interface: the box's eth1 and eth2 to BOX_CPUS, all others to
# HOST_CPUS), as on three machines with their own NICs. In this VM each
# steered packet costs an inter-processor interrupt, which slows all
# phases (docs/benchmarks.md, 2026-11-27 afternoon); off by default.
#
# Usage: sudo scripts/bench-smtp.sh   (LAB=rgbench, ROUNDS=3, SCALE=1 multiplies
#        the message counts, RELAYGATE_BIN=dir with a prebuilt appliance,
#        OUT=dir for raw output and the tables, PIN=1, RPS=1, FLOOR=0,
#        HAPROXY=0, LOAD=0, LOAD_SHARE=60, LOAD_SECS=10, PROFILE=1, STRACE=0,
#        FLOOR_ARGS=-copy: the floor relay reads and writes through a buffer
#        in user space instead of splice(2), as a relay that looks at the
#        bytes must)
set -euo pipefail
cd "$(dirname "$0")/.."
LAB=${LAB:-rgbench}
SCALE=${SCALE:-1}
ROUNDS=${ROUNDS:-3}
MX=203.0.113.25
PORT=25
PROXY_PORT=10025
PIN=${PIN:-0}
RPS=${RPS:-0}
FLOOR=${FLOOR:-1}
HAPROXY=${HAPROXY:-1}
LOAD=${LOAD:-1}
LOAD_SHARE=${LOAD_SHARE:-60}
LOAD_SECS=${LOAD_SECS:-10}
PROFILE=${PROFILE:-0}
STRACE=${STRACE:-1}
FLOOR_ARGS=${FLOOR_ARGS:-}
# The routing tables (and marks) of package bridge: ReplyMark, OnwardMark.
REPLY_TABLE=$((0x2526))
ONWARD_TABLE=$((0x2527))
ncpu=$(nproc)
hz=$(getconf CLK_TCK)

# cpulist LIST: the CPUs of a list such as "0" or "1-3,5", one per word.
cpulist() {
	local part a b c
	for part in ${1//,/ }; do
		a=${part%-*} b=${part#*-}
		for ((c = a; c <= b; c++)); do echo -n "$c "; done
	done
}
if [ "$PIN" = 1 ] && [ "$ncpu" -ge 2 ]; then
	HOST_CPUS=${HOST_CPUS:-0}
	if [ "$ncpu" -eq 2 ]; then BOX_CPUS=${BOX_CPUS:-1}; else BOX_CPUS=${BOX_CPUS:-1-$((ncpu - 1))}; fi
	onhost=(taskset -c "$HOST_CPUS")
	onbox=(taskset -c "$BOX_CPUS")
	cpus="hosts on CPU $HOST_CPUS, box on CPU $BOX_CPUS"
	boxcpus=$(cpulist "$BOX_CPUS")
	boxwhat="the box's CPU $BOX_CPUS"
else
	onhost=()
	onbox=()
	cpus="unpinned"
	boxcpus=$(cpulist "0-$((ncpu - 1))")
	boxwhat="all $ncpu CPUs"
fi

if [ "$(id -u)" != 0 ]; then
	echo "bench-smtp: needs root (network namespaces, a bridge, nftables)" >&2
	exit 1
fi
need=(smtp-source smtp-sink go ip)
[ "$HAPROXY" = 0 ] || need+=(haproxy)
[ "$PROFILE" = 0 ] || need+=(perf)
[ "$STRACE" = 0 ] || need+=(strace)
for c in "${need[@]}"; do
	command -v "$c" >/dev/null || { echo "bench-smtp: $c missing (make deps)" >&2; exit 1; }
done

OUT=${OUT:-$(mktemp -d /tmp/relaygate-bench-smtp-XXXXXX)}
mkdir -p "$OUT/bin"
chmod 755 "$OUT"
BIN=${RELAYGATE_BIN:-$OUT/bin}
[ -n "${RELAYGATE_BIN:-}" ] || CGO_ENABLED=0 go build -o "$BIN/appliance" ./cmd/appliance
CGO_ENABLED=0 go build -o "$OUT/bin/smtpflood" ./internal/testutil/smtpflood
CGO_ENABLED=0 go build -o "$OUT/bin/splicerelay" ./internal/testutil/splicerelay
phases=(direct)
[ "$FLOOR" = 0 ] || phases+=(floor)
[ "$HAPROXY" = 0 ] || phases+=(haproxy)
phases+=(through)
: >"$OUT/rounds.txt"
: >"$OUT/load.txt"
: >"$OUT/diverted.txt"
: >"$OUT/raw.log"

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
	local m=0 c
	for c in $(cpulist "$1"); do m=$((m | 1 << c)); done
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
ip netns exec "$LAB-mx" "${onhost[@]}" smtp-sink -u nobody -m 1000 "$MX:$PORT" 4096 >"$OUT/sink.log" 2>&1 &
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
# The fixed-load pass: size and sessions, each also a row above.
load_rows=("10240 20" "1048576 20")

# cpustat: per CPU, its busy and total jiffies so far ("cpuN busy total ...").
cpustat() { awk '/^cpu[0-9]/ { b = $2 + $3 + $4 + $7 + $8; printf "%s %d %d ", $1, b, b + $5 + $6 }' /proc/stat; }
# cpubusy BEFORE AFTER: each CPU's busy percentage between two cpustat.
cpubusy() {
	awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
		for (i = 1; i < n; i += 3) printf "%s%.0f", (i > 1 ? " " : ""), 100 * (y[i+1] - x[i+1]) / (y[i+2] - x[i+2] + 1e-9) }'
}
# boxbusy: busy jiffies so far of the box's CPUs ($boxcpus).
boxbusy() {
	awk -v set=" $boxcpus " '/^cpu[0-9]/ && index(set, " " substr($1, 4) " ") { b += $2 + $3 + $4 + $7 + $8 } END { print b }' /proc/stat
}
# proccpu PID: utime + stime of the process (all its threads) in jiffies,
# 0 without a process (the direct phase).
proccpu() {
	[ -n "$1" ] || { echo 0; return; }
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
# procsw PID: voluntary and involuntary context switches of all its threads
# so far ("0 0" without a process).
procsw() {
	[ -n "$1" ] || { echo 0 0; return; }
	cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 } END { print v + 0, n + 0 }'
}
# procus PID: utime and stime of the process in jiffies ("0 0" without one).
procus() {
	[ -n "$1" ] || { echo 0 0; return; }
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'
}
# perms JIFFIES MESSAGES: milliseconds per message.
perms() { awk -v j="$1" -v n="$2" -v hz="$hz" 'BEGIN { printf "%.4f", 1000 * j / hz / n }'; }

# warmup: neighbour discovery, and the relay's first connections.
warmup() {
	x relay "${onhost[@]}" smtp-source -s 2 -m 20 -l 1024 -f bench@relay.lab.example -t sink@remote.example "$MX:$PORT" >/dev/null
}

# measure PHASE ROUND: the throughput pass, one line per row in
# $OUT/rounds.txt: "phase round size sessions rate p50 p99 load_rate cpu_ms
# busy...": smtp-source's rate, smtpflood's latencies and rate, the relaying
# process's CPU per message (-1 for direct), each CPU's busy percentage.
measure() {
	local phase=$1 r=$2 row size s n nl t0 t1 c0 c1 p0 p1 busy rate lat ms p50 p99 lrate
	warmup
	for row in "${rows[@]}"; do
		read -r size s n nl <<<"$row"
		c0=$(cpustat)
		p0=$(proccpu "$rpid")
		t0=$(date +%s.%N)
		x relay "${onhost[@]}" timeout 300 smtp-source -s "$s" -m "$n" -l "$size" \
			-f bench@relay.lab.example -t sink@remote.example "$MX:$PORT" >>"$OUT/$phase-source.log" 2>&1
		t1=$(date +%s.%N)
		p1=$(proccpu "$rpid")
		c1=$(cpustat)
		busy=$(cpubusy "$c0" "$c1")
		rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
		ms=-1
		[ -z "$rpid" ] || ms=$(perms $((p1 - p0)) "$n")
		lat=$(x relay "${onhost[@]}" timeout 300 "$OUT/bin/smtpflood" -mode load -target "$MX:$PORT" -n "$nl" -concurrency "$s" -size "$size" || true)
		echo "$phase-$r size=$size sessions=$s source_msgs=$n source_rate=$rate cpu_ms_per_msg=$ms cpu_busy%=${busy// //} smtpflood: $lat" | tee -a "$OUT/raw.log" >&2
		p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$lat")
		p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$lat")
		lrate=$(sed -n 's/.*per_second=\([0-9.]*\).*/\1/p' <<<"$lat")
		echo "$phase $r $size $s $rate ${p50:-0} ${p99:-0} ${lrate:-0} $ms $busy" >>"$OUT/rounds.txt"
	done
}

# awk: the median of a space-separated list of numbers ("" when empty).
AWK_MEDIAN='
	function median(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		if (n == 0) return ""
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}'

# offered SIZE SESSIONS: the fixed load's rate in messages/s, LOAD_SHARE %
# of the lowest median rate of any phase in the throughput pass, with
# smtp-source or with smtpflood (the fixed load's generator), at least 1.
offered() {
	awk -v size="$1" -v s="$2" -v share="$LOAD_SHARE" "$AWK_MEDIAN"'
		$3 == size && $4 == s { v[$1] = v[$1] " " $5; w[$1] = w[$1] " " $8 }
		END {
			for (p in v) for (m = 1; m <= 2; m++) {
				x = median(m == 1 ? v[p] : w[p])
				if (lo == "" || x + 0 < lo + 0) lo = x
			}
			printf "%.0f", (lo * share / 100 < 1 ? 1 : lo * share / 100)
		}' "$OUT/rounds.txt"
}

# fixed PHASE ROUND SIZE SESSIONS RATE FILE: one fixed-load run; a line in
# FILE: "phase round size sessions offered delivered box_ms proc_ms
# voluntary involuntary user_ms sys_ms": the last four per message, of the
# relaying process (its context switches, its utime and its stime).
fixed() {
	local phase=$1 r=$2 size=$3 s=$4 rate=$5 file=$6 n b0 b1 p0 p1 lat got ms v0 i0 v1 i1 u0 s0 u1 s1 sw
	n=$((rate * LOAD_SECS))
	b0=$(boxbusy)
	p0=$(proccpu "$rpid")
	read -r v0 i0 < <(procsw "$rpid")
	read -r u0 s0 < <(procus "$rpid")
	lat=$(x relay "${onhost[@]}" timeout 300 "$OUT/bin/smtpflood" -mode load -target "$MX:$PORT" \
		-n "$n" -concurrency "$s" -size "$size" -rate $((rate * 60)) || true)
	p1=$(proccpu "$rpid")
	read -r v1 i1 < <(procsw "$rpid")
	read -r u1 s1 < <(procus "$rpid")
	b1=$(boxbusy)
	got=$(sed -n 's/.*per_second=\([0-9.]*\).*/\1/p' <<<"$lat")
	ms=-1
	[ -z "$rpid" ] || ms=$(perms $((p1 - p0)) "$n")
	sw=$(awk -v v=$((v1 - v0)) -v i=$((i1 - i0)) -v n="$n" 'BEGIN { printf "%.2f %.2f", v / n, i / n }')
	echo "$phase-$r fixed load size=$size sessions=$s offered=$rate/s box_ms_per_msg=$(perms $((b1 - b0)) "$n") proc_ms_per_msg=$ms cswitch_per_msg=${sw/ //} smtpflood: $lat" | tee -a "$OUT/raw.log" >&2
	echo "$phase $r $size $s $rate ${got:-0} $(perms $((b1 - b0)) "$n") $ms $sw $(perms $((u1 - u0)) "$n") $(perms $((s1 - s0)) "$n")" >>"$file"
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
  level: warn
proxy:
  port: $PROXY_PORT" >"$OUT/appliance.yaml"
cat >"$OUT/haproxy.cfg" <<CFG
global
	maxconn 5000

defaults
	mode tcp
	maxconn 5000
	timeout connect 10s
	timeout client 60s
	timeout server 60s

frontend smtp
	bind :$PROXY_PORT transparent
	default_backend orig

backend orig
	option splice-auto
	source 0.0.0.0 usesrc clientip
	server orig 0.0.0.0
CFG
[ "$HAPROXY" = 0 ] || haproxy -c -q -f "$OUT/haproxy.cfg"

apid=
# appliance_up [COMMAND...]: the appliance, or COMMAND on its configuration
# (splicerelay), in the box namespace until diverting.
appliance_up() {
	local cmd=("$@") i
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
# haproxy_rules add|del: the policy rules that route HAProxy's packets as
# the appliance's marks route its own: from port 25 (answers to the relay)
# by the reply table, to port 25 (onward) by the onward table. Only the
# box's own packets (iif lo); diverted ones have their mark's rule first.
haproxy_rules() {
	x box ip rule "$1" pref 10030 iif lo ipproto tcp sport "$PORT" lookup "$REPLY_TABLE"
	x box ip rule "$1" pref 10031 iif lo ipproto tcp dport "$PORT" lookup "$ONWARD_TABLE"
}

# phase_up PHASE [PROFILE]: the box for PHASE; rpid is the relaying
# process (none for direct). With PROFILE, the appliance writes its CPU
# profile there.
rpid=
hpid=
phase_up() {
	local i
	rpid=
	case $1 in
	direct) bridge_up ;;
	floor)
		appliance_up "$OUT/bin/splicerelay" $FLOOR_ARGS -config
		rpid=$apid
		;;
	haproxy)
		ip netns exec "$LAB-box" "${onbox[@]}" haproxy -db -f "$OUT/haproxy.cfg" >>"$OUT/haproxy.log" 2>&1 &
		hpid=$!
		pids+=($hpid)
		for i in $(seq 50); do
			x box ss -Hltn "sport = :$PROXY_PORT" | grep -q . && break
			kill -0 "$hpid" 2>/dev/null || { cat "$OUT/haproxy.log" >&2; exit 1; }
			sleep 0.1
		done
		appliance_up "$OUT/bin/splicerelay" -divert-only -config
		haproxy_rules add
		rpid=$hpid
		;;
	through)
		if [ -n "${2:-}" ]; then
			appliance_up "$BIN/appliance" run --cpuprofile "$2" --config
		else
			appliance_up
		fi
		rpid=$apid
		;;
	esac
}
# phase_down PHASE LABEL
phase_down() {
	case $1 in
	direct) bridge_down ;;
	haproxy)
		appliance_down "$2"
		haproxy_rules del
		kill "$hpid"
		wait "$hpid" || true
		;;
	*) appliance_down "$2" ;;
	esac
	rpid=
}

# The throughput pass.
for r in $(seq "$ROUNDS"); do
	for phase in "${phases[@]}"; do
		phase_up "$phase"
		measure "$phase" "$r"
		phase_down "$phase" "round $r, $phase"
	done
done

# The fixed-load pass, at one rate per row for all phases and rounds.
rates=()
if [ "$LOAD" = 1 ]; then
	for row in "${load_rows[@]}"; do rates+=("$(offered $row)"); done
	for r in $(seq "$ROUNDS"); do
		for phase in "${phases[@]}"; do
			phase_up "$phase"
			warmup
			for i in "${!load_rows[@]}"; do fixed "$phase" "$r" ${load_rows[$i]} "${rates[$i]}" "$OUT/load.txt"; done
			phase_down "$phase" "fixed load, round $r, $phase"
		done
	done
fi

# System calls per message (STRACE=1): strace -c -f on the relaying process
# during one more fixed-load run of the first load row. strace slows every
# system call down, so this pass counts calls; its times are not read.
if [ "$STRACE" = 1 ] && [ "$LOAD" = 1 ]; then
	read -r size s <<<"${load_rows[0]}"
	for phase in floor haproxy through; do
		[[ " ${phases[*]} " == *" $phase "* ]] || continue
		phase_up "$phase"
		warmup
		strace -c -f -p "$rpid" -o "$OUT/strace-$phase.txt" 2>>"$OUT/strace.log" &
		stpid=$!
		sleep 1
		fixed "$phase" strace "$size" "$s" "${rates[0]}" "$OUT/strace-load.txt"
		kill -INT "$stpid" 2>/dev/null || true
		wait "$stpid" || true
		phase_down "$phase" "strace, $phase"
	done
	strace_msgs=$((rates[0] * LOAD_SECS))
fi

# Profiles of HAProxy and the appliance at the fixed load.
if [ "$PROFILE" = 1 ] && [ "$LOAD" = 1 ]; then
	for i in "${!load_rows[@]}"; do
		read -r size s <<<"${load_rows[$i]}"
		for phase in haproxy through; do
			[[ " ${phases[*]} " == *" $phase "* ]] || continue
			name=$phase-$size-$s
			phase_up "$phase" "$OUT/$name.pprof"
			warmup
			perf record -q -F 499 -p "$rpid" -o "$OUT/$name.perf" -- sleep $((LOAD_SECS + 1)) 2>>"$OUT/perf.log" &
			perfpid=$!
			fixed "$phase" profile "$size" "$s" "${rates[$i]}" "$OUT/profile-load.txt"
			wait "$perfpid" || true
			phase_down "$phase" "profile, $phase"
			{
				echo "perf, $phase, $size octets, $s sessions, ${rates[$i]} msg/s offered: self time by symbol"
				perf report -i "$OUT/$name.perf" --stdio --sort dso,sym --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' || true
				if [ "$phase" = through ]; then
					echo
					echo "go tool pprof -top and -top -cum (the appliance's whole run: start, warm-up, this load)"
					go tool pprof -top -nodecount=25 "$BIN/appliance" "$OUT/$name.pprof" 2>/dev/null || true
					go tool pprof -top -cum -nodecount=60 "$BIN/appliance" "$OUT/$name.pprof" 2>/dev/null || true
				fi
			} >"$OUT/profile-$name.txt"
		done
	done
fi

# The tables.
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
state=""
if [ -n "$(git status --porcelain -- smtpproxy 2>/dev/null)" ]; then state=" with uncommitted proxy work"; fi
# report: the Markdown tables from rounds.txt and load.txt.
report() {
	awk -v ncpu="$ncpu" -v boxwhat="$boxwhat" "$AWK_MEDIAN"'
		function lo(list,   a, n, i, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
		function hi(list,   a, n, i, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
		# col P K C: the list over the rounds of column C of phase P, row K
		# (of table tab).
		function col(P, K, C,   r, f, out) {
			for (r = 1; r <= rounds; r++) if ((tab, P, K, r) in V) { split(V[tab, P, K, r], f, " "); out = out " " f[C] }
			return out
		}
		# ratios A B K C: each round'"'"'s A over B (column C), and their median.
		function ratios(A, B, K, C,   r, x, y, out, l) {
			for (r = 1; r <= rounds; r++) if ((tab, A, K, r) in V && (tab, B, K, r) in V) {
				split(V[tab, A, K, r], x, " "); split(V[tab, B, K, r], y, " ")
				if (y[C] + 0 > 0 && x[C] + 0 >= 0) { out = out sprintf("%s%.2f", (out == "" ? "" : ", "), x[C] / y[C]); l = l " " x[C] / y[C] }
			}
			return l == "" ? "-" : sprintf("%.2f (%s)", median(l), out)
		}
		function rate(P, K,   l) {
			l = col(P, K, 3)
			return l == "" ? "-" : sprintf("%.0f (%.0f-%.0f)", median(l), lo(l), hi(l))
		}
		function of(A, B, K, C,   a, b) {
			a = median(col(A, K, C)); b = median(col(B, K, C))
			return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b)
		}
		# added P K C FORMAT: the median of phase P minus direct'"'"'s.
		function added(P, K, C, fmt,   a, d) {
			a = median(col(P, K, C)); d = median(col("direct", K, C))
			return (a == "" || d == "") ? "-" : sprintf(fmt, a - d)
		}
		function cpu(P, K, C,   l) {
			l = col(P, K, C)
			return (l == "" || median(l) < 0) ? "-" : sprintf("%.3f (%.3f-%.3f)", median(l), lo(l), hi(l))
		}
		function busy(P, K,   l, i, out) {
			if (col(P, K, 3) == "") return "-"
			for (i = 0; i < ncpu; i++) { l = col(P, K, 8 + i); out = out (i ? "/" : "") sprintf("%.0f", median(l)) }
			return out
		}
		function med(P, K, C,   l) {
			l = col(P, K, C)
			return l == "" ? "-" : sprintf("%.2f", median(l))
		}
		function label(size, s) { return (size >= 1048576 ? int(size / 1048576) " MB" : int(size / 1024) " KB") " | " s }
		# V[table, phase, row, round]: "x x" and the fields from the rate on,
		# so that field C is column C of col(); table 1: the throughput
		# pass, 2: the fixed load; keys[table, i]: the rows in order.
		{
			T = FILENAME == ARGV[1] ? 1 : 2
			K = $3 " " $4
			if (!((T, K) in seen)) { seen[T, K] = 1; keys[T, ++nk[T]] = K }
			line = "x x"
			for (i = 5; i <= NF; i++) line = line " " $i
			V[T, $1, K, $2] = line
			if ($2 > rounds) rounds = $2
		}
		# table WHAT HEADER: a Markdown table of the pass in tab, one line
		# per row: size and sessions, then the columns of cells(WHAT).
		function table(what, header,   k, K, z, sep, n) {
			print "| size | sessions | " header " |"
			n = gsub(/\|/, "|", header) + 3
			sep = "|"
			for (k = 0; k < n; k++) sep = sep "---|"
			print sep
			for (k = 1; k <= nk[tab]; k++) {
				K = keys[tab, k]; split(K, z, " ")
				print "| " label(z[1], z[2]) " | " cells(what, K) " |"
			}
		}
		function cells(what, K,   d, h, t, sep) {
			sep = " | "
			if (what == "rates")
				return rate("direct", K) sep rate("floor", K) sep rate("haproxy", K) sep rate("through", K) sep \
					of("floor", "direct", K, 3) sep of("haproxy", "direct", K, 3) sep of("through", "direct", K, 3) sep \
					of("through", "floor", K, 3) sep ratios("through", "haproxy", K, 3)
			if (what == "latency") {
				h = median(col("haproxy", K, 4)); t = median(col("through", K, 4))
				return sprintf("%.2f", median(col("direct", K, 4))) sep added("floor", K, 4, "%+.2f") sep \
					added("haproxy", K, 4, "%+.2f") sep added("through", K, 4, "%+.2f") sep \
					(h == "" || t == "" ? "-" : sprintf("%+.2f", t - h)) sep \
					sprintf("%.2f", median(col("direct", K, 5))) sep added("floor", K, 5, "%+.2f") sep \
					added("haproxy", K, 5, "%+.2f") sep added("through", K, 5, "%+.2f")
			}
			if (what == "cpu")
				return cpu("floor", K, 7) sep cpu("haproxy", K, 7) sep cpu("through", K, 7) sep \
					ratios("through", "haproxy", K, 7) sep of("through", "floor", K, 7)
			if (what == "busy")
				return busy("direct", K) sep busy("floor", K) sep busy("haproxy", K) sep busy("through", K)
			if (what == "switches")
				return med("floor", K, 7) sep med("haproxy", K, 7) sep med("through", K, 7) sep \
					med("floor", K, 8) sep med("haproxy", K, 8) sep med("through", K, 8) sep \
					med("floor", K, 9) sep med("haproxy", K, 9) sep med("through", K, 9) sep \
					med("floor", K, 10) sep med("haproxy", K, 10) sep med("through", K, 10)
			# what == "load"
			d = median(col("direct", K, 5)); h = median(col("haproxy", K, 5)); t = median(col("through", K, 5))
			return sprintf("%.0f", median(col("direct", K, 3))) sep \
				sprintf("%.0f", lo(col("direct", K, 4) col("floor", K, 4) col("haproxy", K, 4) col("through", K, 4))) sep \
				cpu("direct", K, 5) sep cpu("floor", K, 5) sep cpu("haproxy", K, 5) sep cpu("through", K, 5) sep \
				added("floor", K, 5, "%+.3f") sep added("haproxy", K, 5, "%+.3f") sep added("through", K, 5, "%+.3f") sep \
				(d == "" || h == "" || t == "" || h - d <= 0 ? "-" : sprintf("%.2f", (t - d) / (h - d))) sep \
				cpu("floor", K, 6) sep cpu("haproxy", K, 6) sep cpu("through", K, 6) sep ratios("through", "haproxy", K, 6)
		}
		END {
			tab = 1
			table("rates", "direct msg/s | floor msg/s | HAProxy msg/s | relaygate msg/s | floor / direct | HAProxy / direct | relaygate / direct | relaygate / floor | relaygate / HAProxy (each round)")
			print ""
			print "Latency per message (smtpflood, connect to the reply to the end of DATA), medians; added: over direct."
			print ""
			table("latency", "direct p50 ms | floor added p50 | HAProxy added p50 | relaygate added p50 | relaygate - HAProxy p50 | direct p99 ms | floor added p99 | HAProxy added p99 | relaygate added p99")
			print ""
			print "CPU per message of the relaying process (utime + stime while smtp-source ran, over its messages), ms, median (lowest-highest):"
			print ""
			table("cpu", "floor | HAProxy | relaygate | relaygate / HAProxy (each round) | relaygate / floor")
			print ""
			print "Busy share of each CPU (cpu0/cpu1/...) while smtp-source ran, medians:"
			print ""
			table("busy", "direct | floor | HAProxy | relaygate")
			if (nk[2] == 0) exit
			tab = 2
			print ""
			print "At a fixed offered load (smtpflood -rate): CPU per message in ms, median (lowest-highest); box: busy time of " boxwhat " over the messages; added: over direct at the same rate; process: the relaying process'"'"'s utime + stime."
			print ""
			table("load", "offered msg/s | delivered msg/s (lowest of all runs) | box: direct | box: floor | box: HAProxy | box: relaygate | added: floor | added: HAProxy | added: relaygate | added: relaygate / HAProxy | process: floor | process: HAProxy | process: relaygate | process: relaygate / HAProxy (each round)")
			print ""
			print "The relaying process at the same fixed load, per message, medians: its context switches (voluntary: it waited, in epoll_wait, futex, nanosleep; involuntary: it was preempted) and its user and system time in ms."
			print ""
			table("switches", "voluntary: floor | voluntary: HAProxy | voluntary: relaygate | involuntary: floor | involuntary: HAProxy | involuntary: relaygate | user ms: floor | user ms: HAProxy | user ms: relaygate | system ms: floor | system ms: HAProxy | system ms: relaygate")
		}' "$OUT/rounds.txt" "$OUT/load.txt"
}
# strace_table MESSAGES: calls per message of every system call any relay
# made at least 0.05 times per message, floor, HAProxy, relaygate.
strace_table() {
	local f
	for f in floor haproxy through; do
		[ -f "$OUT/strace-$f.txt" ] || continue
		awk -v p="$f" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { print p, $NF, $4 }' "$OUT/strace-$f.txt"
	done | awk -v n="$1" '
		{ c[$1, $2] = $3; t[$1] += $3; if (!($2 in seen)) { seen[$2] = 1; names[++k] = $2 } }
		END {
			print "| system call | floor | HAProxy | relaygate |"
			print "|---|---|---|---|"
			for (i = 1; i <= k; i++) {
				s = names[i]
				if (c["floor", s] / n < 0.05 && c["haproxy", s] / n < 0.05 && c["through", s] / n < 0.05) continue
				printf "| %s | %.2f | %.2f | %.2f |\n", s, c["floor", s] / n, c["haproxy", s] / n, c["through", s] / n
			}
			printf "| all | %.2f | %.2f | %.2f |\n", t["floor"] / n, t["haproxy"] / n, t["through"] / n
		}'
}
{
	echo "SMTP through relaygate, HAProxy and the floor relay vs direct: $(date -u +%Y-%m-%dT%H:%MZ), $rev$state, $ncpu CPUs ($cpus), $(uname -r), SCALE=$SCALE"
	echo
	report
	echo
	if [ -n "${strace_msgs:-}" ]; then
		echo
		echo "System calls of the relaying process per message (strace -c -f, ${load_rows[0]% *} octets, ${load_rows[0]#* } sessions, ${rates[0]} msg/s offered for ${LOAD_SECS} s):"
		echo
		strace_table "$strace_msgs"
	fi
	echo
	echo "Medians over $ROUNDS alternating rounds (${phases[*]}, ...), with the lowest and highest"
	echo "round in brackets; \"relaygate\" is the appliance (phase through). Packets diverted per"
	echo "run (0 would mean the bridge was measured):"
	echo
	sed 's/^/    /' "$OUT/diverted.txt"
	if grep -q 'failed=[1-9]' "$OUT/raw.log"; then
		echo
		echo "Some smtpflood messages failed (\"failed=\" in $OUT/raw.log):"
		echo
		grep 'failed=[1-9]' "$OUT/raw.log" | sed 's/^/    /'
	fi
} | tee "$OUT/bench-smtp.md"
echo "raw output in $OUT" >&2
