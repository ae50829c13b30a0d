// Package vmtest boots real Kois: the rendered user-data, on a Debian 12
// guest under qemu, against host-side fakes of the EC2 instance metadata
// service, S3 (the project's AWS stand-in, internal/koi/ec2test) and
// Bedrock. It holds the fakes and the qemu plumbing; the scenario is
// TestVMKoi, which runs only with SKYKOI_VMTEST=1 (`make
// vmtest`, part of `make test`) because it takes minutes.
//
// The guest reaches nothing but the fakes, through qemu's user-mode network
// with restrict=on and one guest forward per fake; the host reaches the
// guest's nginx only through a host forward on 127.0.0.1. qemu runs with
// TCG: KVM does not work on the machines this runs on.
package vmtest
