// Package config reads and validates edgehost's config.toml: the server, logging, models and
// pipelines. Unknown keys and invalid values are errors naming the file, line and key. It
// imports no other host package.
package config
