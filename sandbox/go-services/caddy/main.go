// Caddy as the caddy:2.8-alpine image ships it: the caddy command with the standard modules and
// nothing else (the same main as github.com/caddyserver/caddy/v2/cmd/caddy, which cannot be
// imported). Built by sandbox/build-go-services.sh for the sandbox's caddy image only.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func main() {
	caddycmd.Main()
}
