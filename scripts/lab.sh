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
# Usage: scripts/lab.sh up|down|status   (as root; LAB=prefix, default "rg")
# Namespaces are named $LAB-relay, $LAB-pc, $LAB-switch, $LAB-box, $LAB-router,
# $LAB-mx, $LAB-admin. All traffic stays inside them.
set -euo pipefail
LAB=${LAB:-rg}
NS=(relay pc switch box router mx admin)

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
	for n in "${NS[@]}"; do
		if ip netns pids "$(ns "$n")" >/dev/null 2>&1; then
			ip netns pids "$(ns "$n")" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		fi
	done
	for n in "${NS[@]}"; do ip netns del "$(ns "$n")" 2>/dev/null || true; done
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
	veth pc eth0 switch sw-pc
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
	addr admin eth0 10.255.0.2/24
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
