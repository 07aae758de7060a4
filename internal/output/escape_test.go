package output

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestAppendTerminalSafe(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  string
		width int
	}{
		{"plain", "curl", "curl", 4},
		{"empty", "", "", 0},
		{"ESC colour", "\x1b[31mevil", `\x1b[31mevil`, 12},
		{"OSC title", "\x1b]0;pwned\x07", `\x1b]0;pwned\x07`, 16},
		{"newline", "a\nb", `a\x0ab`, 6},
		{"carriage return", "a\rb", `a\x0db`, 6},
		{"tab", "a\tb", `a\x09b`, 6},
		{"NUL", "a\x00b", `a\x00b`, 6},
		{"DEL", "a\x7fb", `a\x7fb`, 6},
		{"raw C1 CSI byte", "a\x9bb", `a\x9bb`, 6},
		{"invalid UTF-8", "a\xffb", `a\xffb`, 6},
		{"truncated UTF-8", "caf\xc3", `caf\xc3`, 7},
		{"UTF-8 surrogate", "\xed\xa0\x80", `\xed\xa0\x80`, 12},
		{"backslash", `a\b`, `a\\b`, 4},
		{"backslash-x lookalike", `\x1b`, `\\x1b`, 5},
		{"space", "a b", "a b", 3},
		{"printable UTF-8", "héllo€", "héllo€", 6},
		{"literal U+FFFD", "\uFFFD", "\uFFFD", 1},
		{"line separator", "a\u2028b", `a\xe2\x80\xa8b`, 14},
		{"zero width space", "\u200b", `\xe2\x80\x8b`, 12},
		{"bidi override", "\u202e", `\xe2\x80\xae`, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("pre|")
			got, w := appendTerminalSafe(prefix, []byte(tt.in))
			if string(got) != "pre|"+tt.want {
				t.Errorf("appendTerminalSafe(%q) = %q, want %q", tt.in, got[4:], tt.want)
			}
			if w != tt.width {
				t.Errorf("width = %d, want %d", w, tt.width)
			}
			checkTerminalSafe(t, got)
		})
	}
}

// A C1 control encoded as valid UTF-8 (U+009B is C2 9B) must not reach the
// terminal either: some terminals act on it.
func TestAppendTerminalSafeUTF8C1(t *testing.T) {
	for _, in := range []string{"a\u009bb", "\u0085", "\u0080\u009f", "\u00a0", "\u00ad"} {
		got, w := appendTerminalSafe(nil, []byte(in))
		checkTerminalSafe(t, got)
		if strings.ContainsAny(string(got), "\u0080\u0085\u009b\u009f\u00a0\u00ad") {
			t.Errorf("appendTerminalSafe(%q) = %q: control rune passed through", in, got)
		}
		if w != utf8.RuneCount(got) {
			t.Errorf("appendTerminalSafe(%q): width %d for %q", in, w, got)
		}
	}
}

// The escaping is unambiguous: a non-printable U+0080..U+00FF rune (C2 9B
// for U+009B) and an invalid lone byte (9B) read differently.
func TestAppendTerminalSafeUnambiguous(t *testing.T) {
	pairs := [][2]string{
		{"\u009b", "\x9b"},
		{"\u00a0", "\xa0"},
		{"\u00ad", "\xad"},
	}
	for _, p := range pairs {
		a, _ := appendTerminalSafe(nil, []byte(p[0]))
		b, _ := appendTerminalSafe(nil, []byte(p[1]))
		if string(a) == string(b) {
			t.Errorf("%q and %q both escape to %q", p[0], p[1], a)
		}
	}
}

// checkTerminalSafe fails if b could drive a terminal: it must be valid
// UTF-8 with no C0, DEL or C1 control and nothing non-printable, except a
// final newline.
func checkTerminalSafe(t *testing.T, b []byte) {
	t.Helper()
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	if !utf8.ValidString(s) {
		t.Errorf("output %q is not valid UTF-8", b)
		return
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r != ' ' && !unicode.IsPrint(r)) {
			t.Errorf("output %q holds %U at byte %d", b, r, i)
		}
	}
	for i, c := range []byte(s) {
		if c < 0x20 || c == 0x7f {
			t.Errorf("output %q holds byte %#x at %d", b, c, i)
		}
	}
}

