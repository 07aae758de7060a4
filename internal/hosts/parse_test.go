package hosts

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tab := Parse([]byte(`# The default Debian file, and the odd cases glibc reads.
127.0.0.1	localhost
127.0.1.1	box.example	box
::1     localhost ip6-localhost ip6-loopback  # a trailing comment
ff02::1 ip6-allnodes
198.51.100.7 first.test alias.test
198.51.100.7 second.test first.test
  198.51.100.8   spaced.test	  tabbed.test  
198.51.100.9#nocomment.test
198.51.100.10
not-an-address name.test
fe80::1%eth0 scoped.test
::ffff:198.51.100.11 mapped.test
2001:db8::1 v6.test
198.51.100.012 leadingzero.test
198.51.100.13 crlf.test` + "\r\n"))
	for _, tc := range []struct {
		addr string
		want []string
	}{
		{"127.0.0.1", []string{"localhost"}},
		{"127.0.1.1", []string{"box.example", "box"}},
		{"::1", []string{"localhost", "ip6-localhost", "ip6-loopback"}},
		{"ff02::1", []string{"ip6-allnodes"}},
		// First line first (glibc's gethostbyaddr answer), later lines' names after.
		{"198.51.100.7", []string{"first.test", "alias.test", "second.test"}},
		{"198.51.100.8", []string{"spaced.test", "tabbed.test"}},
		{"198.51.100.9", nil},
		{"198.51.100.10", nil},
		{"fe80::1", nil},
		{"198.51.100.11", []string{"mapped.test"}},
		{"::ffff:198.51.100.11", []string{"mapped.test"}},
		{"2001:db8::1", []string{"v6.test"}},
		{"198.51.100.12", nil},
		{"198.51.100.13", []string{"crlf.test"}},
	} {
		if got := tab.Names(netip.MustParseAddr(tc.addr)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.addr, got, tc.want)
		}
	}
	// 198.51.100.9 (no name), .10, not-an-address, the scoped line, the leading zero.
	if tab.Skipped != 5 {
		t.Errorf("skipped %d, want 5", tab.Skipped)
	}
	if tab.Addrs() != 9 {
		t.Errorf("%d addresses, want 9", tab.Addrs())
	}
}

func TestParseBounds(t *testing.T) {
	long := strings.Repeat("a", MaxLineBytes)
	var b bytes.Buffer
	fmt.Fprintf(&b, "198.51.100.1 %s\n", long)                             // line too long
	fmt.Fprintf(&b, "198.51.100.2 ok.test %s\n", strings.Repeat("n", 256)) // name too long
	fmt.Fprintf(&b, "198.51.100.3 n0 n1 n2 n3 n4 n5 n6 n7 n8 n9\n")        // two names too many
	tab := Parse(b.Bytes())
	if tab.Names(netip.MustParseAddr("198.51.100.1")) != nil || !slices.Equal(tab.Names(netip.MustParseAddr("198.51.100.2")), []string{"ok.test"}) ||
		len(tab.Names(netip.MustParseAddr("198.51.100.3"))) != MaxNamesPerAddr {
		t.Errorf("bounded lines: %v", tab.names)
	}
	if tab.Skipped != 4 {
		t.Errorf("skipped %d, want 4", tab.Skipped)
	}

	// Past MaxAddrs addresses, and past MaxFileBytes.
	b.Reset()
	for i := range MaxAddrs + 10 {
		fmt.Fprintf(&b, "198.18.%d.%d h%d\n", i>>8, i&255, i)
	}
	tab = Parse(b.Bytes())
	if tab.Addrs() != MaxAddrs || tab.Skipped != 10 {
		t.Errorf("%d addresses, %d skipped; want %d, 10", tab.Addrs(), tab.Skipped, MaxAddrs)
	}
	b.Reset()
	line := "198.51.100.1 " + strings.Repeat("x", 100) + "\n"
	for b.Len() < MaxFileBytes-len(line)/2 {
		b.WriteString(line)
	}
	b.WriteString("198.51.100.2 cut.test\n") // straddles the bound
	b.WriteString("198.51.100.3 past.test\n")
	tab = Parse(b.Bytes())
	if tab.Skipped != 1 || tab.Names(netip.MustParseAddr("198.51.100.2")) != nil || tab.Names(netip.MustParseAddr("198.51.100.1")) == nil {
		t.Errorf("past %d bytes: skipped %d, names %v", MaxFileBytes, tab.Skipped, tab.names)
	}
	if tab.Bytes > 2*MaxFileBytes {
		t.Errorf("a 1 MiB file accounted as %d bytes", tab.Bytes)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("127.0.0.1 localhost\n::1 localhost ip6-localhost # c\n"))
	f.Add([]byte("198.51.100.7 a b\n198.51.100.7 c a\nfe80::1%eth0 x\n\x00\xff 1.2.3.4\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab := Parse(data)
		if tab.Addrs() > MaxAddrs {
			t.Fatalf("%d addresses", tab.Addrs())
		}
		bytes := 0
		for a, names := range tab.names {
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() || len(names) == 0 || len(names) > MaxNamesPerAddr {
				t.Fatalf("%v: %q", a, names)
			}
			bytes += addrCost
			for i, n := range names {
				if n == "" || len(n) > MaxNameBytes || strings.ContainsAny(n, " \t\r\n#") || slices.Contains(names[:i], n) {
					t.Fatalf("%v: name %q of %q", a, n, names)
				}
				bytes += nameCost + len(n)
			}
		}
		if bytes != tab.Bytes {
			t.Fatalf("accounted %d bytes, holds %d", tab.Bytes, bytes)
		}
	})
}
