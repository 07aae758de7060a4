// Package dns turns DNS messages seen on the wire into names for
// addresses: it parses them (golang.org/x/net/dns/dnsmessage, with our
// own bounds on top), reassembles DNS over TCP, matches responses to
// queries, and keeps a bounded, TTL-honouring cache of which process
// resolved which name to which address. Everything here handles
// attacker-controlled bytes: every loop and length is bounded, nothing
// panics, malformed input is an error to count and skip.
package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tuxscope/tuxscope/internal/event"
)

// Limits on what one message may make us do.
const (
	MaxAnswers  = 64 // answer records read per message
	MaxChain    = 16 // CNAME hops followed
	MaxNameLen  = 255
	MaxQuestion = 1 // questions read (resolvers send one)
)

// Message is the part of a DNS message tuxscope uses.
type Message struct {
	ID       uint16
	Response bool
	RCode    dnsmessage.RCode
	Name     string // the question, lower case, without the final dot
	Type     dnsmessage.Type
	Class    dnsmessage.Class
	// Addrs are the addresses the question's name resolves to, after
	// following CNAMEs in the answer section; CNAMEs the chain, in order.
	Addrs  []Addr
	CNAMEs []string
}

// Addr is one answer address with its TTL.
type Addr struct {
	IP  netip.Addr
	TTL uint32
}

// ErrMalformed wraps every parse failure.
var ErrMalformed = errors.New("malformed DNS message")

// normalize lowers ASCII letters only (DNS compares names ASCII
// case-insensitively) and drops the final dot.
func normalize(n dnsmessage.Name) string {
	b := []byte(strings.TrimSuffix(n.String(), "."))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Parse reads one DNS message (without the TCP length prefix).
func Parse(b []byte) (Message, error) {
	var (
		p   dnsmessage.Parser
		m   Message
		err error
	)
	h, err := p.Start(b)
	if err != nil {
		return m, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	m.ID, m.Response, m.RCode = h.ID, h.Response, h.RCode
	q, err := p.Question()
	if err != nil {
		return m, fmt.Errorf("%w: question: %v", ErrMalformed, err)
	}
	m.Name, m.Type, m.Class = normalize(q.Name), q.Type, q.Class
	if len(m.Name) > MaxNameLen {
		return m, fmt.Errorf("%w: name too long", ErrMalformed)
	}
	if !m.Response {
		return m, nil
	}
	if err := p.SkipAllQuestions(); err != nil {
		return m, fmt.Errorf("%w: questions: %v", ErrMalformed, err)
	}
	// Collect the answer section, then follow the chain from the question.
	type rr struct {
		name, target string
		ip           netip.Addr
		ttl          uint32
	}
	var rrs []rr
	for i := 0; i < MaxAnswers; i++ {
		ah, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return m, fmt.Errorf("%w: answer: %v", ErrMalformed, err)
		}
		r := rr{name: normalize(ah.Name), ttl: ah.TTL}
		switch ah.Type {
		case dnsmessage.TypeA:
			if ah.Length != 4 {
				return m, fmt.Errorf("%w: A record of %d bytes", ErrMalformed, ah.Length)
			}
			a, err := p.AResource()
			if err != nil {
				return m, fmt.Errorf("%w: A: %v", ErrMalformed, err)
			}
			r.ip = netip.AddrFrom4(a.A)
		case dnsmessage.TypeAAAA:
			if ah.Length != 16 {
				return m, fmt.Errorf("%w: AAAA record of %d bytes", ErrMalformed, ah.Length)
			}
			a, err := p.AAAAResource()
			if err != nil {
				return m, fmt.Errorf("%w: AAAA: %v", ErrMalformed, err)
			}
			r.ip = netip.AddrFrom16(a.AAAA)
		case dnsmessage.TypeCNAME:
			c, err := p.CNAMEResource()
			if err != nil {
				return m, fmt.Errorf("%w: CNAME: %v", ErrMalformed, err)
			}
			r.target = normalize(c.CNAME)
		default:
			if err := p.SkipAnswer(); err != nil {
				return m, fmt.Errorf("%w: answer: %v", ErrMalformed, err)
			}
			continue
		}
		rrs = append(rrs, r)
	}
	name := m.Name
	for hop := 0; hop <= MaxChain; hop++ {
		next := ""
		for _, r := range rrs {
			if r.name != name {
				continue
			}
			if r.ip.IsValid() {
				m.Addrs = append(m.Addrs, Addr{IP: r.ip, TTL: r.ttl})
			} else if r.target != "" && next == "" {
				next = r.target
			}
		}
		if next == "" || len(m.Addrs) > 0 {
			break
		}
		m.CNAMEs = append(m.CNAMEs, next)
		name = next
	}
	return m, nil
}

// Info is the --dns view of a response: the question, its type and
// rcode by name, the CNAME chain, the addresses and their smallest TTL.
func Info(m *Message) *event.DNSInfo {
	info := &event.DNSInfo{Name: m.Name, QType: strings.TrimPrefix(m.Type.String(), "Type"), RCode: rcodeNames[m.RCode], CNAMEs: m.CNAMEs}
	if info.RCode == "" {
		info.RCode = fmt.Sprintf("RCODE%d", m.RCode)
	}
	for i, a := range m.Addrs {
		info.Answers = append(info.Answers, a.IP.String())
		if i == 0 || a.TTL < info.TTL {
			info.TTL = a.TTL
		}
	}
	return info
}

var rcodeNames = map[dnsmessage.RCode]string{
	dnsmessage.RCodeSuccess: "NOERROR", dnsmessage.RCodeFormatError: "FORMERR", dnsmessage.RCodeServerFailure: "SERVFAIL",
	dnsmessage.RCodeNameError: "NXDOMAIN", dnsmessage.RCodeNotImplemented: "NOTIMP", dnsmessage.RCodeRefused: "REFUSED",
}
