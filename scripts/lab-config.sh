# Sourced by the lab's scripts (demo, benchmarks): the appliance
# configuration that fits scripts/lab.sh's topology.
#
# lab_config MODE DATA_DIR [EXTRA_YAML]   prints the configuration
lab_config() {
	cat <<YAML
mode: $1
interfaces:
  bridge: br0
  inside: eth1
  outside: eth2
  management: eth0
  bridge_addresses: [10.0.255.3/29, "2001:db8:ff::3/64"]
  bridge_gateways: [10.0.255.1, "2001:db8:ff::1"]
  inside_gateways: [10.0.255.2, "2001:db8:ff::2"]
relays:
  - name: mail-relay
    address: 10.10.0.25/32
  - name: mail-relay-v6
    address: "2001:db8:10::25/128"
ports: [25]
reject_text: "Direct SMTP from this host is not permitted. Send mail through the company mail server."
web:
  listen: "0.0.0.0:8443"
data_dir: $2
${3:-}
YAML
}

# lab_locate_config VERSION [COMMUNITY]   prints the locate: block that asks
# the switches of scripts/lab.sh with LAB_SWITCHES (core, then access-2)
# over SNMP VERSION (2c or 3 authPriv); COMMUNITY overrides the v2c one.
lab_locate_config() {
	echo "locate:"
	echo "  timeout: 1s"
	echo "  switches:"
	local sw
	for sw in core:10.255.0.11 access-2:10.255.0.12; do
		echo "    - name: ${sw%%:*}"
		echo "      address: ${sw#*:}"
		if [ "$1" = 3 ]; then
			cat <<YAML
      version: "3"
      user: labv3
      auth_proto: SHA-256
      auth_pass: lab-auth-secret
      priv_proto: AES
      priv_pass: lab-priv-secret
YAML
		else
			echo '      version: "2c"'
			echo "      community: ${2:-lab-public}"
		fi
	done
}
