package runtime

import (
	"errors"
	"testing"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
app:x:1000:1001:app:/home/app:/bin/sh
broken:x:abc:1:::
`

const testGroup = `root:x:0:
staff:x:50:
appgrp:x:1001:app
`

func TestOwnerResolve(t *testing.T) {
	for _, tc := range []struct {
		owner    string
		uid, gid int
		wantErr  error
	}{
		{owner: "", uid: 0, gid: 0},
		{owner: "root", uid: 0, gid: 0},
		{owner: "root:root", uid: 0, gid: 0},
		{owner: "1000", uid: 1000, gid: 0},
		{owner: "1000:50", uid: 1000, gid: 50},
		{owner: "0:0", uid: 0, gid: 0},
		{owner: "app", uid: 1000, gid: 1001},
		{owner: "app:staff", uid: 1000, gid: 50},
		{owner: "app:7", uid: 1000, gid: 7},
		{owner: "42:staff", uid: 42, gid: 50},
		{owner: "nobody", uid: 65534, gid: 65534},
		{owner: "ghost", wantErr: ErrUnknownOwner},
		{owner: "app:ghosts", wantErr: ErrUnknownOwner},
		{owner: "broken", wantErr: ErrUnknownOwner},
		{owner: ":1", wantErr: ErrInvalidSpec},
		{owner: "1:", wantErr: ErrInvalidSpec},
		{owner: "a b", wantErr: ErrInvalidSpec},
		{owner: "99999999999", wantErr: ErrInvalidSpec},
		{owner: "1x", wantErr: ErrInvalidSpec},
	} {
		o, err := ParseOwner(tc.owner)
		var uid, gid int
		if err == nil {
			uid, gid, err = o.Resolve([]byte(testPasswd), []byte(testGroup))
		}
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("owner %q: err %v, want %v", tc.owner, err, tc.wantErr)
			}
			continue
		}
		if err != nil || uid != tc.uid || gid != tc.gid {
			t.Errorf("owner %q = %d:%d, %v; want %d:%d", tc.owner, uid, gid, err, tc.uid, tc.gid)
		}
	}
}

func TestOwnerWithoutUserDatabase(t *testing.T) {
	o, err := ParseOwner("app")
	if err != nil || !o.NeedsLookup() {
		t.Fatalf("ParseOwner(app) = %+v, %v", o, err)
	}
	_, _, err = o.Resolve(nil, nil)
	if !errors.Is(err, ErrUnknownOwner) || err.Error() != `unknown file owner: user "app" is not in the image's /etc/passwd` {
		t.Fatalf("Resolve without passwd: %v", err)
	}
	if o, _ := ParseOwner("1000:1000"); o.NeedsLookup() {
		t.Fatalf("numeric owner needs no lookup")
	}
}
