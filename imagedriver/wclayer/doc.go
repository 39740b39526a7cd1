// Package wclayer is the Windows layer store: image layers and the
// containers' scratch layers in a folder, on hcsshim's public layer API
// (pkg/ociwclayer and the legacy layer functions of package hcsshim). It
// implements imagedriver.LayerStore.
//
// The store (New) builds on Windows only. Everything that does not need the
// platform builds and is tested on every OS: the folder layout and markers,
// the checks of a layer's entries, the bookkeeping of imports and removals,
// and the order and retries of the layer API calls, which run on a model of
// the layer APIs in the tests.
//
// # On disk
//
//	<root>/layers/<hex>/                 a layer, as the layer APIs import it
//	<root>/layers/<hex>.json             its completion marker: diff id, parents, size, GUID
//	<root>/scratch/<container>/          a container's scratch layer (sandbox.vhdx ...)
//	<root>/scratch/<container>/berth-chain.json  its parent chain, immediate parent first; written last
//	<root>/.../<name>~removing/          a folder being destroyed, or left by a destruction cut short
//
// <hex> is the layer's chain id without "sha256:". The layer APIs name a
// layer by a GUID they derive from its folder's name (NameToGuid), and a
// layer records its parents' folders, so a layer is imported into its final
// folder, never renamed, and published by its marker, written last: a layer
// folder without a valid marker is a leftover of a crash, which Get never
// returns, List reports with Complete false, and Remove (or the next import
// of the layer) destroys. Layer.GUID is the recorded GUID, the id of the
// layer in a compute system's document. Markers are not synced to disk: the
// ordering holds across a crash of the process, not across a power loss.
//
// A layer import reads its tar through a guard that checks every entry
// before the layer writer sees it (see the entries' rules below), hashes the
// tar, and publishes the layer only when the tar hashes to its diff id. The
// process needs the backup and restore privileges, which New enables. The
// layer writer stages a layer with parents in the system's temporary folder
// (TMP): point it at a volume with room for the largest layer.
//
// # Scratch layers
//
// CreateScratch runs the sequence of the layer APIs a process-isolated
// container needs: CreateScratchLayer over the parents' folders,
// ActivateLayer, PrepareLayer, GetLayerMountPath, which gives the
// Scratch.VolumePath the compute system takes as its root. Activation and
// preparation are tried again, five times 100 ms apart, when they fail with
// ERROR_NOT_READY or ERROR_DEVICE_NOT_CONNECTED, as hcsshim itself does.
// RemoveScratch tears a scratch down in reverse: UnprepareLayer,
// DeactivateLayer, a rename to <container>~removing, DestroyLayer. While
// the rename or the destruction fails because something holds a file (access
// denied, sharing violation: a disk left attached by a crash), the scratch's
// disk is detached (before a rename, deactivated too) and the step tried
// again. Layers are destroyed the same way, by a rename and DestroyLayer.
//
// # Entries
//
// Entry names use slashes or backslashes and are compared without regard to
// case, as Windows reads them. An entry whose name is absolute (a leading
// separator or a drive letter) or holds "..", an entry whose path passes
// through a symbolic link of the layer, a hard link to such a name or to a
// symbolic link, and a symbolic link whose target, resolved through the
// layer's links, is absolute or leaves the layer, are refused with
// imagedriver.ErrUnsafeEntry naming the entry. Special files, sparse files,
// alternate data streams ("file:stream") that do not follow their file,
// whiteouts in a base layer and the metadata of union file systems
// (".wh..wh..opq", which the layer writer would not honour) are refused with
// imagedriver.ErrInvalidImage. The layer writer adds its own checks (entries
// land through handles opened below the layer's folder, never through a
// reparse point); what it refuses is ErrInvalidImage too.
package wclayer
