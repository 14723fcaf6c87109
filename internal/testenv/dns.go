package testenv

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSServer is a small authoritative DNS server over UDP for tests: it
// answers A and AAAA questions for the names it is given (Set), NXDOMAIN
// for every other name, and its answers change while it runs. It listens
// on a loopback (or a network namespace's) address the test chooses, so
// no query leaves the machine.
type DNSServer struct {
	// Addr is where it listens (address:port).
	Addr netip.AddrPort

	conn *net.UDPConn
	mu   sync.Mutex
	// records are the addresses of each name (lower case, with the
	// trailing dot); a name without addresses is NXDOMAIN.
	records map[string][]netip.Addr
	// Queries counts the questions answered.
	Queries atomic.Int64
}

// StartDNSServer listens on addr (port 0 for a free one) until the test
// ends.
func StartDNSServer(t testing.TB, addr string) *DNSServer {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		t.Fatalf("DNS server: %v", err)
	}
	s := &DNSServer{Addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), conn: conn, records: map[string][]netip.Addr{}}
	done := make(chan struct{})
	go func() { defer close(done); s.serve() }()
	t.Cleanup(func() { conn.Close(); <-done })
	return s
}

// Set makes name answer addrs from now on; no addresses makes it
// NXDOMAIN.
func (s *DNSServer) Set(name string, addrs ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := fqdn(name)
	if len(addrs) == 0 {
		delete(s.records, key)
		return
	}
	s.records[key] = addrs
}

func fqdn(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

func (s *DNSServer) serve() {
	buf := make([]byte, 4096)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if out, ok := s.answer(buf[:n]); ok {
			s.conn.WriteToUDPAddrPort(out, from)
		}
	}
}

// answer builds the response to one query; ok is false for a packet that
// is not a query with a question.
func (s *DNSServer) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	s.Queries.Add(1)
	s.mu.Lock()
	addrs, known := s.records[strings.ToLower(q.Name.String())]
	s.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	// A short TTL: HAProxy's own timings decide when it asks again.
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			if b.AResource(rr, dnsmessage.AResource{A: a.As4()}) != nil {
				return nil, false
			}
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			if b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()}) != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
