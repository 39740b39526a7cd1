package events_test

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/events"
)

type idCase struct {
	name    string
	id      string
	wantErr string // "" when the id is valid; otherwise a substring of the message
}

func checkIDs(t *testing.T, validate func(string) error, cases []idCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(tc.id)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("validate(%q) = %v, want nil", tc.id, err)
				}
				return
			}
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("validate(%q) = %v, want an ErrInvalid error", tc.id, err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("validate(%q) = %q, want it to mention %q", tc.id, err, tc.wantErr)
			}
		})
	}
}

func TestValidateNodeID(t *testing.T) {
	checkIDs(t, events.ValidateNodeID, []idCase{
		{"one letter", "a", ""},
		{"one digit", "7", ""},
		{"with hyphens", "win-node-01", ""},
		{"digit first", "01-node", ""},
		{"longest", strings.Repeat("n", 63), ""},
		{"empty", "", "must not be empty"},
		{"too long", strings.Repeat("n", 64), "longer than 63"},
		{"hyphen first", "-node", "must start with"},
		{"upper case", "Node1", "must start with"},
		{"upper case later", "nOde", "not allowed"},
		{"dot breaks subjects", "node.1", "not allowed"},
		{"underscore", "node_1", "not allowed"},
		{"star", "node*", "not allowed"},
		{"greater than", "node>", "not allowed"},
		{"space", "node 1", "not allowed"},
		{"tab", "node\t1", "not allowed"},
		{"slash", "node/1", "not allowed"},
		{"non-ascii", "nödé", "not allowed"},
		{"double dot", "a..b", "not allowed"},
	})
}

// containerLikeIDs are the cases container and exec ids share.
var containerLikeIDs = []idCase{
	{"one letter", "a", ""},
	{"one digit", "0", ""},
	{"upstream replica", "web-rep-1", ""},
	{"dots and underscores", "svc_a.v2-1", ""},
	{"longest", strings.Repeat("c", 128), ""},
	{"empty", "", "must not be empty"},
	{"too long", strings.Repeat("c", 129), "longer than 128"},
	{"dot first", ".web", "must start with"},
	{"hyphen first", "-web", "must start with"},
	{"underscore first", "_web", "must start with"},
	{"upper case first", "Web", "must start with"},
	{"upper case later", "wEb", "not allowed"},
	{"double dot", "web..1", `".."`},
	{"parent path", "a/../b", "not allowed"},
	{"final dot", "web.", `end with "."`},
	{"star", "web*", "not allowed"},
	{"greater than", "web>", "not allowed"},
	{"space", "web 1", "not allowed"},
	{"backslash", `web\1`, "not allowed"},
	{"colon", "c:web", "not allowed"},
	{"nul", "web\x00", "not allowed"},
}

func TestValidateContainerID(t *testing.T) {
	checkIDs(t, events.ValidateContainerID, containerLikeIDs)
}

func TestValidateExecID(t *testing.T) {
	checkIDs(t, events.ValidateExecID, containerLikeIDs)
}

func TestValidateCommandID(t *testing.T) {
	checkIDs(t, events.ValidateCommandID, []idCase{
		{"uuid", events.NewID(), ""},
		{"letters digits dash underscore", "Cmd-1_retry_2", ""},
		{"longest", strings.Repeat("x", 128), ""},
		{"empty", "", "must not be empty"},
		{"too long", strings.Repeat("x", 129), "longer than 128"},
		{"dot splits a subject", "a.b", "byte 1 ('.') is not"},
		{"star", "a*", "byte 1 ('*') is not"},
		{"greater", ">", "byte 0 ('>') is not"},
		{"colon", "cmd:1", "byte 3 (':') is not"},
		{"space", "a b", "byte 1 (' ') is not"},
		{"tab", "\tab", "byte 0 ('\\t') is not"},
		{"non-ascii", "é", "byte 0 ('Ã') is not"},
	})
}

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewID(t *testing.T) {
	before := time.Now().UnixMilli()
	const n = 1000
	seen := make(map[string]bool, n)
	for range n {
		id := events.NewID()
		if !uuidV7.MatchString(id) {
			t.Fatalf("NewID() = %q, not a UUIDv7 in canonical form", id)
		}
		if seen[id] {
			t.Fatalf("NewID() returned %q twice", id)
		}
		seen[id] = true
		if err := events.ValidateCommandID(id); err != nil {
			t.Fatalf("NewID() is not a valid command id: %v", err)
		}
		// The first 48 bits are the Unix time in milliseconds.
		ms, err := strconv.ParseInt(strings.ReplaceAll(id[:13], "-", ""), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		if after := time.Now().UnixMilli(); ms < before || ms > after {
			t.Fatalf("NewID() = %q carries time %d ms, want it within [%d, %d]", id, ms, before, after)
		}
	}
}
