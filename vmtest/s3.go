package vmtest

import "github.com/skykoi/skykoi/internal/koi/ec2test"

// newS3 starts the project's AWS stand-in as the S3 a guest fetches its
// gateway binary from: it accepts only the instance role's temporary
// credentials, signed for region, and recomputes every signature.
func newS3(region string, c Credentials) *ec2test.Server {
	return ec2test.New(ec2test.Options{
		Keys:   []ec2test.Key{{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.Token}},
		Region: region,
	})
}
