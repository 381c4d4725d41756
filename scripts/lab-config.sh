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
