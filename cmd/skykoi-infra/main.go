// Command skykoi-infra is the Pulumi program that creates a Koi (Pulumi.yaml
// points here). It stays thin: reading stack config and building resources
// belong to package infra.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/skykoi/skykoi/infra"
)

func main() {
	pulumi.Run(infra.Program)
}
