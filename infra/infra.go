// Package infra is the Pulumi side of SkyKoi: the component that builds one
// Koi (NewKoi) and the stack program around it (Program, LoadConfig). It is
// imported only by cmd/skykoi-infra, never by the box binary, which keeps
// Pulumi and the AWS provider SDK out of what runs on a Koi.
package infra

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Program is the stack's program: read the config, build the Koi, export
// its outputs.
func Program(ctx *pulumi.Context) error {
	k, err := deploy(ctx)
	if err != nil {
		return err
	}
	for key, v := range k.Outputs() {
		ctx.Export(key, v)
	}
	return nil
}

// deploy is Program short of the exports, which tests cannot observe
// through the mocks.
func deploy(ctx *pulumi.Context) (*Koi, error) {
	args, err := LoadConfig(ctx)
	if err != nil {
		return nil, err
	}
	name, err := KoiName(ctx.Stack())
	if err != nil {
		return nil, err
	}
	return NewKoi(ctx, name, args)
}

// KoiName is the Koi's name for a stack: "skykoi-" and the stack's name,
// lowercased with anything else than a-z, 0-9 and '-' turned into '-'. The
// stack name makes it unique among the Kois of one account, which the
// role's ec2:StopInstances condition relies on.
func KoiName(stack string) (string, error) {
	var b strings.Builder
	b.WriteString("skykoi-")
	for _, c := range strings.ToLower(stack) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.TrimRight(b.String(), "-")
	if !koiNameRe.MatchString(name) {
		return "", fmt.Errorf("stack name %q makes the Koi name %q: want at most %d characters of a-z, 0-9 and '-' after %q; use a shorter stack name",
			stack, name, 40-len("skykoi-"), "skykoi-")
	}
	return name, nil
}
