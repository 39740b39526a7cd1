package winhcs

import (
	"testing"

	"go.uber.org/goleak"
)

// go-winio runs one I/O completion goroutine for the life of the process,
// started by the first pipe the Windows integration tests open.
var ignoreWinio = goleak.IgnoreAnyFunction("github.com/Microsoft/go-winio.ioCompletionProcessor")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, ignoreWinio) }
