//go:build !race

package smtpproxy

const raceEnabled = false
