package winhcn

import (
	"fmt"

	"github.com/berthhq/berth/netdriver"
)

// Operations, named in error messages; some classify codes differently.
const (
	opGetNetwork     = "get network"
	opListNetworks   = "list networks"
	opCreateNetwork  = "create network"
	opDeleteNetwork  = "delete network"
	opGetEndpoint    = "get endpoint"
	opListEndpoints  = "list endpoints"
	opCreateEndpoint = "create endpoint"
	opDeleteEndpoint = "delete endpoint"
)

// fault is what the Windows side reads out of an hcn error before wrapping
// it (hcn's errors do not unwrap).
type fault struct {
	// notFound: hcn.IsNotFoundError (hcn's own lookups by name or id found
	// nothing, or HNS said ERROR_NOT_FOUND) or hcn.IsElementNotFoundError.
	notFound bool
	// code is the Win32 error or HRESULT HNS returned, 0 when there is none.
	code uint32
}

// Codes whose class depends on the operation.
const (
	codeAlreadyExists       = 0x000000B7 // ERROR_ALREADY_EXISTS
	codeObjectAlreadyExists = 0x00001392 // ERROR_OBJECT_ALREADY_EXISTS
)

// codeClasses maps Win32 codes and HCN HRESULTs (winerror.h HCN_E_*, as
// golang.org/x/sys/windows names them) onto the contract's classes.
var codeClasses = map[uint32]error{
	0x00000490: netdriver.ErrNotFound, // ERROR_NOT_FOUND
	0x803B0001: netdriver.ErrNotFound, // HCN_E_NETWORK_NOT_FOUND
	0x803B0002: netdriver.ErrNotFound, // HCN_E_ENDPOINT_NOT_FOUND

	codeAlreadyExists:       netdriver.ErrAlreadyExists,
	codeObjectAlreadyExists: netdriver.ErrAlreadyExists,
	0x803B0010:              netdriver.ErrAlreadyExists, // HCN_E_NETWORK_ALREADY_EXISTS

	0x803B002F: netdriver.ErrAddressInUse, // HCN_E_ADDR_INVALID_OR_RESERVED: an address another endpoint holds
	0x803B0013: netdriver.ErrAddressInUse, // HCN_E_PORT_ALREADY_EXISTS: a published host port in use

	0x803B0014: netdriver.ErrInUse, // HCN_E_ENDPOINT_ALREADY_ATTACHED
	0x803B002C: netdriver.ErrInUse, // HCN_E_ENTITY_HAS_REFERENCES

	0x00000057: netdriver.ErrInvalidSpec, // ERROR_INVALID_PARAMETER
	0x803B0006: netdriver.ErrInvalidSpec, // HCN_E_ADAPTER_NOT_FOUND
	0x803B000B: netdriver.ErrInvalidSpec, // HCN_E_INVALID_NETWORK_TYPE
	0x803B000D: netdriver.ErrInvalidSpec, // HCN_E_INVALID_POLICY
	0x803B000E: netdriver.ErrInvalidSpec, // HCN_E_INVALID_POLICY_TYPE
	0x803B0015: netdriver.ErrInvalidSpec, // HCN_E_REQUEST_UNSUPPORTED
	0x803B0016: netdriver.ErrInvalidSpec, // HCN_E_MAPPING_NOT_SUPPORTED
	0x803B001B: netdriver.ErrInvalidSpec, // HCN_E_INVALID_JSON
	0x803B001E: netdriver.ErrInvalidSpec, // HCN_E_INVALID_IP
	0x803B0026: netdriver.ErrInvalidSpec, // GCN_E_NETADAPTER_NOT_FOUND
	0x803B002D: netdriver.ErrInvalidSpec, // HCN_E_INVALID_INTERNAL_PORT

	0x00000015: netdriver.ErrUnavailable, // ERROR_NOT_READY
	0x000005B4: netdriver.ErrUnavailable, // ERROR_TIMEOUT
	0x000006BA: netdriver.ErrUnavailable, // RPC_S_SERVER_UNAVAILABLE: HNS is not running
	0x000006BE: netdriver.ErrUnavailable, // RPC_S_CALL_FAILED
	0x000006BF: netdriver.ErrUnavailable, // RPC_S_CALL_FAILED_DNE
	0x803B0020: netdriver.ErrUnavailable, // HCN_E_MANAGER_STOPPED
	0x803B0025: netdriver.ErrUnavailable, // GCN_E_NETADAPTER_TIMEOUT
}

// normalize turns an HRESULT that wraps a Win32 code (FACILITY_WIN32,
// 0x8007xxxx) into that code, as hcn's system-call stubs do.
func normalize(code uint32) uint32 {
	if code&0x80000000 != 0 && code&0x1fff0000 == 0x00070000 {
		return code & 0xffff
	}
	return code
}

// classify returns the contract class of a failed operation, or nil when
// the fault is none berth knows (the error is then internal).
func classify(op string, f fault) error {
	code := normalize(f.code)
	switch {
	case op == opListEndpoints && (f.notFound || codeClasses[code] == netdriver.ErrNotFound):
		// An endpoint vanished between enumeration and opening it.
		return netdriver.ErrUnavailable
	case f.notFound:
		return netdriver.ErrNotFound
	case op == opCreateEndpoint && (code == codeAlreadyExists || code == codeObjectAlreadyExists):
		// Names are checked before creating, so HNS refuses the address:
		// typically an endpoint leaked by a crash still holds it.
		return netdriver.ErrAddressInUse
	}
	return codeClasses[code]
}

// wrap describes err, a failure of op on the object named name, as an error
// of its class when it has one. The class and err both unwrap.
func wrap(op, name string, err error, f fault) error {
	if class := classify(op, f); class != nil {
		return fmt.Errorf("%s %q: %w: %w", op, name, class, err)
	}
	return fmt.Errorf("%s %q: %w", op, name, err)
}
