package control

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/berthhq/berth/events"
)

// FuzzDecodeQuery feeds query bodies, as any client with the right to ask
// may send them, to the decoders of every query endpoint: each either
// refuses the body with ErrInvalid or yields a request that encodes and
// decodes to itself; a container id it accepts is valid. Seeds are in
// testdata/fuzz/FuzzDecodeQuery.
func FuzzDecodeQuery(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&PsRequest{}, &ContainerRequest{}, &StateRequest{}, &struct{}{}} {
			err := decodeQuery(data, v)
			if err != nil {
				if !errors.Is(err, events.ErrInvalid) {
					t.Fatalf("decodeQuery(%q) into %T: %v, want ErrInvalid", data, v, err)
				}
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("re-encoding %T %+v: %v", v, v, err)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := decodeQuery(b, again); err != nil || !reflect.DeepEqual(v, again) {
				t.Fatalf("%T %+v does not round-trip through %s: %+v, %v", v, v, b, again, err)
			}
		}
		id, err := decodeContainer(data)
		switch {
		case err != nil && !errors.Is(err, events.ErrInvalid):
			t.Fatalf("decodeContainer(%q): %v, want ErrInvalid", data, err)
		case err == nil && events.ValidateContainerID(id) != nil:
			t.Fatalf("decodeContainer(%q) accepted %q", data, id)
		}
	})
}
