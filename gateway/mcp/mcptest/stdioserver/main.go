// Command stdioserver is the MCP test server over stdio (see mcptest).
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"os"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/skykoi/skykoi/gateway/mcp/mcptest"
)

type crashIn struct{}

func main() {
	hang := flag.Bool("hang", false, "never answer, not even initialize")
	name := flag.String("name", "stdio-test", "the server's name")
	flag.Parse()
	if *hang {
		// A server stuck before its handshake: it holds stdin open and
		// says nothing until the client gives up and kills it.
		_, _ = io.Copy(io.Discard, os.Stdin)
		return
	}
	s := mcptest.NewServer(*name)
	sdk.AddTool(s, &sdk.Tool{Name: "crash", Description: "Exit at once with status 3."},
		func(context.Context, *sdk.CallToolRequest, crashIn) (*sdk.CallToolResult, any, error) {
			os.Stderr.WriteString("crashing on request\n")
			os.Exit(3)
			return nil, nil, nil
		})
	if err := s.Run(context.Background(), &sdk.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}
