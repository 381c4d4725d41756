package reputation

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// testDNS is an authoritative-style DNS server on 127.0.0.1 for the tests:
// A and TXT records by name, names answered SERVFAIL, names never answered.
type testDNS struct {
	addr string
	mu   sync.Mutex
	a    map[string][]string
	txt  map[string][]string
	fail map[string]bool // SERVFAIL
	mute map[string]bool // no answer at all (timeout)
	n    int             // queries seen
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	d := &testDNS{a: map[string][]string{}, txt: map[string][]string{}, fail: map[string]bool{}, mute: map[string]bool{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: d}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

func (d *testDNS) set(name string, a ...string) {
	d.mu.Lock()
	d.a[dns.Fqdn(strings.ToLower(name))] = a
	d.mu.Unlock()
}

func (d *testDNS) del(name string) {
	d.mu.Lock()
	delete(d.a, dns.Fqdn(strings.ToLower(name)))
	d.mu.Unlock()
}

func (d *testDNS) setTXT(name string, txt ...string) {
	d.mu.Lock()
	d.txt[dns.Fqdn(strings.ToLower(name))] = txt
	d.mu.Unlock()
}

func (d *testDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	if d.mute[name] {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if d.fail[name] {
		m.Rcode = dns.RcodeServerFailure
		w.WriteMsg(m)
		return
	}
	_, hasA := d.a[name]
	_, hasTXT := d.txt[name]
	if !hasA && !hasTXT {
		m.Rcode = dns.RcodeNameError
		w.WriteMsg(m)
		return
	}
	switch q.Qtype {
	case dns.TypeA:
		for _, ip := range d.a[name] {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(ip)})
		}
	case dns.TypeTXT:
		for _, s := range d.txt[name] {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{s}})
		}
	}
	w.WriteMsg(m)
}
