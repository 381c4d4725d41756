#!/usr/bin/env bash
# The relaygate lab: network namespaces that put the appliance between a
# routing L3 switch (with a mail relay and an infected PC behind it) and an
# internet router (with a remote MX behind it on a documentation prefix).
#
#   relay 10.10.0.25 ─┐                                           ┌─ mx 203.0.113.25
#   (2001:db8:10::25) ├─ switch ─ eth1 [br0 appliance] eth2 ─ router ─┤ (2001:db8:25::25)
#   pc    10.20.0.50 ─┘  10.0.255.2      10.0.255.3/29      10.0.255.1
#   (2001:db8:20::50)          eth0 (management 10.255.0.1) ─ admin 10.255.0.2
#
# With LAB_SWITCHES=DIR (an empty scratch directory) the PC sits behind an
# access switch and both switches answer SNMP on a management network:
#
#   pc 10.20.0.50 ── gi1-0-12 [acc0 access-2] gi1-0-48 ── sw-pc [switch core]
#   (00:14:22:20:00:50)  "3F room 12"
#   admin: bridge mgmt0 10.255.0.2 ─┬─ box eth0 10.255.0.1 (the appliance's management port)
#                                   ├─ core mgmt0 10.255.0.11
#                                   └─ access-2 mgmt0 10.255.0.12
#
# Each switch runs snmpd (v2c community and a v3 authPriv user, read-only),
# lldpd as its AgentX sub-agent (LLDP-MIB), and labbridgemib as pass_persist
# (IF-MIB ifAlias; on access-2 the bridge's BRIDGE-MIB and Q-BRIDGE-MIB).
# LAB_BIN names the directory holding labbridgemib (default: bin/).
#
# Usage: scripts/lab.sh up|down|status   (as root; LAB=prefix, default "rg")
# Namespaces are named $LAB-relay, $LAB-pc, $LAB-switch, $LAB-box, $LAB-router,
# $LAB-mx, $LAB-admin (and $LAB-access with LAB_SWITCHES). All traffic stays
# inside them.
set -euo pipefail
LAB=${LAB:-rg}
LAB_SWITCHES=${LAB_SWITCHES:-}
NS=(relay pc switch box router mx admin)
[ -n "$LAB_SWITCHES" ] && NS+=(access)

# The switches' SNMP credentials (internal/testutil/lab has the same).
SNMP_COMMUNITY=lab-public
SNMP_USER=labv3
SNMP_AUTH_PASS=lab-auth-secret
SNMP_PRIV_PASS=lab-priv-secret

ns() { echo "$LAB-$1"; }
x() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }

# veth NS1 IF1 NS2 IF2
veth() {
	ip link add "$2" netns "$(ns "$1")" type veth peer name "$4" netns "$(ns "$3")"
	x "$1" ip link set "$2" up
	x "$3" ip link set "$4" up
}
addr() { x "$1" ip addr add "$3" dev "$2" ${4:-}; }
addr6() { x "$1" ip -6 addr add "$3" dev "$2" nodad; }

down() {
	# access too, whether or not LAB_SWITCHES is set now.
	for n in "${NS[@]}" access; do
		if ip netns pids "$(ns "$n")" >/dev/null 2>&1; then
			ip netns pids "$(ns "$n")" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		fi
	done
	for n in "${NS[@]}" access; do ip netns del "$(ns "$n")" 2>/dev/null || true; done
}

up() {
	down
	for n in "${NS[@]}"; do
		ip netns add "$(ns "$n")"
		x "$n" ip link set lo up
		x "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
			net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
	done
	veth relay eth0 switch sw-relay
	if [ -n "$LAB_SWITCHES" ]; then
		access_switch
	else
		veth pc eth0 switch sw-pc
	fi
	veth switch sw-up box eth1
	veth box eth2 router rt-in
	veth router rt-mx mx eth0
	veth box eth0 admin eth0
	# The appliance's bridge ports carry no addresses; the daemon builds br0.
	x box ip link set eth1 down
	x box ip link set eth2 down

	addr relay eth0 10.10.0.25/24
	addr6 relay eth0 2001:db8:10::25/64
	x relay ip route add default via 10.10.0.1
	x relay ip -6 route add default via 2001:db8:10::1

	addr pc eth0 10.20.0.50/24
	addr6 pc eth0 2001:db8:20::50/64
	x pc ip route add default via 10.20.0.1
	x pc ip -6 route add default via 2001:db8:20::1

	addr switch sw-relay 10.10.0.1/24
	addr6 switch sw-relay 2001:db8:10::1/64
	addr switch sw-pc 10.20.0.1/24
	addr6 switch sw-pc 2001:db8:20::1/64
	addr switch sw-up 10.0.255.2/29
	addr6 switch sw-up 2001:db8:ff::2/64
	x switch ip route add default via 10.0.255.1
	x switch ip -6 route add default via 2001:db8:ff::1
	x switch sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

	addr router rt-in 10.0.255.1/29
	addr6 router rt-in 2001:db8:ff::1/64
	addr router rt-mx 203.0.113.1/24
	addr6 router rt-mx 2001:db8:25::1/64
	for p in 10.10.0.0/24 10.20.0.0/24; do x router ip route add "$p" via 10.0.255.2; done
	for p in 2001:db8:10::/64 2001:db8:20::/64; do x router ip -6 route add "$p" via 2001:db8:ff::2; done
	x router sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

	addr mx eth0 203.0.113.25/24
	addr6 mx eth0 2001:db8:25::25/64
	x mx ip route add default via 203.0.113.1
	x mx ip -6 route add default via 2001:db8:25::1

	addr box eth0 10.255.0.1/24
	if [ -n "$LAB_SWITCHES" ]; then
		management_network
		agents
	else
		addr admin eth0 10.255.0.2/24
	fi
}

