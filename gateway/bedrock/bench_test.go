package bedrock_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/skykoi/skykoi/gateway/bedrock"
	bt "github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

const benchDeltas = 2000

func benchServer(b *testing.B) *bt.Server {
	b.Helper()
	srv := bt.NewServer()
	b.Cleanup(srv.Close)
	reply := bt.Reply{bt.TextDeltas(benchDeltas, "tok "), bt.Usage(100, benchDeltas, 0, 0)}
	srv.Handle(func(bt.Request) bt.Reply { return reply })
	return srv
}

// BenchmarkStream2000Deltas is the baseline: the bare SDK client consuming a
// 2,000-delta answer from the fake, with nothing of ours in between. The
// agent and gateway benchmarks compare against it.
func BenchmarkStream2000Deltas(b *testing.B) {
	srv := benchServer(b)
	client := bedrockruntime.New(bedrockruntime.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL()),
		Credentials:  testCreds(),
		Retryer:      aws.NopRetryer{},
		// Without the fake's client the bare SDK loses about one stream in
		// ten to a smithy-go/net/http race; see bedrocktest.Server.Client.
		HTTPClient: srv.Client(),
	})
	in := &bedrockruntime.ConverseStreamInput{
		ModelId: aws.String("us.anthropic.claude-opus-4-6-v1"),
		Messages: []types.Message{{
			Role:    types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "go"}},
		}},
	}
	b.ReportAllocs()
	for b.Loop() {
		out, err := client.ConverseStream(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		stream := out.GetStream()
		n := 0
		for ev := range stream.Events() {
			if _, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
				n++
			}
		}
		if err := stream.Close(); err != nil {
			b.Fatal(err)
		}
		if n != benchDeltas {
			b.Fatalf("got %d deltas", n)
		}
	}
	b.ReportMetric(float64(benchDeltas), "deltas/op")
}

// BenchmarkProviderStream2000Deltas is the same answer through
// Provider.Stream: the difference to the baseline is this package's cost.
func BenchmarkProviderStream2000Deltas(b *testing.B) {
	srv := benchServer(b)
	p := newProvider(b, srv, nil)
	req := bedrock.Request{Models: []string{opus}, Messages: []bedrock.Message{userText("go")}}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		resp, err := p.Stream(context.Background(), req, func(e bedrock.Event) {
			if _, ok := e.(bedrock.TextDelta); ok {
				n++
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		if n != benchDeltas || len(resp.Text()) != 4*benchDeltas {
			b.Fatalf("got %d deltas, %d bytes", n, len(resp.Text()))
		}
	}
	b.ReportMetric(float64(benchDeltas), "deltas/op")
}
