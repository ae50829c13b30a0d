// Package bedrock is the gateway's model provider: Amazon Bedrock's
// ConverseStream through aws-sdk-go-v2, with the retry, fallback, prompt
// caching and error policy the agent loop relies on.
//
// Retries are done here, not by the SDK, because only this layer knows
// whether output has already reached the caller: a failure before the first
// delta is retried (with jittered backoff) and then handed to the next model
// in Request.Models; a failure after it is returned as is, so the caller
// never sees text twice.
package bedrock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/schemas"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/transport/http/protocol/restjson1"
	"github.com/skykoi/skykoi/internal/awslog"
)

// Provider calls Bedrock. It is safe for concurrent use.
type Provider struct {
	client *bedrockruntime.Client
	opts   Options
	log    *slog.Logger
}

// New builds a Provider: it loads the SDK configuration (default
// credential chain unless Options.Credentials is set) and creates the
// client. Credentials are resolved lazily, on the first request, so New
// succeeds on a box whose instance role is attached later.
func New(ctx context.Context, opts Options) (*Provider, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	load := []func(*config.LoadOptions) error{
		config.WithRegion(opts.Region),
		// The SDK's retryer cannot know whether deltas already reached the
		// caller; Stream does its own retries.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		// Without a logger the SDK prints plain text to stderr, into the
		// middle of the gateway's JSON log.
		config.WithLogger(awslog.New(opts.Logger)),
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	if opts.HTTPClient != nil {
		load = append(load, config.WithHTTPClient(opts.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, &Error{
			Kind: NoCredentials,
			Message: redact(fmt.Sprintf("bedrock: loading the AWS SDK configuration: %v "+
				"(check AWS_PROFILE and ~/.aws/config, or unset them to use the instance role)", err)),
			Err:    err,
			reason: "loading AWS config",
		}
	}
	if cfg.Credentials != nil {
		cfg.Credentials = markedCredentials{inner: cfg.Credentials}
	}
	client := bedrockruntime.NewFromConfig(cfg, func(o *bedrockruntime.Options) {
		o.Retryer = aws.NopRetryer{}
		o.RetryMaxAttempts = 0
		o.APIOptions = append(o.APIOptions, addReadOnlyBody)
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})
	return &Provider{client: client, opts: opts, log: opts.Logger}, nil
}

// Region is the region requests are signed for.
func (p *Provider) Region() string { return p.opts.Region }

// markedCredentials wraps the credentials provider so that its failures can
// be recognised in the SDK's error chain (the SDK wraps them in plain
// fmt.Errorf layers without a type of its own).
type markedCredentials struct{ inner aws.CredentialsProvider }

func (m markedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.inner.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err: err}
	}
	return c, nil
}

// ownProtocol gives each stream its own protocol instance. The client's
// shared restjson1 protocol holds a single event-stream codec whose fields
// (decoder, payload buffer) are set without locks by the reader goroutine of
// every stream, so concurrent streams on one client race (go test -race
// reports it). Today the writes are harmless, but the codec is built to reuse
// its payload buffer, and if it ever does, streams would overwrite each
// other's events; one codec per stream rules that out for little cost.
func ownProtocol(o *bedrockruntime.Options) {
	o.Protocol = restjson1.New(schemas.AmazonBedrockFrontendService)
}

func (p *Provider) classifier(ref string) classifier {
	return classifier{ref: ref, region: p.opts.Region, endpoint: p.opts.Endpoint}
}

// Stream sends req to the first model in req.Models and streams the answer
// through onEvent (called on the caller's goroutine, in order). Failures
// before any output are retried up to Options.MaxAttempts per model, then
// the next model is tried. On success it returns the assembled turn. On
// failure the error is an *Error; after a failure mid-stream (Kind Stream,
// or Canceled/Timeout after output) the returned *Response is non-nil and
// holds what arrived before it.
func (p *Provider) Stream(ctx context.Context, req Request, onEvent func(Event)) (*Response, error) {
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	if len(req.Models) == 0 {
		return nil, p.classifier("").errorf(Validation, false, nil, "no model",
			"no model to call: set agents.defaults.model.primary")
	}
	ids := make([]string, len(req.Models))
	for i, ref := range req.Models {
		id, err := ParseModelRef(ref)
		if err != nil {
			return nil, p.classifier(ref).errorf(ModelNotFound, false, err, "bad model ref",
				"%v; fix agents.defaults.model", err)
		}
		ids[i] = id
	}
	if _, err := thinkingBudget(req.Thinking); err != nil {
		return nil, p.classifier("").errorf(Validation, false, err, "bad thinking level", "%v; fix agents.defaults.thinking", err)
	}

	var last *Error
	for i, ref := range req.Models {
		if i > 0 {
			p.log.Warn("bedrock: falling back to the next model", "from", req.Models[i-1], "to", ref, "reason", last.Reason())
			onEvent(Fallback{From: req.Models[i-1], To: ref, Reason: last.Reason()})
		}
		resp, err, streamed := p.tryModel(ctx, ref, ids[i], req, onEvent)
		if err == nil {
			return resp, nil
		}
		if streamed {
			return resp, err
		}
		if !err.Retryable || ctx.Err() != nil {
			return nil, err
		}
		last = err
	}
	if len(req.Models) > 1 {
		last.Message += fmt.Sprintf(" (gave up after %d attempts on each of %d models)", p.opts.MaxAttempts, len(req.Models))
	} else {
		last.Message += fmt.Sprintf(" (gave up after %d attempts; configure fallbacks in agents.defaults.model to try another model)", p.opts.MaxAttempts)
	}
	return nil, last
}

// tryModel runs up to MaxAttempts attempts against one model.
func (p *Provider) tryModel(ctx context.Context, ref, id string, req Request, onEvent func(Event)) (*Response, *Error, bool) {
	in, err := buildInput(id, req)
	if err != nil {
		return nil, p.classifier(ref).errorf(Validation, false, err, "bad request", "building the request: %v", err), false
	}
	for attempt := 1; ; attempt++ {
		resp, berr, streamed := p.once(ctx, ref, in, onEvent)
		if berr == nil {
			return resp, nil, true
		}
		if streamed || !berr.Retryable || attempt >= p.opts.MaxAttempts {
			return resp, berr, streamed
		}
		delay := p.backoff(attempt)
		p.log.Warn("bedrock: retrying", "model", ref, "attempt", attempt+1, "delay", delay, "reason", berr.Reason())
		onEvent(Retry{Attempt: attempt + 1, Model: ref, Delay: delay, Reason: berr.Reason()})
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, p.classifier(ref).classify(ctx, ctx.Err()), false
		}
	}
}

