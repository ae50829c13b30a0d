// Command fakebedrock serves the test fake of Amazon Bedrock (the real
// event-stream wire format) on a loopback port, for benchmarks and demos
// without AWS: point models.providers.amazon-bedrock.endpoint at the URL it
// prints. It is a development tool; it is never shipped to a Koi.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
)

func main() {
	deltas := flag.Int("deltas", 200, "text deltas per answer")
	chunk := flag.String("chunk", "tok ", "text of each delta")
	pause := flag.Duration("pause-every-100", 0, "pause after every 100 deltas (sets the delta rate)")
	flag.Parse()
	reply := bedrocktest.Reply{}
	for left := *deltas; left > 0; left -= 100 {
		reply = append(reply, bedrocktest.TextDeltas(min(left, 100), *chunk))
		if *pause > 0 {
			reply = append(reply, bedrocktest.Delay(*pause))
		}
	}
	reply = append(reply, bedrocktest.Usage(10, *deltas, 0, 0))
	s := bedrocktest.NewServer()
	s.KeepRequests(1)
	s.SetDefault(reply)
	fmt.Println(s.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s.Close()
}
