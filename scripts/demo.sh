#!/usr/bin/env bash
# The relaygate demo: builds the namespace lab, starts the appliance in
# enforce mode, sends mail from the relay (it arrives) and from the infected
# PC (it is refused), shows what happened and how to look, and keeps the lab
# running until Ctrl-C. Run as root from the repository root (make demo).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "make demo needs root: it builds network namespaces, a bridge and nftables rules" >&2
	exit 1
fi
export LAB=${LAB:-rgdemo}
ROOT=$PWD
DIR=$ROOT/.lab/demo
BIN=$ROOT/bin
UI_PORT=${UI_PORT:-8443}
# The lab's switches (scripts/lab.sh) keep their agents' files here, where
# lldpd's own user can reach them.
export LAB_SWITCHES=/run/relaygate-lab-$LAB
. scripts/lab-config.sh
x() { local n=$1; shift; ip netns exec "$LAB-$n" "$@"; }
bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

pids=()
cleanup() {
	trap - INT TERM EXIT
	echo
	bold "tearing down"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	scripts/lab.sh down
	rm -rf "$LAB_SWITCHES"
	echo "done"
}
trap cleanup INT TERM EXIT

rm -rf "$DIR" && mkdir -p "$DIR/mx"
bold "building the lab ($LAB-*)"
rm -rf "$LAB_SWITCHES" && mkdir -m 755 -p "$LAB_SWITCHES"
scripts/lab.sh up
cat <<'TXT'
  relay 10.10.0.25 ─────────────────────┐                                             ┌─ mx 203.0.113.25
  (2001:db8:10::25)                     ├─ L3 switch ─ eth1 [br0 relaygate] eth2 ─ router ─┤ (2001:db8:25::25)
  pc    10.20.0.50 ─ access-2 gi1-0-12 ─┘   "core"           eth0: management 10.255.0.1
  (2001:db8:20::50)  "3F room 12"
  management network 10.255.0.0/24: the box's eth0, core 10.255.0.11, access-2 10.255.0.12
  (both switches answer SNMP v2c community lab-public, v3 user labv3, and run LLDP)
TXT

lab_config enforce "$DIR/data" "$(lab_locate_config 2c)" >"$DIR/relaygate.yaml"

x mx "$BIN/labmx" -listen 203.0.113.25:25 -listen '[2001:db8:25::25]:25' -dir "$DIR/mx" >"$DIR/labmx.log" 2>&1 &
pids+=($!)
bold "starting the appliance (enforce mode)"
x box "$BIN/appliance" run --config "$DIR/relaygate.yaml" >"$DIR/appliance.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'msg=serving' "$DIR/appliance.log" && break; sleep 0.2; done
grep -q 'msg=serving' "$DIR/appliance.log" || { cat "$DIR/appliance.log"; exit 1; }
TOKEN=$("$BIN/appliance" token create --data-dir "$DIR/data" --name demo)
echo "$TOKEN" >"$DIR/token"
sed -n '1,6p' "$DIR/appliance.log"

bold "ordinary traffic is bridged: ping from the PC to the MX"
x pc ping -c2 -W2 203.0.113.25 | tail -2

bold "the mail relay sends to the remote MX: it arrives"
x relay swaks --server 203.0.113.25 --from alice@corp.example --to bob@remote.example \
	--helo relay.corp.example --h-Subject "quarterly report" --body "Hello from the relay" --timeout 15 | grep -E '^(<-|<\*\*| ->)' | tail -6
sleep 0.5
echo "  the MX received (client address as the MX saw it):"
sed 's/^/    /' "$DIR/mx/messages.jsonl"

bold "the infected PC tries direct SMTP: refused at the SMTP level"
x pc swaks --server 203.0.113.25 --from "winner@lottery.example" --to "victim1@remote.example,victim2@remote.example" \
	--helo infected-pc --timeout 15 2>&1 | grep -E '^(<-|<\*\*| ->)' || true
echo "  ... and over IPv6:"
x pc swaks --server '[2001:db8:25::25]' --from "winner@lottery.example" --to "victim3@remote.example" \
	--helo infected-pc --timeout 15 2>&1 | grep -E '^<\*\*' || true

sleep 1
bold "events, from the API on the management port (GET /api/v1/events)"
x admin curl -sk -H "Authorization: Bearer $TOKEN" "https://10.255.0.1:8443/api/v1/events?limit=10" | sed 's/},{/},\n {/g'
echo

bold "how the diversion works: nft list ruleset (in the appliance's namespace)"
x box nft list ruleset | sed -n '/table bridge/,/^}/p' | grep -E 'table|chain|iifname|type filter' | sed 's/^/  /'
echo "  (full ruleset: ip netns exec $LAB-box nft list ruleset)"

# The UI and API on the host's loopback, forwarded into the admin namespace.
socat TCP-LISTEN:"$UI_PORT",bind=127.0.0.1,fork,reuseaddr \
	EXEC:"ip netns exec $LAB-admin socat STDIO TCP\:10.255.0.1\:8443" >"$DIR/forward.log" 2>&1 &
pids+=($!)

SETUP_TOKEN=$(cat "$DIR/data/setup-token" 2>/dev/null || true)
bold "the lab keeps running; look around"
cat <<TXT
  web UI:      https://127.0.0.1:$UI_PORT/  (forwarded to the management port; self-signed certificate)
               first start: enter the one-time setup token ${SETUP_TOKEN:-(see $DIR/appliance.log)}
               and choose the administrator's password; there is no default password
  API:         https://127.0.0.1:$UI_PORT/api/v1/  (bearer token in $DIR/token)
               curl -sk -H "Authorization: Bearer \$(cat $DIR/token)" https://127.0.0.1:$UI_PORT/api/v1/status
  events:      curl -sk -H "Authorization: Bearer \$(cat $DIR/token)" 'https://127.0.0.1:$UI_PORT/api/v1/events?kind=blocked'
  hosts:       curl -sk -H "Authorization: Bearer \$(cat $DIR/token)" https://127.0.0.1:$UI_PORT/api/v1/hosts
  where:       curl -sk -H "Authorization: Bearer \$(cat $DIR/token)" https://127.0.0.1:$UI_PORT/api/v1/hosts/10.20.0.50
               (location: switch access-2, port gi1-0-12 "3F room 12"; host card /hosts/10.20.0.50)
  switches:    ip netns exec $LAB-box snmpwalk -v2c -c lab-public 10.255.0.12 1.3.6.1.2.1.17.4.3.1.2
  metrics:     curl -sk -H "Authorization: Bearer \$(cat $DIR/token)" https://127.0.0.1:$UI_PORT/metrics
  rules:       ip netns exec $LAB-box nft list ruleset
  try again:   ip netns exec $LAB-pc swaks --server 203.0.113.25 --to x@remote.example
  logs:        $DIR/appliance.log   (MX: $DIR/mx/)
  Ctrl-C tears the lab down.
TXT
wait "${pids[1]}"
