#!/usr/bin/env bash
# End-to-end test of the appliance image (run by `make image-test`, as root,
# after `make image`). Boots the qcow2 in QEMU (TCG, UEFI/OVMF) with three
# virtio NICs whose taps are bridged into test namespaces:
#
#   rgimg-mgmt  admin 192.168.77.1 + dnsmasq (DHCP)  ── NIC 1 (PCI 00:03) management
#   rgimg-lan   pc 10.77.0.10, relay 10.77.0.25      ── NIC 2 (PCI 00:04) inside
#   rgimg-wan   router 10.77.0.1, mx 10.77.0.26      ── NIC 3 (PCI 00:05) outside
#
# QEMU runs in rgimg-vm, which holds the taps; each tap is bridged to a veth
# whose peer is eth0 of the host namespace. The NICs are given on the QEMU
# command line in the order outside, management, inside, so the mapping must
# come from PCI order, not from probe order.
#
# Checks: the update bundle verifies and applies (Go updater, stand-in
# partitions; imagetest/), the console banner on the serial log (version,
# port mapping, management address from DHCP, HTTPS URL, certificate
# fingerprint, data partition grown to the disk), the API answering over
# HTTPS with that certificate, ordinary traffic and SMTP (monitor mode)
# crossing the bridge; the first administrator created with the console's
# setup token, an API token, enforce mode set through the API (the relay's
# mail reaches the MX from its own address, the PC gets 554); the
# management address API: read back, a bad setting refused per field, a
# static address applied (the API answers there, the console shows it), then
# DHCP again.
# Then the A/B update, entirely through the API of the running appliance
# (AB=0 skips it): the update bundle of a second version is built
# (image/build.sh with BUNDLE_ONLY=1, from the cached root file system) and
# uploaded with POST /api/v1/system/update and its SHA-256 (an unsigned
# copy of its manifest is refused first and changes nothing); the appliance
# writes its inactive slot and ESP entry and reboots into a trial boot of
# slot b, which passes the health check and is blessed, keeping the
# configuration. Then a deliberately broken bundle (the second version's
# with a root file system of noise, manifest, signature and checksum
# consistent) is
# uploaded the same way: its one trial boot of slot a fails and the
# appliance comes back on slot b by itself.
# Last, a power cycle (no shutdown): same version, configuration, address
# and certificate.
# Environment: VERSION, IMAGE (qcow2; default dist/relaygate-VERSION-amd64.qcow2),
# BIN (appliance binary for the second version), SIGNING_KEY (the key make image
# signed with; default its test key in .cache/image), AB, KEEP=1 keeps the work directory,
# HOLD=1 keeps the VM running for 15 minutes after a failure (to look at it).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
P=rgimg
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
IMAGE=${IMAGE:-dist/relaygate-$VERSION-amd64.qcow2}
t0=$(date +%s)
log() { echo "image-test: [$(($(date +%s) - t0))s] $*"; }
fail() { echo "image-test: FAIL: $*" >&2; [ "${HOLD:-}" = 1 ] && { echo "image-test: HOLD: VM kept running for 900 s" >&2; sleep 900; }; exit 1; }
# soft_fail: a failed check after which the other checks are still worth running.
soft_failures=()
soft_fail() { echo "image-test: FAIL: $*" >&2; soft_failures+=("$*"); }

[ "$(id -u)" = 0 ] || fail "must run as root (namespaces, taps)"
[ -r "$IMAGE" ] || fail "$IMAGE missing: run make image (with the same VERSION)"
[ -x bin/labmx ] || fail "bin/labmx missing: make labtools"
need=()
for t in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils dnsmasq:dnsmasq-base swaks:swaks \
	openssl:openssl curl:curl; do
	command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || need+=(ovmf)
if [ "${#need[@]}" -gt 0 ]; then
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

