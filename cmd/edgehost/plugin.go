package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/plugin"
)

func grantsString(p config.Plugin) string { return engine.PluginGrants(p.Grants).String() }

func cmdPlugin(g *globals, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "want a subcommand: manifest, check, keygen, sign, verify, push or pull"}
	}
	switch args[0] {
	case "manifest":
		return pluginManifest(g, args[1:])
	case "check":
		return pluginCheck(g, args[1:])
	case "keygen":
		return pluginKeygen(g, args[1:])
	case "sign":
		return pluginSign(g, args[1:])
	case "verify":
		return pluginVerify(g, args[1:])
	case "push", "pull": // cmd/edgehost/oci.go
		return map[string]func(*globals, []string) error{"push": pluginPush, "pull": pluginPull}[args[0]](g, args[1:])
	}
	return &usageError{msg: fmt.Sprintf("unknown plugin subcommand %q (want manifest, check, keygen, sign, verify, push or pull)", args[0])}
}

func pluginKeygen(g *globals, args []string) error {
	fs := g.flags("plugin")
	out := fs.String("out", "", "write the private key to FILE (mode 0600) and the public key to FILE.pub (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return &usageError{msg: "plugin keygen: --out FILE is required"}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(plugin.FormatPrivateKey(priv)+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(*out+".pub", []byte(base64.StdEncoding.EncodeToString(pub)+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "key %s: private %s, public %s.pub\n", plugin.KeyID(pub), *out, *out)
	return nil
}

func pluginSign(g *globals, args []string) error {
	fs := g.flags("plugin")
	keyFile := fs.String("key", "", "the private key file from `edgehost plugin keygen` (required)")
	out := fs.String("out", "", "where to write the signed module (default: in place)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keyFile == "" || fs.NArg() != 1 {
		return &usageError{msg: "plugin sign: want --key FILE and one PLUGIN.wasm"}
	}
	kb, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	key, err := plugin.ParsePrivateKey(string(kb))
	if err != nil {
		return fmt.Errorf("%s: %w", *keyFile, err)
	}
	in := fs.Arg(0)
	wasm, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	signed, err := plugin.Sign(wasm, key)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if *out == "" {
		*out = in
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, signed, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "%s: signed with key %s\n", *out, plugin.KeyID(key.Public().(ed25519.PublicKey)))
	return nil
}

func pluginVerify(g *globals, args []string) error {
	fs := g.flags("plugin")
	pubFile := fs.String("pub", "", "a public key file; default: the [trust] keys of --config")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "plugin verify: want one PLUGIN.wasm"}
	}
	var keys []ed25519.PublicKey
	if *pubFile != "" {
		b, err := os.ReadFile(*pubFile)
		if err != nil {
			return err
		}
		k, err := plugin.ParsePublicKey(string(b))
		if err != nil {
			return fmt.Errorf("%s: %w", *pubFile, err)
		}
		keys = append(keys, k)
	} else {
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		if keys, err = engine.TrustedKeys(cfg.Trust); err != nil {
			return err
		}
	}
	wasm, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	id, err := plugin.Verify(wasm, keys)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(g.stdout, "%s: signature ok (key %s)\n", fs.Arg(0), id)
	return nil
}
