#!/usr/bin/env bash
# Installs the Debian packages that the lab, the demo, the benchmarks and the
# integration tests use, when they are missing. Needs root to install; without root it
# only reports what is missing.
set -euo pipefail
declare -A pkg=(
	[nft]=nftables [ip]=iproute2 [ping]=iputils-ping [swaks]=swaks
	[socat]=socat [tcpdump]=tcpdump [curl]=curl [postfix]=postfix
	[tshark]=tshark [chromium]=chromium [openssl]=openssl [fc-list]=fontconfig
	[iperf3]=iperf3 [python3]=python3
	[snmpd]=snmpd [snmpwalk]=snmp [lldpd]=lldpd
	[prometheus]=prometheus [promtool]=prometheus
	[haproxy]=haproxy [strace]=strace
)
missing=()
for cmd in "${!pkg[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
# swaks speaks IPv6 only with this Perl module (a mere "Recommends").
perl -MIO::Socket::INET6 -e 1 >/dev/null 2>&1 || missing+=(libio-socket-inet6-perl)
# ... and STARTTLS (--tls) only with this one.
perl -MIO::Socket::SSL -e 1 >/dev/null 2>&1 || missing+=(libio-socket-ssl-perl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing packages (install as root, or run as root): ${missing[*]}" >&2
	exit 0
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
# snmpd and lldpd run only in the lab's switch namespaces, prometheus only as
# the integration test's own instance, haproxy only as the SMTP benchmark's
# peer in the box namespace: keep the system services stopped.
stop_services=
for s in snmpd lldpd prometheus haproxy; do command -v "$s" >/dev/null 2>&1 || stop_services="$stop_services $s"; done
# fonts-noto-cjk: the web UI's Japanese pages in the browser tests' screenshots.
apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates fonts-noto-cjk >/dev/null
[ -z "$stop_services" ] || systemctl disable --now $stop_services >/dev/null 2>&1 || true
