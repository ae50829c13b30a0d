// Package infra is the Pulumi side of SkyKoi: the component that builds one
// Koi. It is imported only by cmd/skykoi-infra, never by the box binary.
package infra

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

// Program is the stack's program. It creates nothing yet: the Koi component
// (instance, IAM role, security group, data volume) arrives with the
// provisioning work.
func Program(ctx *pulumi.Context) error {
	ctx.Export("skykoiProgram", pulumi.String("empty"))
	return nil
}