// backoff is "full jitter": a uniform delay up to the exponential bound, so
// many Kois throttled at once do not retry in lockstep.
func (p *Provider) backoff(attempt int) time.Duration {
	bound := p.opts.MaxBackoff
	if shift := attempt - 1; shift < 32 {
		if b := p.opts.BaseBackoff << shift; b > 0 && b < bound {
			bound = b
		}
	}
	if bound <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(bound) + 1))
}

// assembly collects the blocks of one answer by content block index.
type assembly struct {
	blocks map[int32]*partBlock
}

type partBlock struct {
	kind      string
	text      []byte
	id, name  string
	input     toolInput
	signature string
	redacted  []byte
}

func (a *assembly) block(idx int32, kind string) *partBlock {
	if a.blocks == nil {
		a.blocks = map[int32]*partBlock{}
	}
	b := a.blocks[idx]
	if b == nil {
		b = &partBlock{kind: kind}
		a.blocks[idx] = b
	}
	return b
}

// content returns the blocks in index order; a tool call whose input is not
// a JSON object is reported as an error with the blocks that are fine.
func (a *assembly) content() ([]Block, error) {
	idx := make([]int32, 0, len(a.blocks))
	for i := range a.blocks {
		idx = append(idx, i)
	}
	slices.SortFunc(idx, cmp.Compare)
	out := make([]Block, 0, len(idx))
	var firstErr error
	for _, i := range idx {
		b := a.blocks[i]
		switch b.kind {
		case BlockText:
			out = append(out, Block{Type: BlockText, Text: string(b.text)})
		case BlockReasoning:
			out = append(out, Block{Type: BlockReasoning, Text: string(b.text), Signature: b.signature, RedactedContent: b.redacted})
		case BlockToolUse:
			in, err := b.input.decode()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("tool call %s (%s): %w", b.id, b.name, err)
				}
				continue
			}
			out = append(out, Block{Type: BlockToolUse, ToolUseID: b.id, Name: b.name, Input: in})
		}
	}
	return out, firstErr
}

