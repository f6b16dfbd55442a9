package main

// A JSON syntax check that accepts exactly what JavaScript's JSON.parse accepts (the agent parses the same
// bytes with it), without a nesting limit, and that returns the spans of the top-level object's members.
// encoding/json alone would refuse documents nested deeper than 10000 levels, which the agent answers for.

import (
	"encoding/json"
	"fmt"
)

type member struct {
	key   string
	value []byte
}

type syntaxError struct {
	msg string
	at  int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at position %d", e.msg, e.at) }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(msg string) error {
	if s.i >= len(s.b) {
		return &syntaxError{"unexpected end of JSON input", s.i}
	}
	return &syntaxError{fmt.Sprintf("%s %q", msg, s.b[s.i]), s.i}
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (s *scanner) str() error {
	s.i++ // opening quote
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return nil
		case c < 0x20:
			return s.fail("bad control character in string literal")
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return s.fail("")
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for k := 0; k < 4; k++ {
					if s.i >= len(s.b) || !isHex(s.b[s.i]) {
						return s.fail("bad Unicode escape")
					}
					s.i++
				}
			default:
				return s.fail("bad escaped character")
			}
		default:
			s.i++
		}
	}
	return s.fail("")
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return s.fail("no number after minus sign")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return s.fail("unterminated fractional number")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return s.fail("exponent part is missing a number")
		}
	}
	return nil
}

func (s *scanner) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if s.i >= len(s.b) || s.b[s.i] != word[k] {
			return s.fail("unexpected token")
		}
		s.i++
	}
	return nil
}

// scalar scans a string, number or literal at s.i.
func (s *scanner) scalar() error {
	if s.i >= len(s.b) {
		return s.fail("")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.str()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.fail("unexpected token")
}

// value scans one value of any depth at s.i, iteratively: an explicit stack of open containers.
func (s *scanner) value() error {
	var stack []byte // '{' or '['
	for {
		s.skipSpace()
		if s.i >= len(s.b) {
			return s.fail("")
		}
		c := s.b[s.i]
		if c == '{' || c == '[' {
			s.i++
			s.skipSpace()
			if s.i < len(s.b) && s.b[s.i] == c+2 { // '}' is '{'+2, ']' is '['+2
				s.i++
			} else {
				stack = append(stack, c)
				if c == '{' {
					if _, err := s.key(); err != nil {
						return err
					}
				}
				continue
			}
		} else if err := s.scalar(); err != nil {
			return err
		}
		// A value ended: close containers or go on to the next element.
		for {
			if len(stack) == 0 {
				return nil
			}
			s.skipSpace()
			if s.i >= len(s.b) {
				return s.fail("")
			}
			top := stack[len(stack)-1]
			if s.b[s.i] == ',' {
				s.i++
				if top == '{' {
					s.skipSpace()
					if _, err := s.key(); err != nil {
						return err
					}
				}
				break
			}
			if s.b[s.i] != top+2 {
				return s.fail("unexpected token")
			}
			s.i++
			stack = stack[:len(stack)-1]
		}
	}
}

// key scans `"name" :` at s.i (after whitespace); name is the quoted name as written.
func (s *scanner) key() (name []byte, err error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, s.fail("expected property name, got")
	}
	start := s.i
	if err := s.str(); err != nil {
		return nil, err
	}
	name = s.b[start:s.i]
	s.skipSpace()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return nil, s.fail("expected ':' after property name, got")
	}
	s.i++
	return name, nil
}

// parseTop checks that b is one JSON document. For an object it returns its members in order (a later
// duplicate wins, as in JSON.parse); isObject is false for any other valid document.
func parseTop(b []byte) (members []member, isObject bool, err error) {
	s := &scanner{b: b}
	s.skipSpace()
	if s.i < len(b) && b[s.i] == '{' {
		isObject = true
		s.i++
		s.skipSpace()
		if s.i < len(b) && b[s.i] == '}' {
			s.i++
		} else {
			for {
				s.skipSpace()
				raw, err := s.key()
				if err != nil {
					return nil, false, err
				}
				var name string
				if err := json.Unmarshal(raw, &name); err != nil {
					return nil, false, err
				}
				s.skipSpace()
				vStart := s.i
				if err := s.value(); err != nil {
					return nil, false, err
				}
				members = append(members, member{key: name, value: b[vStart:s.i]})
				s.skipSpace()
				if s.i < len(b) && b[s.i] == ',' {
					s.i++
					continue
				}
				if s.i < len(b) && b[s.i] == '}' {
					s.i++
					break
				}
				return nil, false, s.fail("expected ',' or '}' after property value, got")
			}
		}
	} else if err := s.value(); err != nil {
		return nil, false, err
	}
	s.skipSpace()
	if s.i < len(b) {
		return nil, false, s.fail("unexpected non-whitespace character after JSON")
	}
	return members, isObject, nil
}

// lookup is the value of the last member named key, or nil.
func lookup(members []member, key string) []byte {
	var v []byte
	for _, m := range members {
		if m.key == key {
			v = m.value
		}
	}
	return v
}
