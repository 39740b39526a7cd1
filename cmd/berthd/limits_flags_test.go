package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestExecAndLogSettingsRefused: out-of-range exec and log stream settings
// stop berthd at start with an error naming the flag, from the command line
// and from the environment alike.
func TestExecAndLogSettingsRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--exec-max-per-container", "0"}, want: "--exec-max-per-container 0: want at least 1"},
		{args: []string{"--exec-idle-timeout", "500ms"}, want: "--exec-idle-timeout 500ms: want at least 2s"},
		{args: []string{"--log-max-bytes", "lots"}, want: `--log-max-bytes "lots"`},
		{args: []string{"--log-max-bytes", "512Ki"}, want: `--log-max-bytes "512Ki"`},
		{env: map[string]string{"BERTH_LOG_MAX_AGE": "30s"}, want: "--log-max-age 30s: want at least 1m"},
		{args: []string{"--exec=maybe"}, want: "--exec"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		var stdout, stderr bytes.Buffer
		args := append([]string{"--data-dir", t.TempDir(), "--node", "n1", "--http", ""}, tc.args...)
		if code := run(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("berthd %v %v: exit %d, %q; want 1 and %q", tc.args, tc.env, code, stderr.String(), tc.want)
		}
	}
}
