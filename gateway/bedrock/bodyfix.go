package bedrock

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// addReadOnlyBody works around a race between smithy-go and net/http that
// kills event streams.
//
// smithy-go hands net/http the request body in a wrapper whose WriteTo
// returns io.EOF once closed, and closes it as soon as the response headers
// arrive. net/http, after sending Content-Length bytes, copies the rest of
// the body to check that nothing is left; it does that through WriteTo, and
// io.Copy passes WriteTo's io.EOF on as an error. When the response headers
// arrive before that check runs (the server needs only the body, not the
// check), the transport takes the "failed" write as fatal and closes the
// connection, and the stream being read on it ends with "use of closed
// network connection". Against a local server it broke about one stream in
// ten; over the network the window is small but not zero. A body without
// WriteTo makes io.Copy use Read, where io.EOF is the normal end.
//
// The middleware runs last in the finalize step: after the payload hash and
// Content-Length were computed from the seekable body, and inside the retry
// loop, so every attempt sends a fresh wrapper.
func addReadOnlyBody(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("SkykoiReadOnlyRequestBody",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			req, ok := in.Request.(*smithyhttp.Request)
			if !ok {
				return next.HandleFinalize(ctx, in)
			}
			stream := req.GetStream()
			if stream == nil {
				return next.HandleFinalize(ctx, in)
			}
			wrapped, err := req.SetStream(readOnly{stream})
			if err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("wrapping the request body: %w", err)
			}
			in.Request = wrapped
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

// readOnly exposes only Read.
type readOnly struct{ r io.Reader }

func (r readOnly) Read(p []byte) (int, error) { return r.r.Read(p) }
