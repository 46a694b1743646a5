package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Owner is a parsed FileMount.Owner. A part given as a number has its ID set
// and its name empty; a part given as a name has ID -1 until resolved.
type Owner struct {
	User  string
	UID   int
	Group string
	GID   int // -1 with Group "" means: the user's primary group (0 for a numeric user)
}

// ParseOwner parses "", "root", "UID", "UID:GID", "NAME", "NAME:GROUP" (and
// mixes such as "NAME:GID"). The empty string means root.
func ParseOwner(s string) (Owner, error) {
	if s == "" {
		return Owner{UID: 0, GID: 0}, nil
	}
	user, group, hasGroup := strings.Cut(s, ":")
	if user == "" || (hasGroup && group == "") || strings.ContainsAny(s, " \t\n/") {
		return Owner{}, fmt.Errorf("%w: owner %q: want UID, UID:GID, NAME or NAME:GROUP", ErrInvalidSpec, s)
	}
	o := Owner{UID: -1, GID: -1}
	var err error
	if o.UID, o.User, err = idOrName(user); err != nil {
		return Owner{}, fmt.Errorf("%w: owner %q: %v", ErrInvalidSpec, s, err)
	}
	if hasGroup {
		if o.GID, o.Group, err = idOrName(group); err != nil {
			return Owner{}, fmt.Errorf("%w: owner %q: %v", ErrInvalidSpec, s, err)
		}
	}
	if o.User == "root" {
		o.UID, o.User = 0, ""
	}
	if o.Group == "root" {
		o.GID, o.Group = 0, ""
	}
	return o, nil
}

func idOrName(s string) (int, string, error) {
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.ParseUint(s, 10, 31)
		if err != nil {
			return 0, "", fmt.Errorf("bad id %q", s)
		}
		return int(n), "", nil
	}
	return -1, s, nil
}

// NeedsLookup reports whether resolving o needs the image's user database.
func (o Owner) NeedsLookup() bool { return o.User != "" || o.Group != "" }

// Resolve turns o into numeric ids, looking names up in the contents of an
// /etc/passwd and /etc/group file (either may be nil when the image has none).
// A name that is not found wraps ErrUnknownOwner.
func (o Owner) Resolve(passwd, group []byte) (uid, gid int, err error) {
	uid, gid = o.UID, o.GID
	if o.User != "" {
		e, ok := lookupDB(passwd, o.User)
		if !ok {
			return 0, 0, fmt.Errorf("%w: user %q is not in the image's /etc/passwd", ErrUnknownOwner, o.User)
		}
		if uid, err = strconv.Atoi(e[2]); err != nil {
			return 0, 0, fmt.Errorf("%w: user %q has a bad uid %q in /etc/passwd", ErrUnknownOwner, o.User, e[2])
		}
		if gid < 0 && o.Group == "" {
			if gid, err = strconv.Atoi(e[3]); err != nil {
				return 0, 0, fmt.Errorf("%w: user %q has a bad gid %q in /etc/passwd", ErrUnknownOwner, o.User, e[3])
			}
		}
	}
	if o.Group != "" {
		e, ok := lookupDB(group, o.Group)
		if !ok {
			return 0, 0, fmt.Errorf("%w: group %q is not in the image's /etc/group", ErrUnknownOwner, o.Group)
		}
		if gid, err = strconv.Atoi(e[2]); err != nil {
			return 0, 0, fmt.Errorf("%w: group %q has a bad gid %q in /etc/group", ErrUnknownOwner, o.Group, e[2])
		}
	}
	if gid < 0 {
		gid = 0
	}
	return uid, gid, nil
}

// lookupDB finds the line of a passwd- or group-format file whose first
// field is name, and returns its fields (at least 4).
func lookupDB(db []byte, name string) ([]string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(db))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) >= 4 && f[0] == name {
			return f, true
		}
	}
	return nil, false
}
