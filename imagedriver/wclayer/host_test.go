package wclayer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestErrorClasses(t *testing.T) {
	he := func(code uint32) error {
		return fmt.Errorf("step: %w", &hostError{op: "op", code: code, err: errors.New("x")})
	}
	for _, c := range []struct {
		name                        string
		err                         error
		code                        uint32
		transient, locked, contentF bool
	}{
		{"not a host failure", errors.New("x"), 0, false, false, false},
		{"no code", he(0), 0, false, false, true},
		{"not ready", he(0x15), 0x15, true, false, false},
		{"not ready, HRESULT", he(0x80070015), 0x15, true, false, false},
		{"device not connected", he(0x48F), 0x48F, true, false, false},
		{"access denied", he(0x5), 0x5, false, true, false},
		{"access denied, HRESULT", he(0x80070005), 0x5, false, true, false},
		{"sharing violation", he(0x20), 0x20, false, true, false},
		{"path not found", he(0x3), 0x3, false, false, true},
		{"file exists", he(0x50), 0x50, false, false, true},
		{"already exists", he(0xB7), 0xB7, false, false, true},
		{"invalid name", he(0x7B), 0x7B, false, false, true},
		{"disk full", he(0x70), 0x70, false, false, false},
		{"vmcompute code", he(0xC0370103), 0xC0370103, false, false, false},
	} {
		if got := codeOf(c.err); got != c.code {
			t.Errorf("%s: codeOf = %#x; want %#x", c.name, got, c.code)
		}
		if transient(c.err) != c.transient || locked(c.err) != c.locked || contentFault(c.err) != c.contentF {
			t.Errorf("%s: transient, locked, contentFault = %v, %v, %v; want %v, %v, %v", c.name,
				transient(c.err), locked(c.err), contentFault(c.err), c.transient, c.locked, c.contentF)
		}
	}
}

func TestRetryPolicy(t *testing.T) {
	again := errors.New("again")
	final := errors.New("final")
	retryable := func(err error) bool { return err == again }
	p := retryPolicy{attempts: 4}
	for _, c := range []struct {
		name                string
		results             []error
		wantErr             error
		wantTries, wantBtwn int
	}{
		{"first try", []error{nil}, nil, 1, 0},
		{"passes", []error{again, again, nil}, nil, 3, 2},
		{"gives up", []error{again, again, again, again, nil}, again, 4, 3},
		{"not retryable", []error{again, final, nil}, final, 2, 1},
	} {
		tries, between := 0, 0
		err := p.do(ctx, func() error { tries++; return c.results[tries-1] }, retryable, func() { between++ })
		if err != c.wantErr || tries != c.wantTries || between != c.wantBtwn {
			t.Errorf("%s: %v after %d tries, %d in between; want %v, %d, %d", c.name, err, tries, between,
				c.wantErr, c.wantTries, c.wantBtwn)
		}
	}
	// A wait between tries ends with ctx.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	slow := retryPolicy{attempts: 3, delay: time.Hour}
	tries := 0
	err := slow.do(cctx, func() error { tries++; return again }, retryable, nil)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, again) || tries != 1 {
		t.Errorf("retry with a cancelled context = %v after %d tries; want cancelled and the failure, after 1", err, tries)
	}
}