work=$(mktemp -d /tmp/rgimg-test.XXXXXX)
serial=$work/serial.log
qemu_pid=""
pids=()  # dnsmasq, labmx
# Everything started here is stopped here: QEMU, dnsmasq, labmx (by the
# processes left in our namespaces), then the namespaces themselves.
cleanup() {
	local rc=$? ns
	: >"$work/vm-stop"
	[ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
	[ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null
	# QEMU takes a moment to exit on SIGTERM; then anything left in our
	# namespaces goes, before the namespaces themselves.
	[ -n "$qemu_pid" ] && timeout 10 tail --pid="$qemu_pid" -f /dev/null 2>/dev/null
	for ns in vm mgmt lan wan; do
		ip netns pids "$P-$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$P-$ns" 2>/dev/null
	done
	if [ "$rc" != 0 ] && [ -r "$serial" ]; then
		echo "---- last 60 lines of the serial log ($serial) ----" >&2
		tail -n 60 "$serial" | tr -d '\r' >&2
	fi
	if [ "${KEEP:-}" = 1 ] || [ "$rc" != 0 ]; then
		echo "image-test: work directory kept: $work" >&2
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

x() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }

# ---- the update bundle, read by the appliance's Go updater (no VM) ----
bundle=${IMAGE%.qcow2}.update.tar.gz
[ -r "$bundle" ] || fail "$bundle missing: run make image"
log "update bundle: verify and apply to stand-in slots (go test ./imagetest)"
RELAYGATE_BUNDLE=$(readlink -f "$bundle") CGO_ENABLED=0 "${GO:-go}" test -tags imagetest -count=1 ./imagetest ||
	fail "the update bundle does not apply"

# ---- namespaces and links ----
for ns in vm mgmt lan wan; do
	ip netns del "$P-$ns" 2>/dev/null || true
	ip netns add "$P-$ns"
	x "$ns" ip link set lo up
	x "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
		net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
for ns in mgmt lan wan; do
	x vm ip tuntap add "tap-$ns" mode tap
	x vm ip link add "br-$ns" type bridge
	ip link add "v-$ns" netns "$P-vm" type veth peer name eth0 netns "$P-$ns"
	x vm ip link set "tap-$ns" master "br-$ns"
	x vm ip link set "v-$ns" master "br-$ns"
	for l in "tap-$ns" "v-$ns" "br-$ns"; do x vm ip link set "$l" up; done
	x "$ns" ip link set eth0 up
done
x mgmt ip addr add 192.168.77.1/24 dev eth0
x lan ip addr add 10.77.0.10/24 dev eth0
x lan ip addr add 10.77.0.25/24 dev eth0
x wan ip addr add 10.77.0.1/24 dev eth0
x wan ip addr add 10.77.0.26/24 dev eth0

# DHCP for the management port; the lease pins the MAC to .50.
ip netns exec "$P-mgmt" dnsmasq --keep-in-foreground --port=0 --no-resolv --bind-interfaces --interface=eth0 \
	--dhcp-range=192.168.77.50,192.168.77.59,255.255.255.0,1h --dhcp-host=52:54:00:77:00:01,192.168.77.50 \
	--dhcp-leasefile="$work/leases" --pid-file="$work/dnsmasq.pid" --user=root --log-dhcp \
	>"$work/dnsmasq.log" 2>&1 &
pids+=($!)
# The remote MX, behind the "router".
mkdir -p "$work/mx"
ip netns exec "$P-wan" "$top/bin/labmx" -listen 10.77.0.26:25 -dir "$work/mx" >"$work/labmx.log" 2>&1 &
pids+=($!)

# ---- the VM ----
# A 4 GiB overlay of the image: the data partition must grow into it.
qemu-img create -q -f qcow2 -b "$(readlink -f "$IMAGE")" -F qcow2 "$work/disk.qcow2" 4G
disk=$work/disk.qcow2
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
# The serial log is read from serial_off on: a reboot inside the running
# VM (update, fallback) appends to the same file, and only the lines of the
# boots since then count.
serial_off=0
slog() { tail -c +$((serial_off + 1)) "$serial" | tr -d '\r'; }
# mark_reboot: from now on, only what the serial console prints next counts.
mark_reboot() { serial_off=$(stat -c %s "$serial"); }
# The VM runs with -no-reboot: a reboot of the guest (an update's trial
# boot, a failed trial) ends QEMU, and the loop here starts it again on the
# same disk and EFI variables, as firmware does after a reset. (OVMF's own
# warm reset takes two minutes under TCG; a fresh start takes seconds.) The
# serial log is appended to across these restarts; $qemu_pid is the loop's.
boot() {
	: >"$serial"
	serial_off=0
	rm -f "$work/vm-stop"
	(
		while :; do
			ip netns exec "$P-vm" qemu-system-x86_64 -accel tcg -cpu max -machine q35 -smp 2 -m 1024 -no-reboot \
				-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
				-drive if=pflash,format=raw,file="$work/vars.fd" \
				-drive file="$disk",if=virtio,format=qcow2 \
				-netdev tap,id=nw,ifname=tap-wan,script=no,downscript=no \
				-device virtio-net-pci,netdev=nw,mac=52:54:00:77:00:03,addr=0x5 \
				-netdev tap,id=nm,ifname=tap-mgmt,script=no,downscript=no \
				-device virtio-net-pci,netdev=nm,mac=52:54:00:77:00:01,addr=0x3 \
				-netdev tap,id=nl,ifname=tap-lan,script=no,downscript=no \
				-device virtio-net-pci,netdev=nl,mac=52:54:00:77:00:02,addr=0x4 \
				-chardev file,id=ser0,path="$serial",append=on -serial chardev:ser0 \
				-display none -monitor none >>"$work/qemu.log" 2>&1 || exit
			[ -e "$work/vm-stop" ] && exit 0
			echo "image-test: the guest rebooted; QEMU started again" >>"$work/qemu.log"
		done
	) &
	qemu_pid=$!
}
# stop_vm: pull the plug (no shutdown).
stop_vm() {
	: >"$work/vm-stop"
	ip netns pids "$P-vm" 2>/dev/null | xargs -r kill 2>/dev/null || true
	wait "$qemu_pid" 2>/dev/null || true
	qemu_pid=""
}

# wait_for PATTERN SECONDS: until PATTERN (extended regexp) is in the serial log.
wait_for() {
	local deadline=$(($(date +%s) + $2))
	while ! slog | grep -Eq "$1"; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "no '$1' on the serial console within $2 s"
		kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited: $(cat "$work/qemu.log")"
		sleep 2
	done
}
# status_block: the newest banner block on the serial log.
status_block() { slog | awk '/^==== relaygate /{b=""} {b=b $0 "\n"} END{printf "%s", b}'; }
# console KEY: the newest value of "relaygate-console: KEY=..." on the serial log.
console() { slog | sed -n "s/^relaygate-console: $1=//p" | tail -n1; }

# check_console: the banner with everything a network admin needs.
# Optional arguments: the expected version and slot (default VERSION, a).
check_console() {
	local want="${1:-$VERSION} slot=${2:-a}"
	wait_for "^relaygate-console: version=$want" 360
	wait_for '^relaygate-console: url=https://' 400
	# The block is printed whole; give the fingerprint a moment if the daemon
	# had not written its certificate yet.
	wait_for '^relaygate-console: cert-sha256=([0-9A-F]{2}:){31}[0-9A-F]{2}' 60
	wait_for '^relaygate-console: daemon=active' 60
	[ "$(console version)" = "$want" ] || fail "console version: '$(console version)', want '$want'"
	console 'port management' | grep -q '52:54:00:77:00:01, pci 0000:00:03.0' || fail "management port: $(console 'port management')"
	console 'port inside' | grep -q '52:54:00:77:00:02, pci 0000:00:04.0' || fail "inside port: $(console 'port inside')"
	console 'port outside' | grep -q '52:54:00:77:00:03, pci 0000:00:05.0' || fail "outside port: $(console 'port outside')"
	[ "$(console url)" = "https://192.168.77.50:8443/" ] || fail "url: '$(console url)'"
	log "console: url $(console url), cert $(console cert-sha256 | cut -c1-23)..., data $(console data-mib) MiB"
}

# ---- first boot ----
log "booting $IMAGE (TCG)"
boot
check_console
[ "$(console data-mib)" -gt 2500 ] || fail "data partition (256 MiB in the image) not grown into the 4 GiB disk: $(console data-mib) MiB"
slog | grep -q 'relaygate-console: management-mode=dhcp' || fail "management mode not dhcp"

# HTTPS: the API answers, unauthenticated requests are refused, and the
# certificate is the one the console shows.
url=$(console url)
code=$(x mgmt curl -sk -o "$work/status.json" -w '%{http_code}' --max-time 20 "${url}api/v1/status") || true
[ "$code" = 401 ] || fail "GET ${url}api/v1/status without a token: HTTP $code, want 401"
fp=$(x mgmt openssl s_client -connect 192.168.77.50:8443 </dev/null 2>/dev/null |
	openssl x509 -noout -fingerprint -sha256 | sed 's/^.*=//')
[ "$fp" = "$(console cert-sha256)" ] || fail "served certificate $fp != console $(console cert-sha256)"
log "HTTPS API answers (401 without token), certificate matches the console"
first_fp=$fp

# Ordinary traffic across the bridge: LAN pc -> WAN router (the daemon builds
# br0 from the inside and outside ports).
deadline=$(($(date +%s) + 90))
until x lan ping -c1 -W1 -I 10.77.0.10 10.77.0.1 >/dev/null 2>&1; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "LAN cannot ping WAN through the bridge"
done
x lan ping -c3 -i0.2 -W2 -I 10.77.0.10 10.77.0.1 >/dev/null || fail "ping through the bridge lossy"
log "ordinary traffic crosses the bridge (ping LAN -> WAN)"

# SMTP in monitor mode: nothing diverted, the PC's mail reaches the MX from
# its own address.
x lan swaks --silent 2 --server 10.77.0.26 --local-interface 10.77.0.10 --helo pc.example \
	--from bot@pc.example --to x@remote.example --timeout 30 >"$work/swaks.log" 2>&1 ||
	fail "swaks through the bridge (monitor mode): $(tail -5 "$work/swaks.log")"
grep -q '"client":"10.77.0.10"' "$work/mx/messages.jsonl" || fail "MX did not see the PC's own address"
log "SMTP crosses the bridge in monitor mode; the MX saw 10.77.0.10"

# ---- setup through the UI with the console's token, then enforce via the API ----
wait_for '^relaygate-console: setup-token=' 60
tok=$(console setup-token)
log "console shows the setup token (${tok:0:6}...): creating the first administrator"
jar=$work/cookies
pw="image-test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
code=$(x mgmt curl -sk -c "$jar" -b "$jar" -o "$work/setup.html" -w '%{http_code}' --max-time 120 \
	--data-urlencode "token=$tok" --data-urlencode username=admin \
	--data-urlencode "password=$pw" --data-urlencode "password2=$pw" "${url}setup") || true
[ "$code" = 303 ] || fail "POST /setup with the console's token: HTTP $code ($(grep -o 'class="error[^<]*' "$work/setup.html" | head -3))"
# The session's CSRF token, from any page's <meta name="csrf-token">.
csrf=$(x mgmt curl -sk -b "$jar" --max-time 60 "${url}" | sed -n 's/.*<meta name="csrf-token" content="\([^"]*\)".*/\1/p' | head -n1)
[ -n "$csrf" ] || fail "no CSRF token on the dashboard after setup"
# The setup token is one-time: the console stops showing it.
deadline=$(($(date +%s) + 30))
until [ -z "$(status_block | sed -n 's/^relaygate-console: setup-token=//p')" ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "console still shows the used setup token"
	sleep 2
done
log "first administrator created; the console no longer shows the token"

# session_token NAME: logs in afresh and creates an admin API token named
# NAME with the password again (re-authentication; tokens never create
# tokens), into $work/token.json.
session_token() {
	rm -f "$jar" "$work/token.json"
	x mgmt curl -sk -c "$jar" -b "$jar" -o /dev/null --max-time 120 \
		--data-urlencode username=admin --data-urlencode "password=$pw" "${url}login" || true
	csrf=$(x mgmt curl -sk -b "$jar" --max-time 60 "${url}" | sed -n 's/.*<meta name="csrf-token" content="\([^"]*\)".*/\1/p' | head -n1)
	x mgmt curl -sk -b "$jar" -X POST -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' \
		-H "X-Relaygate-Password: $pw" --data "{\"name\": \"$1\"}" --max-time 120 \
		-o "$work/token.json" -w '%{http_code}' "${url}api/v1/tokens" || true
}

# An API token for the rest (as an admin's script would use it).
session_token image-test >/dev/null
api_tok=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$work/token.json")
[ -n "$api_tok" ] || fail "POST /api/v1/tokens: $(cat "$work/token.json")"
# api METHOD PATH [curl args...]: the API with the bearer token from the
# management namespace; the body goes to $work/api.json, the status to stdout.
api() {
	rm -f "$work/api.json"
	local m=$1 p=$2
	shift 2
	x mgmt curl -sk -X "$m" -H "Authorization: Bearer $api_tok" -o "$work/api.json" -w '%{http_code}' \
		--max-time "${API_TIMEOUT:-60}" "$@" "${url}api/v1/$p" || true
}

# config_kept: the enforce configuration survived (right after a boot the
# web UI may take a moment to listen).
config_kept() {
	local deadline=$(($(date +%s) + 90))
	until [ "$(api GET config)" = 200 ]; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "GET /api/v1/config: $(cat "$work/api.json" 2>/dev/null)"
		sleep 3
	done
	grep -q '"mode":"enforce"' "$work/api.json" && grep -q '10.77.0.25/32' "$work/api.json" ||
		fail "configuration lost: $(cat "$work/api.json")"
}

# Enforce: the relay 10.77.0.25 may send, everything else is refused.
cat >"$work/enforce.yaml" <<YAML
mode: enforce
interfaces:
  bridge: br0
  management: $(console 'port management' | cut -d' ' -f1)
  inside: $(console 'port inside' | cut -d' ' -f1)
  outside: $(console 'port outside' | cut -d' ' -f1)
  bridge_addresses: [10.77.0.3/24]
  bridge_gateways: [10.77.0.1]
relays:
  - name: relay
    address: 10.77.0.25/32
web:
  listen: "0.0.0.0:8443"
data_dir: /var/lib/relaygate
YAML
code=$(api PUT config -H 'Content-Type: application/yaml' --data-binary @"$work/enforce.yaml")
[ "$code" = 200 ] || fail "PUT /api/v1/config (enforce): HTTP $code: $(cat "$work/api.json")"
log "enforce mode configured through the API"
: >"$work/mx/messages.jsonl"
x lan swaks --silent 2 --server 10.77.0.26 --local-interface 10.77.0.25 --helo relay.example \
	--from relay@corp.example --to x@remote.example --timeout 60 >"$work/swaks-relay.log" 2>&1 ||
	fail "relay's mail in enforce mode: $(tail -5 "$work/swaks-relay.log")"
grep -q '"client":"10.77.0.25"' "$work/mx/messages.jsonl" || fail "MX did not see the relay's own address"
if x lan swaks --server 10.77.0.26 --local-interface 10.77.0.10 --helo pc.example \
	--from bot@pc.example --to x@remote.example --timeout 60 >"$work/swaks-pc.log" 2>&1; then
	fail "the PC's mail was accepted in enforce mode"
fi
grep -q '<\*\* *554' "$work/swaks-pc.log" || fail "the PC did not get 554: $(grep '<' "$work/swaks-pc.log" | tail -3)"
grep -q '"client":"10.77.0.10"' "$work/mx/messages.jsonl" && fail "the PC's mail reached the MX in enforce mode"
log "enforce: the relay's mail reached the MX from 10.77.0.25; the PC got 554"

# The management address through the API: DHCP as on the console; a bad
# static setting is refused field by field and changes nothing.
code=$(api GET system/network)
[ "$code" = 200 ] && grep -q '"mode":"dhcp"' "$work/api.json" || fail "GET /api/v1/system/network: HTTP $code: $(cat "$work/api.json")"
code=$(api PUT system/network -H 'Content-Type: application/json' --data '{"mode": "static", "address": "192.168.77.60/24", "gateway": "10.0.0.1", "dns": "resolver"}')
[ "$code" = 400 ] && grep -q '"gateway":' "$work/api.json" && grep -q '"dns":' "$work/api.json" ||
	fail "PUT /api/v1/system/network with a bad address: HTTP $code: $(cat "$work/api.json")"
code=$(api GET system/network)
grep -q '"mode":"dhcp"' "$work/api.json" || fail "a refused network change was saved: $(cat "$work/api.json")"
log "management address API: dhcp; a bad static setting refused per field, nothing changed"
# A static management address through the API: the appliance moves to it
# (networkd, through the image's netconf hook), the console shows it; then
# back to DHCP, from the new address.
code=$(api PUT system/network -H 'Content-Type: application/json' \
	--data '{"mode": "static", "address": "192.168.77.60/24", "gateway": "192.168.77.1", "dns": "192.168.77.1"}')
[ "$code" = 200 ] && grep -q '"applied":true' "$work/api.json" || fail "PUT /api/v1/system/network static: HTTP $code: $(cat "$work/api.json")"
dhcp_url=$url
url=https://192.168.77.60:8443/
deadline=$(($(date +%s) + 90))
until [ "$(api GET system/network)" = 200 ] && grep -q '"mode":"static"' "$work/api.json"; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "the API does not answer at the static address ${url}"
	sleep 2
done
wait_for '^relaygate-console: management-address=192.168.77.60/24' 60
code=$(api PUT system/network -H 'Content-Type: application/json' --data '{"mode": "dhcp"}')
[ "$code" = 200 ] || fail "PUT /api/v1/system/network dhcp: HTTP $code: $(cat "$work/api.json")"
url=$dhcp_url
deadline=$(($(date +%s) + 120))
until [ "$(api GET system/network)" = 200 ] && grep -q '"mode":"dhcp"' "$work/api.json"; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "the API does not answer at the DHCP address ${url} again"
	sleep 2
done
log "management address: static 192.168.77.60/24 set through the API and reached there; back to DHCP ($url)"

# ---- A/B update through the API ----
# update_status: GET /api/v1/system/update into $work/api.json (running
# slot and the boot entries on the ESP).
update_status() { [ "$(api GET system/update)" = 200 ]; }
# upload FILE: POST the bundle with its published SHA-256, as an admin's
# script would; the appliance writes the inactive slot and reboots.
upload() {
	local code
	code=$(API_TIMEOUT=900 api POST system/update -H "X-Bundle-SHA256: $(cut -d' ' -f1 "$1.sha256")" \
		-H 'Content-Type: application/octet-stream' --data-binary @"$1" -v 2>"$work/upload-${1##*/}.log")
	[ "$code" = 200 ] || fail "POST /api/v1/system/update ${1##*/}: HTTP $code: $(cat "$work/api.json"); curl: $(grep -v '^[{}] \[' "$work/upload-${1##*/}.log" | tail -25)"
	grep -q '"reboot":true' "$work/api.json" || fail "the update did not reboot: $(cat "$work/api.json")"
}
# wait_api_entry REGEXP SECONDS: until the update status (entries, current
# slot) matches REGEXP.
wait_api_entry() {
	local deadline=$(($(date +%s) + $2))
	until update_status && grep -Eq "$1" "$work/api.json"; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "update status never matched $1: $(cat "$work/api.json")"
		sleep 5
	done
}

if [ "${AB:-1}" = 1 ]; then
	v2=$VERSION.2 v3=$VERSION.3
	mkdir -p "$work/dist"
	update_status || fail "GET /api/v1/system/update: $(cat "$work/api.json")"
	grep -q '"current":"a"' "$work/api.json" || fail "not running slot a: $(cat "$work/api.json")"
	log "building the update bundle of version $v2 (image/build.sh, BUNDLE_ONLY, cached root file system)"
	VERSION=$v2 DIST=$work/dist BIN=${BIN:-bin/appliance} BUNDLE_ONLY=1 bash image/build.sh >"$work/build-$v2.log" 2>&1 ||
		fail "build $v2: $(tail -5 "$work/build-$v2.log")"
	b2=$work/dist/relaygate-$v2-amd64.update.tar.gz
	# Version 3, broken: version 2's bundle with a root file system of
	# noise; manifest (a newer build_epoch), signature and published digest
	# match, as after a bad build, so the appliance accepts it and only the
	# trial boot can tell.
	b3dir=$work/b3
	mkdir -p "$b3dir"
	tar -C "$b3dir" -xzf "$b2"
	[ -s "$b3dir/manifest.sig" ] || fail "the $v2 bundle is not signed (no manifest.sig)"
	head -c 8M /dev/urandom >"$b3dir/root.erofs"
	e3=$(($(sed -n 's/^build_epoch=//p' "$b3dir/manifest") + 1))
	sed -i -e "s/^version=.*/version=$v3/" -e "s/^build_epoch=.*/build_epoch=$e3/" \
		-e "s/^sha256:root.erofs=.*/sha256:root.erofs=$(sha256sum "$b3dir/root.erofs" | cut -c1-64)/" "$b3dir/manifest"
	"${BIN:-bin/appliance}" update sign --key "${SIGNING_KEY:-.cache/image/test-signing.sec}" --out "$b3dir/manifest.sig" "$b3dir/manifest" ||
		fail "signing the $v3 manifest"
	b3=$work/dist/relaygate-$v3-amd64.update.tar.gz
	tar -C "$b3dir" -cf - manifest manifest.sig root.erofs uki-a.efi uki-b.efi | gzip -1 >"$b3"
	(cd "$work/dist" && sha256sum "${b3##*/}" >"${b3##*/}.sha256")

	# A damaged upload is refused and changes nothing.
	code=$(api POST system/update -H "X-Bundle-SHA256: $(cut -d' ' -f1 "$b2.sha256")" \
		-H 'Content-Type: application/octet-stream' --data-binary "not a bundle")
	[ "$code" = 400 ] || fail "POST of a damaged bundle: HTTP $code: $(cat "$work/api.json")"

	# An unsigned bundle is refused before anything is written: version 2's
	# manifest without its signature (its first 64 KiB of root file system
	# after it: the appliance must stop at the missing signature).
	update_status || fail "GET /api/v1/system/update: $(cat "$work/api.json")"
	cp "$work/api.json" "$work/status-before-unsigned.json"
	ubdir=$work/unsigned
	mkdir -p "$ubdir"
	tar -C "$ubdir" -xzf "$b2" manifest
	head -c 64K /dev/urandom >"$ubdir/root.erofs"
	tar -C "$ubdir" -cf - manifest root.erofs | gzip -1 >"$work/dist/unsigned.update.tar.gz"
	code=$(api POST system/update -H 'Content-Type: application/octet-stream' --data-binary @"$work/dist/unsigned.update.tar.gz")
	[ "$code" = 400 ] && grep -q 'not signed' "$work/api.json" ||
		fail "POST of an unsigned bundle: HTTP $code: $(cat "$work/api.json")"
	update_status || fail "GET /api/v1/system/update: $(cat "$work/api.json")"
	cmp -s "$work/api.json" "$work/status-before-unsigned.json" ||
		fail "the refused unsigned bundle changed the boot entries: $(cat "$work/api.json")"
	log "an unsigned bundle was refused (HTTP 400, not signed) and changed nothing"

	log "uploading $v2 through POST /api/v1/system/update ($(du -m "$b2" | cut -f1) MiB)"
	mark_reboot
	upload "$b2"
	log "$v2 written to slot $(sed -n 's/.*"slot":"\([ab]\)".*/\1/p' "$work/api.json"); the appliance reboots into its trial"
	check_console "$v2" b
	[ "$(console cert-sha256)" = "$first_fp" ] || fail "certificate lost across the update"
	# Blessed: the entry loses its boot counter once the health check passed.
	wait_api_entry '"current":"b".*"file":"relaygate-'"$v2"'-b\.efi"' 240
	config_kept
	x lan ping -c1 -W5 -I 10.77.0.10 10.77.0.1 >/dev/null || fail "no bridging after the update"
	log "$v2 runs from slot b, passed its health check and was blessed; configuration kept"

	log "uploading broken $v3: expecting one failed trial boot of slot a, then $v2 on slot b again"
	mark_reboot
	upload "$b3"
	check_console "$v2" b
	# The trial happened and failed: its counter shows a used try and it
	# was never blessed.
	wait_api_entry '"current":"b".*"file":"relaygate-'"$v3"'-a\+[0-9]+-[1-9]\.efi"' 120
	slog | grep -Eq 'Kernel panic|mount|Gave up|Rebooting' ||
		log "note: no panic message of the broken boot on the serial log (quiet)"
	[ "$(console cert-sha256)" = "$first_fp" ] || fail "certificate lost after the fallback"
	config_kept
	log "broken $v3 failed its trial boot; the appliance came back on $v2, slot b, by itself"
fi

# ---- power cycle (no shutdown): configuration, address and certificate persist ----
# An API token created the moment before the power is cut must survive it:
# an answered write is on disk (the store commits synchronously).
code=$(session_token before-power-cut)
cut_tok=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$work/token.json" 2>/dev/null)
[ -n "$cut_tok" ] || fail "POST /api/v1/tokens before the power cut (HTTP $code): $(cat "$work/token.json" 2>/dev/null)"
log "power cycle, right after creating an API token"
stop_vm
boot
if [ "${AB:-1}" = 1 ]; then check_console "$v2" b; else check_console; fi
[ "$(console cert-sha256)" = "$first_fp" ] || fail "certificate changed across the power cycle (data partition not persistent?)"
config_kept
code=$(x mgmt curl -sk -H "Authorization: Bearer $cut_tok" -o /dev/null -w '%{http_code}' --max-time 60 "${url}api/v1/status" || true)
[ "$code" = 200 ] || fail "the API token created just before the power cut does not work after it (HTTP $code): the write was lost"
log "after the power cycle: same address, certificate and configuration; the token created just before the cut works"

if [ "${#soft_failures[@]}" -gt 0 ]; then
	printf 'image-test: FAIL: %s\n' "${soft_failures[@]}" >&2
	exit 1
fi
log "PASS ($(($(date +%s) - t0)) s)"
