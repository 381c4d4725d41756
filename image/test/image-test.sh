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
# partitions; imagetest/), the console banner on the serial log (version, port mapping,
# management address from DHCP, HTTPS URL, certificate fingerprint, data
# partition grown to the disk), the API answering over HTTPS with that
# certificate, ordinary traffic and SMTP (monitor mode) crossing the bridge,
# and, after a power cycle, the same configuration, address and certificate.
# Then the A/B update path (AB=0 skips it): two more versions are built
# (image/build.sh); the second is applied by the appliance's Go updater
# (imagetest.TestApplyToDisk) to the stopped VM's inactive slot, boots from
# slot b with a boot counter, passes the health check and is blessed
# (systemd-bless-boot renames its entry), keeping the configuration; the third
# has a deliberately broken root file system, fails its single trial boot
# and the VM comes back on slot b by itself. The API upload path
# (POST /api/v1/system/update) is not mounted by the daemon yet, so the
# bundles are applied offline; the one-shot EFI variable the API sets is
# replaced by systemd-boot's version ordering here.
# Environment: VERSION, IMAGE (qcow2; default dist/relaygate-VERSION-amd64.qcow2),
# BIN (appliance binary for the extra versions), AB, KEEP=1 keeps the work directory.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
P=rgimg
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
IMAGE=${IMAGE:-dist/relaygate-$VERSION-amd64.qcow2}
t0=$(date +%s)
log() { echo "image-test: [$(($(date +%s) - t0))s] $*"; }
fail() { echo "image-test: FAIL: $*" >&2; exit 1; }
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
loop=""
# Everything started here is stopped here: QEMU, dnsmasq, labmx (by the
# processes left in our namespaces), then the namespaces themselves.
cleanup() {
	local rc=$? ns
	[ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
	[ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null
	# QEMU takes a moment to exit on SIGTERM; then anything left in our
	# namespaces goes, before the namespaces themselves.
	[ -n "$qemu_pid" ] && timeout 10 tail --pid="$qemu_pid" -f /dev/null 2>/dev/null
	for ns in vm mgmt lan wan; do
		ip netns pids "$P-$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$P-$ns" 2>/dev/null
	done
	[ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
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
disk=$work/disk.qcow2 disk_format=qcow2
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
boot() {
	: >"$serial"
	# Not through x(): a backgrounded function would be a subshell, and $!
	# must be QEMU itself (ip netns exec execs it).
	ip netns exec "$P-vm" qemu-system-x86_64 -accel tcg -cpu max -machine q35 -smp 2 -m 1024 \
		-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
		-drive if=pflash,format=raw,file="$work/vars.fd" \
		-drive file="$disk",if=virtio,format=$disk_format \
		-netdev tap,id=nw,ifname=tap-wan,script=no,downscript=no \
		-device virtio-net-pci,netdev=nw,mac=52:54:00:77:00:03,addr=0x5 \
		-netdev tap,id=nm,ifname=tap-mgmt,script=no,downscript=no \
		-device virtio-net-pci,netdev=nm,mac=52:54:00:77:00:01,addr=0x3 \
		-netdev tap,id=nl,ifname=tap-lan,script=no,downscript=no \
		-device virtio-net-pci,netdev=nl,mac=52:54:00:77:00:02,addr=0x4 \
		-display none -serial file:"$serial" -monitor none \
		>"$work/qemu.log" 2>&1 &
	qemu_pid=$!
}
stop_vm() {
	kill "$qemu_pid" 2>/dev/null || true
	wait "$qemu_pid" 2>/dev/null || true
	qemu_pid=""
}

# wait_for PATTERN SECONDS: until PATTERN (extended regexp) is in the serial log.
wait_for() {
	local deadline=$(($(date +%s) + $2))
	while ! tr -d '\r' <"$serial" | grep -Eq "$1"; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "no '$1' on the serial console within $2 s"
		kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited: $(cat "$work/qemu.log")"
		sleep 2
	done
}
# status_block: the newest banner block on the serial log.
status_block() { tr -d '\r' <"$serial" | awk '/^==== relaygate /{b=""} {b=b $0 "\n"} END{printf "%s", b}'; }
# console KEY: the newest value of "relaygate-console: KEY=..." on the serial log.
console() { tr -d '\r' <"$serial" | sed -n "s/^relaygate-console: $1=//p" | tail -n1; }

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
tr -d '\r' <"$serial" | grep -q 'relaygate-console: management-mode=dhcp' || fail "management mode not dhcp"

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
# Only when the daemon writes data_dir/setup-token (the web UI's first-start
# setup); older daemons have no setup, and the test says so.
enforce_checked=0
wait_for '^relaygate-console: (setup-token=|daemon=active)' 30
sleep 3
if tok=$(console setup-token) && [ -n "$tok" ]; then
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
	code=$(x mgmt curl -sk -b "$jar" -X PUT -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/yaml' \
		--data-binary @"$work/enforce.yaml" -o "$work/put.json" -w '%{http_code}' --max-time 60 "${url}api/v1/config") || true
	if [ "$code" != 200 ]; then
		# Recorded, and the remaining phases still run: the test fails at the end.
		soft_fail "PUT /api/v1/config (enforce): HTTP $code: $(cat "$work/put.json")"
	else
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
		enforce_checked=1
	fi
else
	log "no setup token on the console (this daemon does not write data_dir/setup-token): setup and enforce not tested"
fi

# ---- power cycle: configuration, address and certificate persist ----
log "power cycle"
stop_vm
boot
check_console
[ "$(console cert-sha256)" = "$first_fp" ] || fail "certificate changed across reboot (data partition not persistent?)"
log "after reboot: same address and certificate"

# ---- A/B update ----
if [ "${AB:-1}" = 1 ]; then
	v2=$VERSION.2 v3=$VERSION.3
	mkdir -p "$work/dist"
	log "building versions $v2 and $v3 (image/build.sh, cached root file system)"
	for v in "$v2" "$v3"; do
		VERSION=$v DIST=$work/dist BIN=${BIN:-bin/appliance} bash image/build.sh >"$work/build-$v.log" 2>&1 ||
			fail "build $v: $(tail -5 "$work/build-$v.log")"
		rm -f "$work/dist/relaygate-$v-amd64.img" "$work/dist/relaygate-$v-amd64.qcow2"
	done
	# Version 3, broken: its root file system is noise (the bundle itself is
	# consistent: manifest and published digest match, as a bad build would).
	b3=$work/b3
	mkdir -p "$b3"
	tar -C "$b3" -xzf "$work/dist/relaygate-$v3-amd64.update.tar.gz"
	head -c 8M /dev/urandom >"$b3/root.erofs"
	sed -i "s/^sha256:root.erofs=.*/sha256:root.erofs=$(sha256sum "$b3/root.erofs" | cut -c1-64)/" "$b3/manifest"
	tar -C "$b3" -cf - manifest root.erofs uki-a.efi uki-b.efi | gzip -1 >"$work/dist/relaygate-$v3-amd64.update.tar.gz"
	(cd "$work/dist" && sha256sum "relaygate-$v3-amd64.update.tar.gz" >"relaygate-$v3-amd64.update.tar.gz.sha256")

	stop_vm
	# The VM's disk as a raw file: loop partitions for the updater's slot
	# writes, mtools at the ESP's offset (1 MiB) for its boot entries.
	qemu-img convert -O raw "$work/disk.qcow2" "$work/disk.raw"
	rm -f "$work/disk.qcow2"
	disk=$work/disk.raw disk_format=raw
	esp_img=$work/disk.raw@@1M
	export MTOOLS_SKIP_CHECK=1

	# apply VERSION RUNNING_SLOT TRIES: the Go updater writes the inactive
	# slot and stages the entry; the ESP gets the same change via mtools
	# (entries of the target slot replaced by the new one).
	apply() {
		local v=$1 cur=$2 target stage=$work/esp-stage-$1 f
		target=$([ "$cur" = a ] && echo b || echo a)
		# One loop device on the target partition (the host kernel may not
		# scan partitions on loop devices), at its offset from the GPT.
		local n start size
		n=$([ "$target" = a ] && echo 2 || echo 3)
		read -r start size < <(sfdisk -d "$work/disk.raw" |
			awk -v p="$work/disk.raw$n" '$1 == p { gsub(/,/, ""); print $4, $6 }')
		loop=$(losetup --show -f -o $((start * 512)) --sizelimit $((size * 512)) "$work/disk.raw")
		mkdir -p "$work/parts" "$stage/EFI/Linux"
		rm -f "$work/parts/root-a" "$work/parts/root-b"
		ln -sfn "$loop" "$work/parts/root-$target"
		RELAYGATE_BUNDLE=$work/dist/relaygate-$v-amd64.update.tar.gz RELAYGATE_AB_PARTDIR=$work/parts \
			RELAYGATE_AB_ESP=$stage RELAYGATE_AB_SLOT=$cur RELAYGATE_AB_TRIES=$3 CGO_ENABLED=0 \
			"${GO:-go}" test -tags imagetest -count=1 -run TestApplyToDisk ./imagetest >"$work/apply-$v.log" 2>&1 ||
			fail "apply $v: $(tail -5 "$work/apply-$v.log")"
		sync
		losetup -d "$loop"
		loop=""
		for f in $(mdir -b -i "$esp_img" ::/EFI/Linux 2>/dev/null | sed 's|.*/||'); do
			case $f in relaygate-*-"$target".efi | relaygate-*-"$target"+*.efi) mdel -i "$esp_img" "::/EFI/Linux/$f" ;; esac
		done
		mcopy -i "$esp_img" "$stage/EFI/Linux/$(cat "$stage/entry")" "::/EFI/Linux/$(cat "$stage/entry")"
		log "applied $v to slot $target: $(mdir -b -i "$esp_img" ::/EFI/Linux | sed 's|.*/||' | tr '\n' ' ')"
	}
	# wait_entry FILE SECONDS: until the ESP holds FILE (the VM renames
	# entries: systemd-boot counts tries, systemd-bless-boot blesses).
	wait_entry() {
		local deadline=$(($(date +%s) + $2))
		until mdir -b -i "$esp_img" ::/EFI/Linux 2>/dev/null | grep -q "/$1\$"; do
			[ "$(date +%s)" -lt "$deadline" ] ||
				fail "ESP has no $1: $(mdir -b -i "$esp_img" ::/EFI/Linux | sed 's|.*/||' | tr '\n' ' ')"
			sleep 3
		done
	}

	apply "$v2" a 3
	log "booting $v2 (trial, slot b)"
	boot
	check_console "$v2" b
	[ "$(console cert-sha256)" = "$first_fp" ] || fail "configuration/certificate lost across the update"
	wait_entry "relaygate-$v2-b.efi" 180
	log "$v2 on slot b passed its health check and was blessed; configuration kept"
	x lan ping -c1 -W5 -I 10.77.0.10 10.77.0.1 >/dev/null || fail "no bridging after the update"

	stop_vm
	# The EFI variables hold LoaderEntryDefault=v2-b now (set by the health
	# check). The updater would set a one-shot entry for the broken version;
	# offline, start from fresh variables so the boot menu's ordering (newest
	# version first) picks it once instead.
	cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
	apply "$v3" b 1
	log "booting broken $v3 (trial, slot a): expecting a fallback to $v2 on slot b"
	boot
	check_console "$v2" b
	wait_entry "relaygate-$v3-a+0-1.efi" 30
	tr -d '\r' <"$serial" | grep -Eq 'Kernel panic|mount|Gave up|Rebooting' ||
		log "note: no panic message on the serial log (quiet)"
	log "broken $v3 failed its one trial and is marked bad; back on $v2, slot b"
	[ "$(console cert-sha256)" = "$first_fp" ] || fail "configuration/certificate lost after the fallback"
fi

if [ "${#soft_failures[@]}" -gt 0 ]; then
	printf 'image-test: FAIL: %s\n' "${soft_failures[@]}" >&2
	exit 1
fi
[ "$enforce_checked" = 1 ] || log "note: setup/enforce not checked (no setup token)"
log "PASS ($(($(date +%s) - t0)) s)"
