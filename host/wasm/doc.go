// Package wasm reads, checks and rewrites WebAssembly binaries for the plugin host: the
// structural limits checked before anything compiles a module (limits.go), validation of
// the module as written (validate.go), and the fuel instrumentation that makes a module's
// running time checkable (instrument.go), over one bounds-checked binary reader (reader.go).
// It imports only abi and wazero (for validation); it knows nothing of plugins or instances.
//
// The rewrite: every loop head, and the entry of every function that calls (only those can
// recurse), decrements a new mutable i32 global, the fuel. A loop whose block type has no
// parameters is wrapped so that the slow path (a call of the host import edgehost.fuel,
// which checks the call's deadline, traps past it, and otherwise returns FuelRefill) lies
// outside the loop body; loops with parameters and function entries keep an inline
// `if … call … end`. Bulk memory and table instructions are charged in proportion to their
// length operand, and long memory.fill/memory.copy run in the host, in chunks, with the
// deadline checked between them. Table maxima are lowered to a cap. The added imports shift
// every defined function's index, so call, return_call and ref.func in code and constant
// expressions, function exports, the start function, element segments and the name section
// are renumbered; DWARF sections are dropped (the code offsets they describe move).
package wasm