// unescapeTerminal reverses appendTerminalSafe's \\ and \xNN.
func unescapeTerminal(s string) (string, bool) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b = append(b, s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\\' {
			b = append(b, '\\')
			i++
			continue
		}
		if i+3 < len(s) && s[i+1] == 'x' {
			hi, lo := strings.IndexByte(hexDigits, s[i+2]), strings.IndexByte(hexDigits, s[i+3])
			if hi < 0 || lo < 0 {
				return "", false
			}
			b = append(b, byte(hi<<4|lo))
			i += 3
			continue
		}
		return "", false
	}
	return string(b), true
}

func FuzzAppendTerminalSafe(f *testing.F) {
	for _, s := range []string{"curl", "\x1b[31mevil", "a\nb\r\t", "\x7f\x9b\xff", `back\slash`, "héllo", "\u2028\u200b", "\xc2\x9b", "\xed\xa0\x80", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := string(in)
		prefix := []byte("P")
		out, w := appendTerminalSafe(prefix, in)
		if string(in) != orig {
			t.Fatalf("input modified")
		}
		if out[0] != 'P' {
			t.Fatalf("prefix overwritten")
		}
		esc := out[1:]
		checkTerminalSafe(t, esc)
		if n := utf8.RuneCount(esc); w != n {
			t.Fatalf("width %d, but %q is %d runes", w, esc, n)
		}
		back, ok := unescapeTerminal(string(esc))
		if !ok || back != orig {
			t.Fatalf("%q escapes to %q, which reads back as %q (ok=%v)", orig, esc, back, ok)
		}
	})
}

func TestAppendJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"curl", `"curl"`},
		{`say "hi"`, `"say \"hi\""`},
		{`a\b`, `"a\\b"`},
		{"a\nb\rc\td", `"a\nb\rc\td"`},
		{"\x1b[31mevil", `"\u001b[31mevil"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"a\x7fb", `"a\u007fb"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\x9b", `"\ufffd"`},
		{"\xc3", `"\ufffd"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"héllo€", `"héllo€"`},
		{"\u009b", "\"\u009b\""}, // valid UTF-8 C1 is legal in JSON
		{"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"</script>&", `"</script>&"`},
	}
	for _, tt := range tests {
		got := appendJSONString([]byte("x"), []byte(tt.in))
		if string(got) != "x"+tt.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got[1:], tt.want)
			continue
		}
		if !json.Valid(got[1:]) {
			t.Errorf("appendJSONString(%q) = %s: not valid JSON", tt.in, got[1:])
		}
		var back string
		if err := json.Unmarshal(got[1:], &back); err != nil {
			t.Errorf("Unmarshal(%s): %v", got[1:], err)
		} else if want := string([]rune(tt.in)); back != want {
			t.Errorf("appendJSONString(%q) reads back as %q, want %q", tt.in, back, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"curl", "\x1b[31mevil", "a\nb\r\t\"\\", "\x7f\x9b\xff", "héllo", "\u2028\u2029", "\xed\xa0\x80", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := string(in)
		out := appendJSONString(nil, in)
		if !json.Valid(out) {
			t.Fatalf("%q -> %s: not valid JSON", orig, out)
		}
		for i, c := range out {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("%q -> %q: raw byte %#x at %d", orig, out, c, i)
			}
		}
		if !utf8.Valid(out) || strings.ContainsAny(string(out), "\u2028\u2029") {
			t.Fatalf("%q -> %q: invalid UTF-8 or raw U+2028/U+2029", orig, out)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("Unmarshal(%s): %v", out, err)
		}
		// Valid UTF-8 reads back exactly (U+2028/U+2029 included, they are
		// only escaped); each invalid byte reads back as one U+FFFD.
		want := string([]rune(orig))
		if utf8.ValidString(orig) && want != orig {
			t.Fatalf("[]rune conversion changed valid UTF-8")
		}
		if back != want {
			t.Fatalf("%q -> %s -> %q, want %q", orig, out, back, want)
		}
		if string(in) != orig {
			t.Fatalf("input modified")
		}
	})
}
