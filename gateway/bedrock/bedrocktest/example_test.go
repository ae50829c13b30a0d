package bedrocktest_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/skykoi/skykoi/gateway/bedrock"
	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

// The provider, with the real SDK client inside, pointed at the fake.
func Example() {
	srv := bedrocktest.NewServer()
	defer srv.Close()
	srv.Enqueue("us.anthropic.claude-opus-4-6-v1", bedrocktest.Reply{
		bedrocktest.Text("Hello"), bedrocktest.Text(", world"),
		bedrocktest.Usage(12, 3, 0, 0),
	})

	p, err := bedrock.New(context.Background(), bedrock.Options{
		Endpoint:    srv.URL(),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "session"),
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	resp, err := p.Stream(context.Background(), bedrock.Request{
		Models: []string{"amazon-bedrock/us.anthropic.claude-opus-4-6-v1"},
		Messages: []bedrock.Message{{Role: bedrock.RoleUser, Content: []bedrock.Block{
			{Type: bedrock.BlockText, Text: "hi"},
		}}},
	}, func(e bedrock.Event) {
		if d, ok := e.(bedrock.TextDelta); ok {
			fmt.Printf("delta %q\n", d.Text)
		}
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Text(), resp.StopReason, resp.Usage.InputTokens)
	fmt.Println(srv.Requests()[0].ModelID)
	// Output:
	// delta "Hello"
	// delta ", world"
	// Hello, world end_turn 12
	// us.anthropic.claude-opus-4-6-v1
}