# access_switch puts the Linux bridge acc0 of access-2 between the PC and the
# routing switch's sw-pc, with ports named and described like a real
# switch's (ifName, ifAlias).
access_switch() {
	veth pc eth0 access gi1-0-12
	veth access gi1-0-48 switch sw-pc
	x pc ip link set eth0 address 00:14:22:20:00:50
	x access ip link add acc0 type bridge stp_state 0 forward_delay 0
	for p in gi1-0-12 gi1-0-48; do x access ip link set "$p" master acc0; done
	x access ip link set acc0 up
	x access ip link set gi1-0-12 alias "3F room 12"
	x access ip link set gi1-0-48 alias "uplink core sw-pc"
	x switch ip link set sw-pc alias "downlink access-2"
}

# management_network makes the admin host the management switch: its bridge
# joins the box's management port and both switches' management ports.
management_network() {
	x admin ip link add mgmt0 type bridge stp_state 0 forward_delay 0
	x admin ip link set eth0 master mgmt0
	veth admin mg-core switch mgmt0
	veth admin mg-access access mgmt0
	x admin ip link set mg-core master mgmt0
	x admin ip link set mg-access master mgmt0
	x admin ip link set mgmt0 up
	addr admin mgmt0 10.255.0.2/24
	addr switch mgmt0 10.255.0.11/24
	addr access mgmt0 10.255.0.12/24
}

# agent HOST NAME MGMT_ADDR LLDP_PORTS [PASS_PERSIST...] starts snmpd and
# lldpd in HOST's namespace, with their files in $LAB_SWITCHES/NAME.
agent() {
	local host=$1 name=$2 mgmt=$3 ports=$4 d="$LAB_SWITCHES/$2"
	shift 4
	mkdir -p "$d/persist"
	cat >"$d/snmpd.conf" <<CONF
agentAddress udp:$mgmt:161
sysName $name
sysLocation relaygate lab
dontLogTCPWrappersConnects yes
view ro included .1
rocommunity $SNMP_COMMUNITY default -V ro
createUser $SNMP_USER SHA-256 $SNMP_AUTH_PASS AES $SNMP_PRIV_PASS
rouser $SNMP_USER priv -V ro
master agentx
agentXSocket unix:$d/agentx.sock
pass_persist .1.3.6.1.2.1.31.1.1.1.18 $LAB_BIN/labbridgemib -ifalias
CONF
	for pp in "$@"; do echo "pass_persist $pp" >>"$d/snmpd.conf"; done
	printf 'configure system hostname %s\nconfigure lldp tx-interval 2\n' "$name" >"$d/lldpd.conf"
	SNMP_PERSISTENT_DIR="$d/persist" x "$host" snmpd -M /dev/null -m '' -Lf "$d/snmpd.log" -C -c "$d/snmpd.conf" \
		-p "$d/snmpd.pid" </dev/null >/dev/null 2>&1
	for _ in $(seq 50); do [ -S "$d/agentx.sock" ] && break; sleep 0.1; done
	[ -S "$d/agentx.sock" ] || { echo "snmpd of $name did not start:" >&2; cat "$d/snmpd.log" >&2; exit 1; }
	x "$host" lldpd -u "$d/lldpd.sock" -x -X "$d/agentx.sock" -I "$ports" -m "$mgmt" -O "$d/lldpd.conf" \
		</dev/null >"$d/lldpd.log" 2>&1
}

agents() {
	LAB_BIN=${LAB_BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
	[ -x "$LAB_BIN/labbridgemib" ] || { echo "$LAB_BIN/labbridgemib missing (make labtools)" >&2; exit 1; }
	agent switch core 10.255.0.11 'sw-*'
	agent access access-2 10.255.0.12 'gi*' ".1.3.6.1.2.1.17 $LAB_BIN/labbridgemib -bridge acc0"
}

status() {
	for n in "${NS[@]}"; do
		echo "== $(ns "$n")"
		x "$n" ip -br addr 2>/dev/null || echo "(absent)"
	done
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
