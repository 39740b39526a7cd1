package main

import (
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/netdriver"
)

// host is the machine berthd drives.
type host struct {
	name     string // "hcs" or "winsim", recorded in node.started
	describe string // for the first log line
	compute  hcsdriver.Driver
	network  netdriver.Driver
	close    func()
}
