package awslog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/aws/smithy-go/logging"
)

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		class logging.Classification
		want  string
	}{
		{logging.Warn, "WARN"},
		{logging.Debug, "DEBUG"},
		{"OTHER", "INFO"},
	} {
		var buf bytes.Buffer
		l := New(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
		l.Logf(tc.class, "falling back to %s", "IMDSv1")
		var rec map[string]any
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("%s: not one JSON record: %q", tc.class, buf.String())
		}
		if rec["level"] != tc.want || rec["msg"] != "falling back to IMDSv1" || rec["source"] != "aws-sdk" {
			t.Errorf("%s: record %v, want level %s", tc.class, rec, tc.want)
		}
	}
	New(nil).Logf(logging.Warn, "discarded") // a nil logger must not panic
}
