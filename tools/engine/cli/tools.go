//go:build tools

// Package cli pins the Pulumi CLI's module versions: tools/engine/build.sh builds
// github.com/pulumi/pulumi/pkg/v3/cmd/pulumi with this go.mod and go.sum.
package cli

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
