// Package awslog routes the AWS SDK's own log lines (such as "falling back
// to IMDSv1") through slog, so they land in the gateway's JSON log as
// records instead of as plain "SDK … WARN" text on stderr, which is where
// the SDK writes when given no logger.
package awslog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/smithy-go/logging"
)

// Logger is a smithy logging.Logger over slog.
type Logger struct {
	log *slog.Logger
}

// New wraps l; a nil l discards.
func New(l *slog.Logger) Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return Logger{log: l.With("source", "aws-sdk")}
}

// Logf logs one SDK message at the slog level matching its classification.
func (l Logger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelInfo
	switch c {
	case logging.Warn:
		level = slog.LevelWarn
	case logging.Debug:
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

var _ logging.Logger = Logger{}