func val[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// once is one ConverseStream call. streamed reports whether any output
// event reached onEvent, which forbids retrying.
func (p *Provider) once(ctx context.Context, ref string, in *bedrockruntime.ConverseStreamInput, onEvent func(Event)) (resp *Response, berr *Error, streamed bool) {
	c := p.classifier(ref)
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var idle *time.Timer
	if p.opts.IdleTimeout > 0 {
		idle = time.AfterFunc(p.opts.IdleTimeout, func() { cancel(errIdle) })
		defer idle.Stop()
	}
	touch := func() {
		if idle != nil {
			idle.Reset(p.opts.IdleTimeout)
		}
	}
	fail := func(err error) *Error {
		if ctx.Err() == nil && context.Cause(actx) == errIdle {
			err = fmt.Errorf("%w: %w", errIdle, err)
		}
		e := c.classify(ctx, err)
		if streamed && e.Kind != Canceled && e.Kind != Timeout {
			e = c.errorf(Stream, false, e, e.Reason(),
				"the answer broke off after output had started (%s); the partial answer was kept and not retried, so nothing is repeated", e.Reason())
		} else if streamed {
			e.Retryable = false
		}
		return e
	}

	out, err := p.client.ConverseStream(actx, in, ownProtocol)
	if err != nil {
		return nil, fail(err), false
	}
	stream := out.GetStream()
	defer stream.Close()
	touch()

	resp = &Response{Model: ref}
	var asm assembly
	gotStop := false
	events := stream.Events()
	for {
		var ev types.ConverseStreamOutput
		var ok bool
		select {
		case ev, ok = <-events:
		case <-actx.Done():
			resp.Content, _ = asm.content()
			return resp, fail(context.Cause(actx)), streamed
		}
		if !ok {
			break
		}
		touch()
		switch e := ev.(type) {
		case *types.ConverseStreamOutputMemberContentBlockStart:
			idx := val(e.Value.ContentBlockIndex)
			if tu, isTool := e.Value.Start.(*types.ContentBlockStartMemberToolUse); isTool {
				b := asm.block(idx, BlockToolUse)
				b.id, b.name = val(tu.Value.ToolUseId), val(tu.Value.Name)
				streamed = true
				onEvent(ToolUseStart{ID: b.id, Name: b.name})
			}
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			idx := val(e.Value.ContentBlockIndex)
			switch d := e.Value.Delta.(type) {
			case *types.ContentBlockDeltaMemberText:
				b := asm.block(idx, BlockText)
				b.text = append(b.text, d.Value...)
				streamed = true
				onEvent(TextDelta{Text: d.Value})
			case *types.ContentBlockDeltaMemberToolUse:
				b := asm.block(idx, BlockToolUse)
				chunk := val(d.Value.Input)
				b.input.add(chunk)
				streamed = true
				onEvent(ToolUseInputDelta{ID: b.id, Partial: chunk})
			case *types.ContentBlockDeltaMemberReasoningContent:
				// Reasoning is kept for the transcript but not surfaced as
				// events: it is not answer text, and keeping it silent lets a
				// failure during thinking still be retried.
				b := asm.block(idx, BlockReasoning)
				switch r := d.Value.(type) {
				case *types.ReasoningContentBlockDeltaMemberText:
					b.text = append(b.text, r.Value...)
				case *types.ReasoningContentBlockDeltaMemberSignature:
					b.signature += r.Value
				case *types.ReasoningContentBlockDeltaMemberRedactedContent:
					b.redacted = append(b.redacted, r.Value...)
				}
			}
		case *types.ConverseStreamOutputMemberMessageStop:
			resp.StopReason = string(e.Value.StopReason)
			gotStop = true
		case *types.ConverseStreamOutputMemberMetadata:
			if u := e.Value.Usage; u != nil {
				resp.Usage = Usage{
					InputTokens:      int(val(u.InputTokens)),
					OutputTokens:     int(val(u.OutputTokens)),
					CacheReadTokens:  int(val(u.CacheReadInputTokens)),
					CacheWriteTokens: int(val(u.CacheWriteInputTokens)),
				}
				onEvent(resp.Usage)
			}
		default:
			// messageStart, contentBlockStop and event types newer than this
			// code carry nothing the answer needs.
		}
	}

	content, contentErr := asm.content()
	resp.Content = content
	if err := stream.Err(); err != nil && !gotStop {
		return resp, fail(err), streamed
	} else if err != nil {
		// Everything the answer needs arrived; losing the trailing metadata
		// costs only the usage numbers.
		p.log.Warn("bedrock: stream failed after messageStop", "model", ref, "error", c.classify(ctx, err).Reason())
	}
	if actx.Err() != nil {
		return resp, fail(context.Cause(actx)), streamed
	}
	if !gotStop {
		return resp, fail(errTruncated), streamed
	}
	if contentErr != nil {
		return resp, c.errorf(Stream, false, contentErr, "malformed tool input",
			"%v (stop reason %s); if it is max_tokens, raise agents.defaults.maxTokens", contentErr, resp.StopReason), streamed
	}
	return resp, nil, streamed
}

// Ping sends a minimal one-token Converse request to modelRef, for
// `skykoi doctor` and the health endpoint. It makes one attempt; failures
// are *Error with the same kinds as Stream.
func (p *Provider) Ping(ctx context.Context, modelRef string) error {
	id, err := ParseModelRef(modelRef)
	if err != nil {
		return p.classifier(modelRef).errorf(ModelNotFound, false, err, "bad model ref", "%v; fix agents.defaults.model", err)
	}
	_, err = p.client.Converse(ctx, &bedrockruntime.ConverseInput{
		ModelId: aws.String(id),
		Messages: []types.Message{{
			Role:    types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "ping"}},
		}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(1)},
	})
	if err != nil {
		return p.classifier(modelRef).classify(ctx, err)
	}
	return nil
}

// CheckCredentials resolves credentials through the configured chain
// without calling Bedrock, so a gateway can say at start-up, for free,
// whether model calls can work at all. The error is an *Error of kind
// NoCredentials saying how to fix it.
func (p *Provider) CheckCredentials(ctx context.Context) error {
	creds := p.client.Options().Credentials
	if creds == nil {
		return p.classifier("").noCredentials(errors.New("no credentials provider"), "no AWS credentials are configured")
	}
	if _, err := creds.Retrieve(ctx); err != nil {
		return p.classifier("").classify(ctx, err)
	}
	return nil
}
