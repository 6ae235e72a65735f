package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/oci"
)

// parseRef accepts a reference with or without the oci:// of a config source.
func parseRef(s string) (config.OCIRef, error) {
	if !strings.HasPrefix(s, "oci://") {
		s = "oci://" + s
	}
	return config.ParseOCIRef(s)
}

func ociFlags(g *globals, what string) (*bool, *time.Duration, func([]string) error, func() []string) {
	fs := g.flags("plugin")
	plain := fs.Bool("plain-http", false, "talk plain HTTP to a registry that is not on loopback (loopback always is)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	return plain, timeout, func(args []string) error { return parse(fs, args) }, fs.Args
}

// pluginPush: edgehost plugin push REF FILE.
func pluginPush(g *globals, args []string) error {
	plain, timeout, parseArgs, rest := ociFlags(g, "push")
	if err := parseArgs(args); err != nil {
		return err
	}
	if len(rest()) != 2 {
		return &usageError{msg: "plugin push: want REF FILE (REF: host:port/repo:tag; FILE: a plugin .wasm or a model .tflite)"}
	}
	ref, err := parseRef(rest()[0])
	if err != nil {
		return &usageError{msg: "plugin push: " + err.Error()}
	}
	b, err := os.ReadFile(rest()[1])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	p, err := oci.Push(ctx, ref, b, rest()[1], oci.Options{PlainHTTP: *plain})
	if err != nil {
		return fmt.Errorf("%s: %w", rest()[1], err)
	}
	kind := "plugin"
	if p.Type == oci.ArtifactModel {
		kind = "model"
	}
	fmt.Fprintf(g.stdout, "pushed %s %s (%d bytes, layer %s) to %s\npin it with: source = \"oci://%s/%s@%s\"\n",
		kind, rest()[1], p.Size, p.Layer, ref, ref.Registry, ref.Repository, p.Manifest)
	return nil
}

// pluginPull: edgehost plugin pull REF OUT.
func pluginPull(g *globals, args []string) error {
	plain, timeout, parseArgs, rest := ociFlags(g, "pull")
	if err := parseArgs(args); err != nil {
		return err
	}
	if len(rest()) != 2 {
		return &usageError{msg: "plugin pull: want REF OUT (REF: host:port/repo:tag or host:port/repo@sha256:…)"}
	}
	ref, err := parseRef(rest()[0])
	if err != nil {
		return &usageError{msg: "plugin pull: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	out := rest()[1]
	// Streamed to a temporary file beside OUT (never held in memory), then renamed.
	a, err := oci.Pull(ctx, ref, filepath.Dir(out), oci.Options{PlainHTTP: *plain})
	if err != nil {
		return err
	}
	defer a.Close()
	if err := os.Chmod(a.File, 0o644); err != nil {
		return err
	}
	if err := os.Rename(a.File, out); err != nil {
		return err
	}
	a.File = ""
	fmt.Fprintf(g.stdout, "pulled %s (manifest %s, %d bytes, digests checked) to %s\n", ref, a.Manifest, a.Size, out)
	return nil
}
