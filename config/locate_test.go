package config

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// locateHead is head with a locate section: "  switches:" is line 7, the
// first switch entry appended begins at line 8.
const locateHead = head + `locate:
  switches:
`

func TestParseLocate(t *testing.T) {
	in := locateHead + `    - name: core
      address: 10.0.0.1
      version: 2c
      community: public
    - name: access-1
      address: "[2001:db8::2]:1161"
      version: "3"
      user: relaygate
      auth_pass: authpass123
      priv_pass: privpass123
      vlans: [10, 20]
`
	c, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	want := Locate{
		Switches: []Switch{
			{Name: "core", Address: "10.0.0.1", Version: "2c", Community: "public"},
			{Name: "access-1", Address: "[2001:db8::2]:1161", Version: "3", User: "relaygate",
				AuthProto: "SHA-256", AuthPass: "authpass123", PrivProto: "AES", PrivPass: "privpass123", VLANs: []int{10, 20}},
		},
		Refresh: Duration(5 * time.Minute),
		Timeout: Duration(2 * time.Second),
	}
	if diff := cmp.Diff(want, c.Locate); diff != "" {
		t.Errorf("Parse() locate mismatch (-want +got):\n%s", diff)
	}
}

func TestParseLocateErrors(t *testing.T) {
	v2 := "    - name: core\n      address: 10.0.0.1\n      version: 2c\n      community: public\n"
	v3 := func(extra string) string {
		return "    - name: core\n      address: 10.0.0.1\n      version: \"3\"\n      user: relaygate\n      auth_pass: authpass123\n      priv_pass: privpass123\n" + extra
	}
	tests := []struct {
		name string
		in   string
		key  string
		line int
		msg  string
	}{
		{"missing name", locateHead + "    - address: 10.0.0.1\n      version: 2c\n      community: public\n", "locate.switches[0].name", 8, "missing switch name"},
		{"blank name", locateHead + "    - name: \" \"\n      address: 10.0.0.1\n      version: 2c\n      community: public\n", "locate.switches[0].name", 8, "missing"},
		{"duplicate name", locateHead + v2 + "    - name: Core\n      address: 10.0.0.2\n      version: 2c\n      community: public\n", "locate.switches[1].name", 12, `duplicate switch name "Core"`},
		{"missing address", locateHead + "    - name: core\n      version: 2c\n      community: public\n", "locate.switches[0].address", 8, "missing address"},
		{"bad address", locateHead + "    - name: core\n      address: 10.0.0.1:abc\n      version: 2c\n      community: public\n", "locate.switches[0].address", 9, `invalid address "10.0.0.1:abc"`},
		{"port 0", locateHead + "    - name: core\n      address: core.example:0\n      version: 2c\n      community: public\n", "locate.switches[0].address", 9, "invalid address"},
		{"IPv6 with port, no brackets", locateHead + "    - name: core\n      address: \"2001:db8::1:161:x\"\n      version: 2c\n      community: public\n", "locate.switches[0].address", 9, "invalid address"},
		{"host name with underscore", locateHead + "    - name: core\n      address: core_1\n      version: 2c\n      community: public\n", "locate.switches[0].address", 9, "invalid address"},
		{"missing version", locateHead + "    - name: core\n      address: 10.0.0.1\n      community: public\n", "locate.switches[0].version", 8, "missing version"},
		{"version 1", locateHead + "    - name: core\n      address: 10.0.0.1\n      version: \"1\"\n      community: public\n", "locate.switches[0].version", 10, "want 2c or 3"},
		{"2c without community", locateHead + "    - name: core\n      address: 10.0.0.1\n      version: 2c\n", "locate.switches[0].community", 8, "missing"},
		{"2c with a v3 user", locateHead + v2 + "      user: relaygate\n", "locate.switches[0].version", 10, "version 3"},
		{"3 with a community", locateHead + v3("      community: public\n"), "locate.switches[0].community", 14, "version 2c"},
		{"3 without user", locateHead + "    - name: core\n      address: 10.0.0.1\n      version: \"3\"\n      auth_pass: authpass123\n      priv_pass: privpass123\n", "locate.switches[0].user", 8, "missing"},
		{"3 without priv_pass (authNoPriv)", locateHead + "    - name: core\n      address: 10.0.0.1\n      version: \"3\"\n      user: u\n      auth_pass: authpass123\n", "locate.switches[0].priv_pass", 8, "missing"},
		{"3 short auth_pass", locateHead + "    - name: core\n      address: 10.0.0.1\n      version: \"3\"\n      user: u\n      auth_pass: short\n      priv_pass: privpass123\n", "locate.switches[0].auth_pass", 12, "at least 8"},
		{"unknown auth_proto", locateHead + v3("      auth_proto: MD5\n"), "locate.switches[0].auth_proto", 14, `unknown authentication protocol "MD5"`},
		{"unknown priv_proto", locateHead + v3("      priv_proto: DES\n"), "locate.switches[0].priv_proto", 14, `unknown privacy protocol "DES"`},
		{"VLAN 0", locateHead + v2 + "      vlans: [10, 0]\n", "locate.switches[0].vlans[1]", 12, "out of range 1-4094"},
		{"VLAN 4095", locateHead + v2 + "      vlans: [4095]\n", "locate.switches[0].vlans[0]", 12, "out of range"},
		{"duplicate VLAN", locateHead + v2 + "      vlans: [10, 10]\n", "locate.switches[0].vlans[1]", 12, "duplicate VLAN 10"},
		{"timeout too short", head + "locate:\n  timeout: 10ms\n", "locate.timeout", 7, "100ms to 1m"},
		{"refresh too short", head + "locate:\n  refresh: 1s\n", "locate.refresh", 7, "at least 10s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse() = %v, want a *FieldError for %s", err, tt.key)
			}
			if fe.Key != tt.key || fe.Line != tt.line {
				t.Errorf("Parse() = %q, want key %s at line %d", err, tt.key, tt.line)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.msg) || !strings.HasPrefix(msg, "line "+strconv.Itoa(tt.line)+": "+tt.key+": ") {
				t.Errorf("Parse() = %q, want %q naming the key and containing %q", msg, "line "+strconv.Itoa(tt.line)+": "+tt.key+": ", tt.msg)
			}
		})
	}
}

