package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// rr is one answer record for build: an A/AAAA record when ip is set, a
// CNAME when target is set, else a TXT record (a type Parse skips).
type rr struct {
	name   string
	ttl    uint32
	ip     string
	target string
}

func a(name, ip string, ttl uint32) rr { return rr{name: name, ip: ip, ttl: ttl} }
func cname(name, target string) rr     { return rr{name: name, target: target, ttl: 30} }
func txt(name string) rr               { return rr{name: name, ttl: 30} }
func fqdn(s string) dnsmessage.Name    { return dnsmessage.MustNewName(s + ".") }
func addr(ip string, ttl uint32) Addr  { return Addr{IP: netip.MustParseAddr(ip), TTL: ttl} }

func resp(id uint16) dnsmessage.Header {
	return dnsmessage.Header{ID: id, Response: true, RecursionAvailable: true}
}

func query(id uint16) dnsmessage.Header {
	return dnsmessage.Header{ID: id, RecursionDesired: true}
}

func mustParse(t testing.TB, b []byte) Message {
	t.Helper()
	m, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

// build packs a message with one question (q, type qt) and the answers.
func build(t testing.TB, h dnsmessage.Header, q string, qt dnsmessage.Type, answers ...rr) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("building message: %v", err)
		}
	}
	check(b.StartQuestions())
	check(b.Question(dnsmessage.Question{Name: fqdn(q), Type: qt, Class: dnsmessage.ClassINET}))
	check(b.StartAnswers())
	for _, r := range answers {
		rh := dnsmessage.ResourceHeader{Name: fqdn(r.name), Class: dnsmessage.ClassINET, TTL: r.ttl}
		switch {
		case r.ip != "":
			ip := netip.MustParseAddr(r.ip)
			if ip.Is4() {
				check(b.AResource(rh, dnsmessage.AResource{A: ip.As4()}))
			} else {
				check(b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: ip.As16()}))
			}
		case r.target != "":
			check(b.CNAMEResource(rh, dnsmessage.CNAMEResource{CNAME: fqdn(r.target)}))
		default:
			check(b.TXTResource(rh, dnsmessage.TXTResource{TXT: []string{"v=spf1 -all"}}))
		}
	}
	msg, err := b.Finish()
	check(err)
	return msg
}

