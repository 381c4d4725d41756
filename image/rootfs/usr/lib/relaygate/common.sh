# Shared by the relaygate image's boot scripts (sourced, not run). They are
# systemd glue: what they need to know about the configuration, the ports
# and the boot comes from the binary (`appliance info`), the only parser of
# the configuration file on the box. No script reads the YAML itself.
# The data partition holds everything persistent:
DATA=/var/lib/relaygate
CONFIG=$DATA/relaygate.yaml
APPLIANCE=/usr/bin/appliance

# load_info: sets the variables `appliance info` prints (KEY='VALUE' lines,
# quoted for sh; the keys are listed in the README, "Command line").
# Values it cannot know are empty; CONFIG_ERROR says why the configuration
# could not be loaded.
load_info() {
	local out
	out=$("$APPLIANCE" info --config "$CONFIG") || return 1
	eval "$out"
}
