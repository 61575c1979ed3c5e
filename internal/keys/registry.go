package keys

// Registry is the key of the queue registry (docs/protocol.md §16): a set
// of the queues that exist, each member written as the queue appears in
// its keys (QueuePart): the name in Carmine's layout, {name} in the
// cluster layout, so that one key serves both and a client reads the
// members of its own layout alone. It is one key, under Prefix (where an
// ACL for this library allows keys) yet no queue's key: a queue's keys
// hold a colon after the name, and "queues" holds none. Carmine never
// reads it.
const Registry = Prefix + "queues"

// QueueFromMember returns the queue name a registry member stands for in
// the given layout, and whether the member is of that layout.
func QueueFromMember(member string, cluster bool) (string, bool) {
	braced := len(member) >= 2 && member[0] == '{' && member[len(member)-1] == '}'
	if braced != cluster {
		return "", false
	}
	if cluster {
		member = member[1 : len(member)-1]
	}
	if member == "" {
		return "", false
	}
	return member, true
}

// Match tells whether name matches the glob pattern as Redis's SCAN MATCH
// reads it: '*' any run of bytes, '?' one byte, "[abc]", "[^abc]" and
// "[a-z]" a byte of a class, and '\' makes the next byte plain. The
// registry's members are filtered by it, so that a pattern finds the same
// queues there as by SCAN.
func Match(pattern, name string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 1 && pattern[1] == '*' {
				pattern = pattern[1:]
			}
			if len(pattern) == 1 {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if Match(pattern[1:], name[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(name) == 0 {
				return false
			}
			name = name[1:]
			pattern = pattern[1:]
		case '[':
			if len(name) == 0 {
				return false
			}
			rest, ok := matchClass(pattern[1:], name[0])
			if !ok {
				return false
			}
			name, pattern = name[1:], rest
		case '\\':
			if len(pattern) > 1 {
				pattern = pattern[1:]
			}
			fallthrough
		default:
			if len(name) == 0 || name[0] != pattern[0] {
				return false
			}
			name, pattern = name[1:], pattern[1:]
		}
	}
	return len(name) == 0
}

// matchClass matches byte b against the class that starts after a '[',
// and returns the pattern after the class's ']' (a class left open runs
// to the pattern's end, as Redis reads it).
func matchClass(p string, b byte) (string, bool) {
	not := len(p) > 0 && p[0] == '^'
	if not {
		p = p[1:]
	}
	match := false
	for len(p) > 0 && p[0] != ']' {
		switch {
		case p[0] == '\\' && len(p) >= 2:
			match = match || p[1] == b
			p = p[2:]
		case len(p) >= 3 && p[1] == '-':
			lo, hi := p[0], p[2]
			if lo > hi {
				lo, hi = hi, lo
			}
			match = match || (lo <= b && b <= hi)
			p = p[3:]
		default:
			match = match || p[0] == b
			p = p[1:]
		}
	}
	if len(p) > 0 {
		p = p[1:] // the ']'
	}
	return p, match != not
}
