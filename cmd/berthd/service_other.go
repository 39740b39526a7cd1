//go:build !windows

package main

// runAsService reports false: only Windows has a service control manager.
func runAsService(options) (bool, error) { return false, nil }

func newServiceControl() (serviceControl, error) { return nil, errServiceUnsupported }