func TestParseA(t *testing.T) {
	msg := build(t, resp(0x1234), "example.com", dnsmessage.TypeA,
		a("example.com", "93.184.216.34", 300), a("example.com", "93.184.216.35", 60))
	got := mustParse(t, msg)
	want := Message{
		ID: 0x1234, Response: true, RCode: dnsmessage.RCodeSuccess,
		Name: "example.com", Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET,
		Addrs: []Addr{addr("93.184.216.34", 300), addr("93.184.216.35", 60)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseAAAA(t *testing.T) {
	msg := build(t, resp(7), "ipv6.example", dnsmessage.TypeAAAA,
		a("ipv6.example", "2001:db8::1", 3600), a("ipv6.example", "2001:db8::ff:2", 0))
	got := mustParse(t, msg)
	want := Message{
		ID: 7, Response: true, Name: "ipv6.example", Type: dnsmessage.TypeAAAA, Class: dnsmessage.ClassINET,
		Addrs: []Addr{addr("2001:db8::1", 3600), addr("2001:db8::ff:2", 0)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", got, want)
	}
	if !got.Addrs[0].IP.Is6() {
		t.Errorf("AAAA answer %v is not an IPv6 address", got.Addrs[0].IP)
	}
}

// An AAAA answer holding a v4-mapped address stays as the parser found it
// (the tracker unmaps it).
func TestParseAAAAV4Mapped(t *testing.T) {
	got := mustParse(t, build(t, resp(1), "m.example", dnsmessage.TypeAAAA, a("m.example", "::ffff:192.0.2.7", 5)))
	if len(got.Addrs) != 1 || got.Addrs[0].IP != netip.MustParseAddr("::ffff:192.0.2.7") {
		t.Fatalf("Addrs = %v, want [::ffff:192.0.2.7]", got.Addrs)
	}
}

func TestParseCNAMEChains(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []rr
		cnames  []string
		addrs   []Addr
	}{
		{
			name:    "1 hop",
			answers: []rr{cname("www.example.com", "edge.cdn.net"), a("edge.cdn.net", "198.51.100.1", 20)},
			cnames:  []string{"edge.cdn.net"},
			addrs:   []Addr{addr("198.51.100.1", 20)},
		},
		{
			name: "2 hops",
			answers: []rr{cname("www.example.com", "www.example.com.cdn.net"), cname("www.example.com.cdn.net", "e1.cdn.net"),
				a("e1.cdn.net", "198.51.100.2", 20), a("e1.cdn.net", "198.51.100.3", 10)},
			cnames: []string{"www.example.com.cdn.net", "e1.cdn.net"},
			addrs:  []Addr{addr("198.51.100.2", 20), addr("198.51.100.3", 10)},
		},
		{
			name: "3 hops, records out of order",
			answers: []rr{a("c3.example", "198.51.100.4", 9), cname("c2.example", "c3.example"),
				cname("www.example.com", "c1.example"), cname("c1.example", "c2.example")},
			cnames: []string{"c1.example", "c2.example", "c3.example"},
			addrs:  []Addr{addr("198.51.100.4", 9)},
		},
		{
			name:    "chain to nowhere",
			answers: []rr{cname("www.example.com", "c1.example"), cname("c1.example", "c2.example")},
			cnames:  []string{"c1.example", "c2.example"},
		},
		{
			name: "first CNAME for a name wins",
			answers: []rr{cname("www.example.com", "first.example"), cname("www.example.com", "second.example"),
				a("second.example", "203.0.113.2", 1), a("first.example", "203.0.113.1", 1)},
			cnames: []string{"first.example"},
			addrs:  []Addr{addr("203.0.113.1", 1)},
		},
		{
			name:    "addresses beside a CNAME end the chain",
			answers: []rr{cname("www.example.com", "c1.example"), a("www.example.com", "203.0.113.9", 4), a("c1.example", "203.0.113.10", 4)},
			addrs:   []Addr{addr("203.0.113.9", 4)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, build(t, resp(1), "www.example.com", dnsmessage.TypeA, tc.answers...))
			if !reflect.DeepEqual(got.CNAMEs, tc.cnames) {
				t.Errorf("CNAMEs = %q, want %q", got.CNAMEs, tc.cnames)
			}
			if !reflect.DeepEqual(got.Addrs, tc.addrs) {
				t.Errorf("Addrs = %v, want %v", got.Addrs, tc.addrs)
			}
			if got.Name != "www.example.com" {
				t.Errorf("Name = %q", got.Name)
			}
		})
	}
}

func TestParseIgnoresUnrelatedAnswers(t *testing.T) {
	msg := build(t, resp(2), "mine.example", dnsmessage.TypeA,
		a("other.example", "192.0.2.99", 60),
		cname("other.example", "mine.example"), // points at us, not from us
		a("mine.example", "192.0.2.1", 60),
		a("example", "192.0.2.98", 60),
		a("sub.mine.example", "192.0.2.97", 60),
		txt("mine.example"),
		a("mine.example", "192.0.2.2", 30),
	)
	got := mustParse(t, msg)
	want := []Addr{addr("192.0.2.1", 60), addr("192.0.2.2", 30)}
	if !reflect.DeepEqual(got.Addrs, want) || got.CNAMEs != nil {
		t.Errorf("Addrs = %v, CNAMEs = %q; want %v and none", got.Addrs, got.CNAMEs, want)
	}
}

func TestParseCNAMELoopTerminates(t *testing.T) {
	t.Run("a->b->a", func(t *testing.T) {
		got := mustParse(t, build(t, resp(3), "a.example", dnsmessage.TypeA,
			cname("a.example", "b.example"), cname("b.example", "a.example")))
		if len(got.CNAMEs) != MaxChain+1 {
			t.Fatalf("len(CNAMEs) = %d, want %d: %q", len(got.CNAMEs), MaxChain+1, got.CNAMEs)
		}
		for i, c := range got.CNAMEs {
			want := "b.example"
			if i%2 == 1 {
				want = "a.example"
			}
			if c != want {
				t.Errorf("CNAMEs[%d] = %q, want %q", i, c, want)
			}
		}
		if got.Addrs != nil {
			t.Errorf("Addrs = %v, want none", got.Addrs)
		}
	})
	t.Run("a->a", func(t *testing.T) {
		got := mustParse(t, build(t, resp(3), "a.example", dnsmessage.TypeA, cname("a.example", "a.example"),
			a("zzz.example", "192.0.2.1", 1)))
		if len(got.CNAMEs) != MaxChain+1 || got.CNAMEs[0] != "a.example" || got.CNAMEs[MaxChain] != "a.example" || got.Addrs != nil {
			t.Fatalf("CNAMEs = %q, Addrs = %v", got.CNAMEs, got.Addrs)
		}
	})
}

// chain returns a CNAME chain of n hops from q, ending in an A record.
func chain(q string, n int) ([]rr, []string) {
	var rrs []rr
	var names []string
	prev := q
	for i := 1; i <= n; i++ {
		next := fmt.Sprintf("hop%d.example", i)
		rrs = append(rrs, cname(prev, next))
		names = append(names, next)
		prev = next
	}
	return append(rrs, a(prev, "192.0.2.200", 77)), names
}

func TestParseChainLimit(t *testing.T) {
	// MaxChain hops are followed to the addresses.
	rrs, names := chain("q.example", MaxChain)
	got := mustParse(t, build(t, resp(4), "q.example", dnsmessage.TypeA, rrs...))
	if !reflect.DeepEqual(got.CNAMEs, names) || !reflect.DeepEqual(got.Addrs, []Addr{addr("192.0.2.200", 77)}) {
		t.Errorf("%d hops: CNAMEs = %q, Addrs = %v", MaxChain, got.CNAMEs, got.Addrs)
	}
	// One more and the addresses are out of reach; the chain is cut at
	// MaxChain+1 names.
	rrs, names = chain("q.example", MaxChain+4)
	got = mustParse(t, build(t, resp(4), "q.example", dnsmessage.TypeA, rrs...))
	if !reflect.DeepEqual(got.CNAMEs, names[:MaxChain+1]) || got.Addrs != nil {
		t.Errorf("%d hops: CNAMEs = %q, Addrs = %v; want %q and none", MaxChain+4, got.CNAMEs, got.Addrs, names[:MaxChain+1])
	}
}

func TestParseMaxAnswers(t *testing.T) {
	var rrs []rr
	var want []Addr
	for i := 0; i < MaxAnswers+6; i++ {
		ip := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		rrs = append(rrs, a("many.example", ip, uint32(i)))
		if i < MaxAnswers {
			want = append(want, addr(ip, uint32(i)))
		}
	}
	got := mustParse(t, build(t, resp(5), "many.example", dnsmessage.TypeA, rrs...))
	if !reflect.DeepEqual(got.Addrs, want) {
		t.Errorf("got %d addrs, want the first %d: %v", len(got.Addrs), MaxAnswers, got.Addrs)
	}

	// Skipped records count too: MaxAnswers TXT records hide the A after them.
	rrs = nil
	for i := 0; i < MaxAnswers; i++ {
		rrs = append(rrs, txt("many.example"))
	}
	rrs = append(rrs, a("many.example", "10.9.9.9", 1))
	got = mustParse(t, build(t, resp(5), "many.example", dnsmessage.TypeA, rrs...))
	if got.Addrs != nil {
		t.Errorf("answer %d was read: %v", MaxAnswers+1, got.Addrs)
	}
	// One fewer and it is read.
	got = mustParse(t, build(t, resp(5), "many.example", dnsmessage.TypeA, rrs[1:]...))
	if !reflect.DeepEqual(got.Addrs, []Addr{addr("10.9.9.9", 1)}) {
		t.Errorf("answer %d: Addrs = %v", MaxAnswers, got.Addrs)
	}
}

func TestParseNormalizesCase(t *testing.T) {
	msg := build(t, resp(6), "WWW.Example.COM", dnsmessage.TypeA,
		cname("www.EXAMPLE.com", "Edge.CDN.Example.NET"),
		a("EDGE.cdn.example.net", "192.0.2.55", 12))
	got := mustParse(t, msg)
	if got.Name != "www.example.com" {
		t.Errorf("Name = %q, want www.example.com", got.Name)
	}
	if !reflect.DeepEqual(got.CNAMEs, []string{"edge.cdn.example.net"}) {
		t.Errorf("CNAMEs = %q", got.CNAMEs)
	}
	if !reflect.DeepEqual(got.Addrs, []Addr{addr("192.0.2.55", 12)}) {
		t.Errorf("Addrs = %v", got.Addrs)
	}
}

func TestParseRootName(t *testing.T) {
	b := dnsmessage.NewBuilder(nil, resp(9))
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("."), Type: dnsmessage.TypeNS, Class: dnsmessage.ClassINET})
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	got := mustParse(t, msg)
	if got.Name != "" || got.Type != dnsmessage.TypeNS {
		t.Errorf("Name = %q, Type = %v; want \"\" and NS", got.Name, got.Type)
	}
}

