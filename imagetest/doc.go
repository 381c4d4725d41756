// Package imagetest holds the checks of `make image-test` that are Go tests:
// they read what `make image` put in dist/ and drive the A/B update of a
// stopped VM's disk. They build only with the tag imagetest (`make
// image-test` sets it), so that `go test ./...` leaves them out.
package imagetest
