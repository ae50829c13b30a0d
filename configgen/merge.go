package configgen

import (
	"fmt"
	"reflect"
	"strings"
)

// ProvisionedPaths are the keys the provisioner owns. The rest of the AWS
// side depends on them: nginx proxies to the port on loopback, the client
// holds the token, the IAM policy allows exactly the configured models and
// the idle stop, and the Bedrock client needs the instance's region. When a
// new instance finds a config already on its data volume, these keys are
// taken from the newly provisioned config and everything else stays the
// person's.
//
// They are leaves, or whole values such as the model list, never a parent
// with keys of the person's own (gateway.auth.rateLimit stays theirs). A key
// the provisioned config leaves out is removed: a plaintext token the person
// added would otherwise conflict with the provisioned tokenSha256.
var ProvisionedPaths = []string{
	"gateway.port",
	"gateway.bind",
	"gateway.auth.mode",
	"gateway.auth.token",
	"gateway.auth.tokenSha256",
	"gateway.auth.password",
	"gateway.auth.passwordSha256",
	"gateway.idle.stopAfterMinutes",
	"agents.defaults.model",
	"models.providers." + Provider + ".region",
	"models.providers." + Provider + ".endpoint",
}

// MergeProvisioned returns kept with every ProvisionedPaths key replaced by
// provisioned's (or removed when provisioned has none), and the paths that
// changed. With no change it returns kept itself, byte for byte, so a
// hand-written file keeps its comments. Otherwise the result is re-encoded
// in schema order and must be a valid config: an invalid result is an
// *Error and nothing is returned to write. A value that is not an object
// where a provisioned key's parent belongs (gateway.auth: "") is replaced by
// that object; the file was invalid there anyway.
func MergeProvisioned(kept, provisioned []byte) (merged []byte, changed []string, err error) {
	prov, err := DecodeRaw(provisioned)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the provisioned config: %w", err)
	}
	if _, err := ParseEnv(provisioned, func(string) string { return "" }); err != nil {
		return nil, nil, fmt.Errorf("the provisioned config is invalid: %w", err)
	}
	tree, err := DecodeRaw(kept)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the kept config: %w", err)
	}
	for _, p := range ProvisionedPaths {
		pv, inProv := Get(prov, p)
		kv, inKept := Get(tree, p)
		switch {
		case inProv && (!inKept || !reflect.DeepEqual(pv, kv)):
			Set(tree, p, pv)
			changed = append(changed, p)
		case !inProv && inKept:
			Delete(tree, p)
			changed = append(changed, p)
		}
	}
	if len(changed) == 0 {
		return kept, nil, nil
	}
	out, err := Marshal(tree)
	if err != nil {
		return nil, nil, err
	}
	if _, err := Parse(out); err != nil {
		return nil, nil, fmt.Errorf("the merged config would be invalid (%s changed): %w", strings.Join(changed, ", "), err)
	}
	return out, changed, nil
}
