// Package winhcs implements the hcsdriver contract on the Host Compute
// Service through the public schema v1 API of github.com/Microsoft/hcsshim
// (CreateContainer, OpenContainer, GetContainers).
//
// The driver itself (New, Driver) builds on Windows only. Everything that does
// not need the platform builds and is tested on every OS:
//
//   - BuildDocument turns an hcsdriver.Config into the v1 ContainerConfig
//     document that HCS receives (Document), and BuildProcess an
//     hcsdriver.ProcessConfig into the v1 ProcessConfig (ProcessDocument);
//     golden JSON files in testdata pin both.
//   - classify maps the Win32 and HRESULT codes HCS returns, and hcsshim's
//     code-less sentinel errors, onto the contract's error classes. hcsshim's
//     errors do not unwrap, so the Windows side reads the code out of an
//     error first and classifies it before wrapping it.
//   - statsOf translates HCS statistics (100 ns ticks) into hcsdriver.Stats
//     (microseconds).
//
// Compute systems are created so that they survive an agent restart: the
// document never asks HCS to terminate a system when its last handle
// closes, and closing a handle never stops a system.
package winhcs
