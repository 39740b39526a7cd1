package main

import (
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/netdriver"
)

// host is the machine berthd drives.
type host struct {
	name     string // "hcs" or "winsim", recorded in node.started
	describe string // for the first log line
	compute  hcsdriver.Driver
	network  netdriver.Driver
	layers   imagedriver.LayerStore // in DATA-DIR/layers
	platform imagedriver.Platform   // what the host runs: pulls pick the image for it
	client   bool                   // a client edition of Windows: Hyper-V isolation by default
	close    func()
}
