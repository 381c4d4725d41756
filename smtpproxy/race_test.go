//go:build race

package smtpproxy

// raceEnabled: the race detector slows byte loops tenfold; big transfers
// are scaled down under it.
const raceEnabled = true
