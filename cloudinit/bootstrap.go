package cloudinit

import (
	_ "embed"
	"fmt"
	"strings"
)

// bootstrapSource is the script; what ships has its settings filled in.
// It keeps its comments: user-data is gzipped anyway, and the copy on the
// box is what someone debugging a failed boot reads.
//
//go:embed bootstrap.sh
var bootstrapSource string

const settingsMarker = "# @SETTINGS@\n"

func bootstrapScript(o Options, gatewayPort int) []byte {
	a := o.Artifact
	var s strings.Builder
	set := func(name, value string) { fmt.Fprintf(&s, "readonly %s=%s\n", name, shellQuote(value)) }
	set("VOLUME_ID", o.DataVolumeID)
	set("BINARY_SHA256", o.BinarySHA256)
	set("BINARY_PATH", o.BinaryPath)
	set("ARTIFACT_URL", a.URL)
	set("S3_BUCKET", a.S3Bucket)
	set("S3_KEY", a.S3Key)
	set("S3_REGION", a.Region)
	set("S3_ENDPOINT", a.S3Endpoint)
	set("METADATA_URL", o.MetadataEndpoint)
	set("TLS_DIR", o.TLSDir)
	logs := ""
	if o.Logs.On() {
		logs = LogsUnitName
	}
	set("LOGS_UNIT", logs)
	fmt.Fprintf(&s, "readonly GATEWAY_PORT=%d\n", gatewayPort)
	return []byte(strings.Replace(bootstrapSource, settingsMarker, s.String(), 1))
}

// shellQuote quotes for bash. Validated values never hold a quote, but the
// quoting does not rely on that.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
