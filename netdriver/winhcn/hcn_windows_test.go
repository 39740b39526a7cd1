//go:build windows

package winhcn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/Microsoft/hcsshim/hcn"
)

// TestHCNMarshalsLikeMirrors checks, for every golden document, that the
// hcn value the driver sends marshals to exactly the mirror's bytes, and
// that reading hcn's value back yields the mirror again.
func TestHCNMarshalsLikeMirrors(t *testing.T) {
	for name, spec := range networkCases() {
		t.Run(name, func(t *testing.T) {
			doc, err := NetworkDocument(spec)
			if err != nil {
				t.Fatal(err)
			}
			h, err := hcnNetwork(doc)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, h, doc)
			back, err := mirrorOf[HostComputeNetwork](h)
			if err != nil || !reflect.DeepEqual(back, doc) {
				t.Errorf("mirrorOf = %+v, %v; want %+v", back, err, doc)
			}
			golden(t, name, h) // what hcn sends is the golden document
		})
	}
	for name, spec := range endpointCases() {
		t.Run(name, func(t *testing.T) {
			doc, err := EndpointDocument(spec)
			if err != nil {
				t.Fatal(err)
			}
			h, err := hcnEndpoint(doc)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, h, doc)
			back, err := mirrorOf[HostComputeEndpoint](h)
			if err != nil || !reflect.DeepEqual(back, doc) {
				t.Errorf("mirrorOf = %+v, %v; want %+v", back, err, doc)
			}
			golden(t, name, h)
		})
	}
}

func sameJSON(t *testing.T, h, mirror any) {
	t.Helper()
	hb, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := json.Marshal(mirror)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hb, mb) {
		t.Errorf("hcn marshals differently from its mirror:\n hcn    %s\n mirror %s", hb, mb)
	}
}

func TestFaultOfLookupErrors(t *testing.T) {
	for _, err := range []error{
		hcn.NetworkNotFoundError{NetworkName: "berth-overlay"},
		hcn.EndpointNotFoundError{EndpointName: "berth-web-1"},
		fmt.Errorf("lookup: %w", hcn.EndpointNotFoundError{EndpointID: "0f6b2c1a-8e7d-4c3b-9a2f-1e0d9c8b7a65"}),
	} {
		if f := faultOf(err); !f.notFound || f.code != 0 {
			t.Errorf("faultOf(%v) = %+v, want notFound", err, f)
		}
	}
	if f := faultOf(fmt.Errorf("other")); f.notFound || f.code != 0 {
		t.Errorf("faultOf(other) = %+v, want nothing", f)
	}
}
