// Package output renders events for people (a table) and for programs
// (JSON lines). Event fields such as process names come from the kernel
// and from whoever named the process: they are escaped, never trusted.
package output

import (
	"unicode"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// appendTerminalSafe appends s with everything that could drive a terminal
// escaped: control characters (C0, DEL, C1), invalid UTF-8 and backslash
// become \xNN (backslash becomes \\), so the escaping is unambiguous. It
// returns the buffer and how many columns the appended text takes.
func appendTerminalSafe(b []byte, s []byte) ([]byte, int) {
	width := 0
	for len(s) > 0 {
		// Printable ASCII but the backslash is copied as is, a run at a
		// time: most names are nothing else.
		if n := safeASCII(s, '\\'); n > 0 {
			b = append(b, s[:n]...)
			width += n
			s = s[n:]
			continue
		}
		r, size := utf8.DecodeRune(s)
		switch {
		case r == utf8.RuneError && size <= 1:
			b = append(b, '\\', 'x', hexDigits[s[0]>>4], hexDigits[s[0]&0xf])
			width += 4
		case r == '\\':
			b = append(b, '\\', '\\')
			width += 2
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || !unicode.IsPrint(r):
			// Escape the bytes, not the rune value, so U+009B (C2 9B) and
			// an invalid lone 9B byte read differently.
			for _, c := range s[:size] {
				b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
				width += 4
			}
		default:
			b = append(b, s[:size]...)
			width++
		}
		s = s[size:]
	}
	return b, width
}

// TerminalSafe is s escaped like appendTerminalSafe, for callers that
// build strings (summaries).
func TerminalSafe(s string) string {
	b, _ := appendTerminalSafe(nil, []byte(s))
	return string(b)
}

// appendJSONString appends s as a JSON string. Control characters are
// escaped as \u00XX and invalid UTF-8 becomes U+FFFD (as encoding/json
// does), so every line is valid JSON whatever bytes s holds. U+2028 and
// U+2029 are escaped too, for JavaScript consumers.
func appendJSONString(b []byte, s []byte) []byte {
	b = append(b, '"')
	for len(s) > 0 {
		// Printable ASCII but the quote and the backslash needs no
		// escape: copied a run at a time.
		if n := safeASCII(s, '"'); n > 0 {
			b = append(b, s[:n]...)
			s = s[n:]
			continue
		}
		c := s[0]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			s = s[1:]
			continue
		}
		r, size := utf8.DecodeRune(s)
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[:size]...)
		}
		s = s[size:]
	}
	return append(b, '"')
}

// safeASCII is the length of s's leading run of printable ASCII bytes
// (0x20-0x7e) other than the backslash and special.
func safeASCII(s []byte, special byte) int {
	for i, c := range s {
		if c < 0x20 || c > 0x7e || c == '\\' || c == special {
			return i
		}
	}
	return len(s)
}