func TestParseNXDOMAIN(t *testing.T) {
	h := resp(0xbeef)
	h.RCode = dnsmessage.RCodeNameError
	got := mustParse(t, build(t, h, "no.such.example", dnsmessage.TypeAAAA))
	want := Message{ID: 0xbeef, Response: true, RCode: dnsmessage.RCodeNameError, Name: "no.such.example", Type: dnsmessage.TypeAAAA, Class: dnsmessage.ClassINET}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse = %+v, want %+v", got, want)
	}
}

func TestParseQuery(t *testing.T) {
	// A query is read up to its question; answers in it (nonsense) are not.
	got := mustParse(t, build(t, query(0x4242), "Q.Example", dnsmessage.TypeA, a("q.example", "192.0.2.1", 5)))
	want := Message{ID: 0x4242, Name: "q.example", Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse = %+v, want %+v", got, want)
	}
}

// header is a raw 12-byte DNS header.
func header(id, flags, qd, an, ns, ar uint16) []byte {
	return []byte{byte(id >> 8), byte(id), byte(flags >> 8), byte(flags), byte(qd >> 8), byte(qd),
		byte(an >> 8), byte(an), byte(ns >> 8), byte(ns), byte(ar >> 8), byte(ar)}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

const flagsResponse = 0x8180

// qtail is the type and class after a question name: A, IN.
var qtail = []byte{0, 1, 0, 1}

// wireName is example.com in wire form.
var wireName = []byte{7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0}

// arec is an answer header for the name at offset 12, type A, TTL 60, and
// its 4 bytes.
func arec(ip ...byte) []byte {
	return cat([]byte{0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4}, ip)
}

func TestParseRawWire(t *testing.T) {
	// The hand-built message the malformed cases below are cut from parses.
	msg := cat(header(1, flagsResponse, 1, 2, 0, 0), wireName, qtail, arec(192, 0, 2, 1), arec(192, 0, 2, 2))
	got := mustParse(t, msg)
	if got.Name != "example.com" || !reflect.DeepEqual(got.Addrs, []Addr{addr("192.0.2.1", 60), addr("192.0.2.2", 60)}) {
		t.Fatalf("Parse = %+v", got)
	}
}

func TestParseMalformed(t *testing.T) {
	valid := build(t, resp(1), "www.example.com", dnsmessage.TypeA,
		cname("www.example.com", "edge.example.net"), a("edge.example.net", "192.0.2.1", 1), a("edge.example.net", "192.0.2.2", 1))
	long := make([]byte, 50)
	for i := range long {
		long[i] = 0xff
	}
	cases := map[string][]byte{
		"nil":                              nil,
		"empty":                            {},
		"one byte":                         {0},
		"truncated header":                 header(1, flagsResponse, 1, 1, 0, 0)[:11],
		"no question":                      header(1, flagsResponse, 0, 0, 0, 0),
		"missing question":                 header(1, flagsResponse, 1, 0, 0, 0),
		"truncated question":               cat(header(1, flagsResponse, 1, 0, 0, 0), wireName[:6]),
		"question no type":                 cat(header(1, flagsResponse, 1, 0, 0, 0), wireName),
		"truncated answer":                 cat(header(1, flagsResponse, 1, 1, 0, 0), wireName, qtail, arec(192, 0, 2, 1)[:13]),
		"missing answer":                   cat(header(1, flagsResponse, 1, 2, 0, 0), wireName, qtail, arec(192, 0, 2, 1)),
		"huge answer count":                cat(header(1, flagsResponse, 1, 0xffff, 0xffff, 0xffff), wireName, qtail, arec(192, 0, 2, 1)),
		"huge question count":              cat(header(1, flagsResponse, 0xffff, 1, 0, 0), wireName, qtail, arec(192, 0, 2, 1)),
		"query, huge counts, cut question": cat(header(1, 0x0100, 0xffff, 0xffff, 0xffff, 0xffff), wireName[:3]),
		// Compression pointer loops: in the question, between two names,
		// in an answer's owner name and in a CNAME's target.
		"pointer to itself":   cat(header(1, flagsResponse, 1, 0, 0, 0), []byte{0xc0, 12}, qtail),
		"two-pointer loop":    cat(header(1, flagsResponse, 1, 0, 0, 0), []byte{0xc0, 14, 0xc0, 12}, qtail),
		"label then loop":     cat(header(1, flagsResponse, 1, 0, 0, 0), []byte{1, 'a', 0xc0, 12}, qtail),
		"pointer past end":    cat(header(1, flagsResponse, 1, 0, 0, 0), []byte{0xc0, 0xff}, qtail),
		"pointer cut short":   cat(header(1, flagsResponse, 1, 0, 0, 0), []byte{0xc0}),
		"answer name loop":    cat(header(1, flagsResponse, 1, 1, 0, 0), wireName, qtail, []byte{0xc0, 29, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4}),
		"CNAME target loop":   cat(header(1, flagsResponse, 1, 1, 0, 0), wireName, qtail, []byte{0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 41}),
		"label runs past end": cat(header(1, flagsResponse, 1, 0, 0, 0), []byte{63, 'a', 'b'}),
		"reserved label type": cat(header(1, flagsResponse, 1, 0, 0, 0), []byte{0x40, 'a', 0}, qtail),
		"dot inside a label":  cat(header(1, flagsResponse, 1, 0, 0, 0), []byte{3, 'a', '.', 'b', 0}, qtail),
		"A data cut":          cat(header(1, flagsResponse, 1, 1, 0, 0), wireName, qtail, arec(192, 0)),
		"AAAA data cut":       cat(header(1, flagsResponse, 1, 1, 0, 0), wireName, qtail, []byte{0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8}),
		"TXT length too long": cat(header(1, flagsResponse, 1, 2, 0, 0), wireName, qtail, []byte{0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0xff, 0xff, 3, 'a', 'b', 'c'}),
		// Invalid UTF-8 grows threefold in strings.ToLower: past MaxNameLen.
	}
	// Every proper prefix of a valid response is malformed: its counts
	// promise more than is there.
	for n := 0; n < len(valid); n++ {
		cases[fmt.Sprintf("prefix %d of %d", n, len(valid))] = valid[:n]
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := Parse(b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(% x) = %+v, %v; want an error wrapping ErrMalformed", b, m, err)
			}
		})
	}
}

// Bytes that are not even close to DNS, of every length up to 600, and
// random-ish mutations of a valid message: errors or messages, never panics.
func TestParseNeverPanics(t *testing.T) {
	valid := build(t, resp(1), "www.example.com", dnsmessage.TypeA,
		cname("www.example.com", "edge.example.net"), a("edge.example.net", "192.0.2.1", 1))
	x := uint32(1)
	rnd := func() uint32 { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x }
	for n := 0; n < 600; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd())
		}
		if _, err := Parse(b); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error not wrapping ErrMalformed: %v", err)
		}
	}
	for i := 0; i < 20000; i++ {
		b := append([]byte(nil), valid...)
		for j := 0; j < 1+int(rnd()%4); j++ {
			b[rnd()%uint32(len(b))] = byte(rnd())
		}
		m, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			continue
		}
		checkMessage(t, b, m)
	}
}
