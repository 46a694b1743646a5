package runtime

import (
	"fmt"
	"strings"
)

// SplitArgs splits s into words the way a POSIX shell splits a simple
// command line, without running anything:
//
//   - unquoted blanks (space, tab, newline) separate words;
//   - a backslash outside quotes takes the next character literally, and a
//     backslash-newline is removed (line continuation);
//   - inside single quotes every character is literal;
//   - inside double quotes a backslash escapes only $ ` " \ and newline, and
//     is literal before anything else;
//   - quotes join with adjacent text into one word, and a pair of quotes alone makes
//     an empty word.
//
// There is no expansion: $VAR, `cmd`, ~, globs, #, | ; & < > ( ) are plain
// characters. So `-c 'echo Hello World'` gives ["-c", "echo Hello World"].
// An unterminated quote or a trailing backslash is an error that says where
// the quote starts.
func SplitArgs(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool // cur holds a word, possibly empty ("")
		i      = 0
		n      = len(s)
	)
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i < n {
		c := s[i]
		switch c {
		case ' ', '\t', '\n':
			flush()
			i++
		case '\\':
			if i+1 >= n {
				return nil, fmt.Errorf("%w at offset %d: trailing backslash", ErrSplitArgs, i)
			}
			if s[i+1] != '\n' { // backslash-newline is a line continuation
				cur.WriteByte(s[i+1])
				inWord = true
			}
			i += 2
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("%w at offset %d: unterminated single quote", ErrSplitArgs, i)
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case '"':
			start := i
			i++
			closed := false
			for i < n {
				c := s[i]
				if c == '"' {
					closed = true
					i++
					break
				}
				if c == '\\' && i+1 < n {
					switch n := s[i+1]; n {
					case '$', '`', '"', '\\':
						cur.WriteByte(n)
						i += 2
						continue
					case '\n':
						i += 2
						continue
					}
				}
				cur.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("%w at offset %d: unterminated double quote", ErrSplitArgs, start)
			}
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	flush()
	return words, nil
}

// QuoteArgs is the inverse of SplitArgs: it joins args into one string that
// SplitArgs (and a POSIX shell) splits back into exactly args.
func QuoteArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}
