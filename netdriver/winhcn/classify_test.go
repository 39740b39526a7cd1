package winhcn

import (
	"errors"
	"strings"
	"testing"

	"github.com/berthhq/berth/netdriver"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		op   string
		f    fault
		want error
	}{
		{"network lookup by name found nothing", opGetNetwork, fault{notFound: true}, netdriver.ErrNotFound},
		{"endpoint lookup found nothing", opGetEndpoint, fault{notFound: true}, netdriver.ErrNotFound},
		{"delete of a deleted endpoint", opDeleteEndpoint, fault{notFound: true, code: 0x490}, netdriver.ErrNotFound},
		{"element not found as a full HRESULT", opDeleteEndpoint, fault{code: 0x80070490}, netdriver.ErrNotFound},
		{"endpoint create on a missing network", opCreateEndpoint, fault{code: 0x803B0001}, netdriver.ErrNotFound},
		{"endpoint not found", opDeleteEndpoint, fault{code: 0x803B0002}, netdriver.ErrNotFound},
		{"listing raced a delete", opListEndpoints, fault{notFound: true, code: 0x490}, netdriver.ErrUnavailable},
		{"listing raced a delete, code only", opListEndpoints, fault{code: 0x803B0002}, netdriver.ErrUnavailable},
		{"network exists", opCreateNetwork, fault{code: 0x803B0010}, netdriver.ErrAlreadyExists},
		{"object exists on network create", opCreateNetwork, fault{code: 0xB7}, netdriver.ErrAlreadyExists},
		{"object exists on endpoint create", opCreateEndpoint, fault{code: 0x800700B7}, netdriver.ErrAddressInUse},
		{"object already exists (0x1392) on endpoint create", opCreateEndpoint, fault{code: 0x1392}, netdriver.ErrAddressInUse},
		{"address invalid or reserved", opCreateEndpoint, fault{code: 0x803B002F}, netdriver.ErrAddressInUse},
		{"host port taken", opCreateEndpoint, fault{code: 0x803B0013}, netdriver.ErrAddressInUse},
		{"network has endpoints", opDeleteNetwork, fault{code: 0x803B002C}, netdriver.ErrInUse},
		{"endpoint attached", opDeleteEndpoint, fault{code: 0x803B0014}, netdriver.ErrInUse},
		{"unknown adapter", opCreateNetwork, fault{code: 0x803B0006}, netdriver.ErrInvalidSpec},
		{"invalid parameter", opCreateNetwork, fault{code: 0x80070057}, netdriver.ErrInvalidSpec},
		{"policy refused", opCreateEndpoint, fault{code: 0x803B000D}, netdriver.ErrInvalidSpec},
		{"HNS not running", opListNetworks, fault{code: 0x6BA}, netdriver.ErrUnavailable},
		{"HNS stopped", opCreateEndpoint, fault{code: 0x803B0020}, netdriver.ErrUnavailable},
		{"timeout", opCreateNetwork, fault{code: 0x800705B4}, netdriver.ErrUnavailable},
		{"unknown code", opCreateNetwork, fault{code: 0x1F}, nil},
		{"no code", opCreateEndpoint, fault{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.op, tt.f); got != tt.want {
				t.Errorf("classify(%q, %+v) = %v, want %v", tt.op, tt.f, got, tt.want)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	hcnErr := errors.New("hcnCreateEndpoint failed in Win32: An address provided is invalid or reserved. (0x803b002f)")
	err := wrap(opCreateEndpoint, "berth-web-1", hcnErr, fault{code: 0x803B002F})
	if !errors.Is(err, netdriver.ErrAddressInUse) || !errors.Is(err, hcnErr) {
		t.Errorf("wrap = %v; want it to match ErrAddressInUse and the hcn error", err)
	}
	if !strings.HasPrefix(err.Error(), `create endpoint "berth-web-1": address in use: hcnCreateEndpoint`) {
		t.Errorf("message %q", err)
	}
	plain := wrap(opCreateNetwork, "berth-overlay", hcnErr, fault{code: 0x1F})
	if !errors.Is(plain, hcnErr) || netdriver.Class(plain) != netdriver.Class(errors.New("x")) {
		t.Errorf("unclassified wrap = %v (class %v)", plain, netdriver.Class(plain))
	}
}
