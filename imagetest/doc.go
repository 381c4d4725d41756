// Package imagetest holds the checks of `make image-test` that are Go tests:
// they read the update bundle `make image` put in dist/ and apply it with
// the appliance's updater to stand-in partitions (the VM itself is updated
// through its API by image/test/image-test.sh). They build only with the
// tag imagetest (`make image-test` sets it), so that `go test ./...` leaves
// them out. One check needs no image and runs in `make test`: the daemon's
// unit file against `systemd-analyze security` (unit_test.go).
package imagetest