func TestParseLocateProtocols(t *testing.T) {
	for _, auth := range snmpAuthProtos {
		for _, priv := range snmpPrivProtos {
			in := locateHead + "    - name: core\n      address: core-1\n      version: \"3\"\n      user: u\n      auth_pass: authpass123\n      priv_pass: privpass123\n" +
				"      auth_proto: " + strings.ToLower(auth) + "\n      priv_proto: " + priv + "\n      context: vlan-20\n"
			if _, err := Parse([]byte(in)); err != nil {
				t.Errorf("Parse(auth_proto %s, priv_proto %s) = %v, want nil", auth, priv, err)
			}
		}
	}
}

func TestSwitchHostPort(t *testing.T) {
	tests := []struct {
		addr string
		host string
		port uint16
		bad  bool
	}{
		{addr: "10.0.0.1", host: "10.0.0.1", port: 161},
		{addr: "10.0.0.1:1161", host: "10.0.0.1", port: 1161},
		{addr: "2001:db8::2", host: "2001:db8::2", port: 161},
		{addr: "[2001:db8::2]:162", host: "2001:db8::2", port: 162},
		{addr: "[2001:db8::2]", bad: true},
		{addr: "core-1", host: "core-1", port: 161},
		{addr: "core-1.corp.example:16100", host: "core-1.corp.example", port: 16100},
		{addr: "fe80::1%eth0", bad: true},
		{addr: "", bad: true},
		{addr: "core:", bad: true},
		{addr: ":161", bad: true},
		{addr: "core:65536", bad: true},
		{addr: "-core", bad: true},
		{addr: "a b", bad: true},
	}
	for _, tt := range tests {
		host, port, err := Switch{Address: tt.addr}.HostPort()
		if tt.bad {
			if err == nil {
				t.Errorf("HostPort(%q) = %q, %d, nil; want an error", tt.addr, host, port)
			}
			continue
		}
		if err != nil || host != tt.host || port != tt.port {
			t.Errorf("HostPort(%q) = %q, %d, %v; want %q, %d, nil", tt.addr, host, port, err, tt.host, tt.port)
		}
	}
}
