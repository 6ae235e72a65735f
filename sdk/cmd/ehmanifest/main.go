// Command ehmanifest embeds an edgehost plugin manifest (abi/ABI.md §6) into a WebAssembly
// module as the "edgehost.manifest" custom section, after checking it, or prints the
// manifest a module carries.
//
//	ehmanifest -in plugin.wasm -manifest manifest.json [-out plugin.wasm]
//	ehmanifest -in plugin.wasm            # print the embedded manifest
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/edgehost/edgehost/abi"
)

func main() {
	in := flag.String("in", "", "the plugin module (.wasm)")
	man := flag.String("manifest", "", "the manifest JSON file to embed; empty prints the embedded one")
	out := flag.String("out", "", "where to write the result (default: -in, replaced atomically)")
	flag.Parse()
	if err := run(*in, *man, *out); err != nil {
		fmt.Fprintln(os.Stderr, "ehmanifest:", err)
		os.Exit(1)
	}
}

func run(in, man, out string) error {
	if in == "" {
		return fmt.Errorf("-in is required")
	}
	wasm, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	if man == "" {
		b, ok, err := abi.CustomSection(wasm, abi.ManifestSection)
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		if !ok {
			return fmt.Errorf("%s has no %s section", in, abi.ManifestSection)
		}
		fmt.Println(string(b))
		return nil
	}
	mb, err := os.ReadFile(man)
	if err != nil {
		return err
	}
	if _, err := abi.ParseManifest(mb); err != nil {
		return fmt.Errorf("%s: %w", man, err)
	}
	res, err := abi.SetCustomSection(wasm, abi.ManifestSection, mb)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if out == "" {
		out = in
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, res, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
