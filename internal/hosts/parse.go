// Package hosts names addresses from the hosts file (/etc/hosts) each
// process sees: its own mount namespace's, read through /proc/PID/root.
// The parser follows glibc's nss_files: '#' starts a comment, fields are
// separated by blanks, the first field is an IPv4 or IPv6 address (a line
// with anything else, a scoped address such as fe80::1%eth0 included, is
// ignored), the second the canonical name, the rest aliases; for an
// address on several lines the first line wins, as glibc's
// gethostbyaddr returns it.
package hosts

import (
	"bytes"
	"net/netip"
)

// Bounds on what one hosts file may cost. A file is read up to
// MaxFileBytes; what lies past that, lines over MaxLineBytes, names over
// MaxNameBytes, and addresses past MaxAddrs or names past MaxNamesPerAddr
// are skipped and counted (Table.Skipped).
const (
	MaxFileBytes    = 1 << 20
	MaxLineBytes    = 4096
	MaxNameBytes    = 255
	MaxAddrs        = 16384
	MaxNamesPerAddr = 8

	// What a kept address or name costs beyond its own bytes (the map
	// slot, the slice and string headers), rounded up.
	addrCost = 96
	nameCost = 16
)

// Table is a parsed hosts file: the names of each address, the canonical
// one first.
type Table struct {
	names map[netip.Addr][]string
	// Skipped counts what the file held that the table does not: lines
	// that are not an address and a name (malformed, or a scoped
	// address), lines over MaxLineBytes, names over MaxNameBytes or past
	// MaxNamesPerAddr, addresses past MaxAddrs, and the part past
	// MaxFileBytes (one, however long).
	Skipped int
	// Bytes is what the table holds, accounted as its names' bytes plus a
	// fixed cost per address and name.
	Bytes int
}

// Names returns the names the file gives addr, the canonical one first;
// nil if none. The slice is the table's: do not modify it.
func (t *Table) Names(addr netip.Addr) []string {
	if t == nil {
		return nil
	}
	return t.names[addr.Unmap()]
}

// Addrs is how many addresses have names.
func (t *Table) Addrs() int {
	if t == nil {
		return 0
	}
	return len(t.names)
}

// Parse reads a hosts file's contents. Past MaxFileBytes it reads
// nothing more (the rest counts as one skipped item); a last line cut
// there is part of that rest.
func Parse(data []byte) *Table {
	t := &Table{names: map[netip.Addr][]string{}}
	if len(data) > MaxFileBytes {
		data = data[:MaxFileBytes]
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			data = data[:i+1]
		} else {
			data = nil
		}
		t.Skipped++
	}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) > MaxLineBytes {
			t.Skipped++
			continue
		}
		t.line(line)
	}
	return t
}

func blank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

// field returns the first blank-separated field of b and what follows it.
func field(b []byte) (f, rest []byte) {
	i := 0
	for i < len(b) && blank(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !blank(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

// line adds one line's names.
func (t *Table) line(line []byte) {
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	a, rest := field(line)
	if len(a) == 0 {
		return // blank or comment
	}
	addr, err := netip.ParseAddr(string(a))
	name, rest := field(rest)
	if err != nil || addr.Zone() != "" || len(name) == 0 {
		t.Skipped++ // glibc ignores the line too
		return
	}
	addr = addr.Unmap()
	names, known := t.names[addr]
	if !known && len(t.names) >= MaxAddrs {
		t.Skipped++
		return
	}
	for ; len(name) > 0; name, rest = field(rest) {
		switch {
		case len(name) > MaxNameBytes, len(names) >= MaxNamesPerAddr:
			t.Skipped++
		case !has(names, name):
			names = append(names, string(name))
			t.Bytes += nameCost + len(name)
		}
	}
	if !known && len(names) > 0 {
		t.Bytes += addrCost
	}
	if len(names) > 0 {
		t.names[addr] = names
	}
}

func has(names []string, name []byte) bool {
	for _, n := range names {
		if n == string(name) {
			return true
		}
	}
	return false
}
