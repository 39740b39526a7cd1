package dirlayer_test

import (
	"testing"

	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/imagedriver/imagedrivertest"
)

func newStore(t *testing.T) *dirlayer.Store {
	t.Helper()
	s, err := dirlayer.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	imagedrivertest.RunLayerStore(t, func(t *testing.T) imagedriver.LayerStore { return newStore(t) })
}
