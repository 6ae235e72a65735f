// Package plugin loads and runs edgehost plugins (abi/ABI.md) on wazero: it compiles and
// validates modules, gives each instance guest memory at a fixed address outside the Go heap,
// implements the host imports, and calls edgehost_init / edgehost_pre / edgehost_post with
// bounds-checked access to guest memory. It imports abi only, never other host packages.
package plugin
