package ec2test_test

import (
	"context"
	"fmt"

	"github.com/skykoi/skykoi/internal/koi"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// The koi client, with the real EC2 SDK client inside, pointed at the fake.
func Example() {
	srv := ec2test.NewServer()
	defer srv.Close()
	srv.AddInstance(ec2test.Instance{ID: "i-0123456789abcdef0", State: ec2test.Stopped, PublicIP: "203.0.113.7"})

	c, err := koi.New(context.Background(), koi.Options{
		Region:      "eu-west-1",
		Endpoint:    srv.URL(),
		Credentials: srv.Credentials(),
	})
	if err != nil {
		panic(err)
	}
	prev, cur, err := c.Start(context.Background(), "i-0123456789abcdef0")
	if err != nil {
		panic(err)
	}
	fmt.Println(prev, "->", cur)
	srv.Advance("i-0123456789abcdef0")
	st, err := c.Status(context.Background(), "i-0123456789abcdef0")
	if err != nil {
		panic(err)
	}
	fmt.Println(st.State, st.PublicIP)
	for _, call := range srv.Calls() {
		fmt.Println(call.Action, call.InstanceIDs, call.Region)
	}
	// Output:
	// stopped -> pending
	// running 203.0.113.7
	// StartInstances [i-0123456789abcdef0] eu-west-1
	// DescribeInstances [i-0123456789abcdef0] eu-west-1
	// DescribeInstanceStatus [i-0123456789abcdef0] eu-west-1
}
