// Package winhcn implements the netdriver contract on the Host Compute Network
// service through github.com/Microsoft/hcsshim/hcn (HCN schema v2 documents).
//
// The driver itself (New, Driver) builds on Windows only. Everything that does
// not need the platform builds and is tested on every OS:
//
//   - NetworkDocument and EndpointDocument turn a netdriver spec into the
//     HostComputeNetwork or HostComputeEndpoint document HNS receives, built
//     from mirrors of hcn's types with hcn's exact JSON names; golden files
//     in testdata pin every document. NetworkFromDocument and
//     EndpointFromDocument read HNS's answers back into netdriver values.
//   - classify maps hcn's lookup errors and the Win32 and HRESULT codes HNS
//     returns onto the contract's error classes. hcn's errors do not unwrap,
//     so the Windows side reads the code out of an error and classifies it
//     before wrapping it.
//
// # Network types
//
// The type is a setting (netdriver.NetworkSpec.Type); berth does not pick one.
//
//   - NAT: containers sit behind the host's address on an internal vSwitch;
//     port mappings publish their ports. No adapter.
//   - L2Bridge: containers share the host's MAC address on the physical
//     network and take addresses from the node's slice; endpoints usually
//     carry OutboundNAT (excepting the cluster CIDR) and an SDNRoute for the
//     cluster CIDR. Needs the physical adapter's name.
//   - Transparent: an external vSwitch takes over the physical adapter, and
//     containers become full hosts on its network. Creating it moves the
//     host's own address to a virtual adapter, and the host loses
//     connectivity for a few seconds. Name the physical adapter (not a
//     "vEthernet (...)" one), create the network once, at agent start, before
//     relying on the connection, and expect it to fail inside a VM without
//     MAC spoofing (Azure VMs do not allow it).
//
// # Attaching endpoints
//
// berth's compute systems use HCS schema v1, which attaches an endpoint by id
// through the system's EndpointList (hcsdriver.Config.Endpoints); HCS creates
// the network compartment. HCN namespaces serve only schema v2 documents, so
// this package creates none. Use a fresh endpoint for every start of a
// container: HNS refuses to attach an endpoint still tied to a stopped
// compute system.
//
// # HNS behaviour the driver absorbs
//
// HCN queries match whole names only, so ListEndpoints lists every endpoint
// and filters by prefix itself. Listing enumerates ids and then opens each
// endpoint, so it fails when an endpoint is deleted in between; the driver
// lists again a few times before reporting ErrUnavailable. HCN calls take no
// context: a call whose context ends first returns ctx.Err() while the HCN
// call runs on, and an endpoint created after its caller gave up is deleted.
package winhcn
