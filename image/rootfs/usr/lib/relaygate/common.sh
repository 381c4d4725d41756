# Shared by the relaygate image's boot scripts (sourced, not run).
# The data partition holds everything persistent:
DATA=/var/lib/relaygate
CONFIG=$DATA/relaygate.yaml
# Management addressing: "dhcp" (default) or static, see netconf.
MGMT_NET=$DATA/management.conf

# physical_nics: the physical network ports, one name a line, in PCI bus
# order (the sysfs device path embeds the PCI topology, so sorting it sorts
# by bus, then device, then function). Virtual links have no device.
physical_nics() {
	local d dev
	for d in /sys/class/net/*; do
		[ -e "$d/device" ] || continue
		# Only Ethernet (type 1); skips e.g. wireless or CAN leftovers.
		[ "$(cat "$d/type" 2>/dev/null)" = 1 ] || continue
		[ -e "$d/wireless" ] && continue
		dev=$(readlink -f "$d/device")
		printf '%s %s\n' "$dev" "${d##*/}"
	done | sort | awk '{print $2}'
}

# nic_info NAME: "MAC, pci ADDRESS" for the console.
nic_info() {
	local n=$1 dev pci
	dev=$(readlink -f "/sys/class/net/$n/device" 2>/dev/null) || return 0
	# virtio devices hang below their PCI function: take the last PCI address.
	pci=$(printf '%s\n' "$dev" | grep -o '[0-9a-f]\{4\}:[0-9a-f]\{2\}:[0-9a-f]\{2\}\.[0-9a-f]' | tail -n1)
	printf '%s, pci %s' "$(cat "/sys/class/net/$n/address" 2>/dev/null)" "${pci:-?}"
}

# cfg_iface KEY: the interface name for KEY (management, inside, outside,
# bridge) from the configuration file. The file is YAML written by us or by
# the daemon; interface keys appear once, indented under "interfaces:".
cfg_iface() {
	[ -r "$CONFIG" ] || return 0
	sed -n "s/^[[:space:]]\+$1:[[:space:]]*\"\{0,1\}\([A-Za-z0-9_.@-]\+\)\"\{0,1\}[[:space:]]*\(#.*\)\{0,1\}$/\1/p" "$CONFIG" | head -n1
}

# mgmt_setting KEY: a value from management.conf (KEY=VALUE lines).
mgmt_setting() {
	[ -r "$MGMT_NET" ] || return 0
	sed -n "s/^$1=//p" "$MGMT_NET" | tail -n1
}
