//go:build !windows

package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestServiceCommandsOnlyOnWindows(t *testing.T) {
	for _, args := range [][]string{
		{"service", "install", "--data-dir", "/var/lib/berth", "--node", "n1"},
		{"service", "uninstall"},
		{"service", "start"},
		{"service", "stop"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "only on Windows") {
			t.Errorf("berthd %s: exit %d, stderr %q; want 2 and an only-on-Windows error", strings.Join(args, " "), code, stderr.String())
		}
	}
}

func TestForegroundWithServiceCommand(t *testing.T) {
	t.Setenv("BERTH_DATA_DIR", "")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--node", "n1"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "--data-dir is required") {
		t.Errorf("exit %d, stderr %q; want the foreground agent's own check", code, stderr.String())
	}
}
