package infra

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/skykoi/skykoi/configgen"
)

// ConfigNamespace is the stack config namespace the program reads.
const ConfigNamespace = "skykoi"

// Stack config keys, without the namespace.
const (
	KeyInstanceType      = "instanceType"
	KeyAllowedCidrs      = "allowedCidrs"
	KeyModel             = "model"
	KeyFallbacks         = "fallbacks"
	KeyGatewayToken      = "gatewayToken"
	KeyGatewayBinary     = "gatewayBinary"
	KeyDataVolumeGiB     = "dataVolumeGiB"
	KeyRootVolumeGiB     = "rootVolumeGiB"
	KeyIdleStopMinutes   = "idleStopMinutes"
	KeySSHCidrs          = "sshCidrs"
	KeyKeepDataOnDestroy = "keepDataOnDestroy"
	KeyElasticIP         = "elasticIp"
	KeySubnetID          = "subnetId"

	// Backups, restore and adoption (backup.go); the budget (budget.go).
	KeyBackupRetentionDays  = "backupRetentionDays"
	KeyDataVolumeSnapshotID = "dataVolumeSnapshotId"
	KeyDataVolumeID         = "dataVolumeId"
	KeyBudgetEmail          = "budgetEmail"
	KeyBudgetMonthlyUSD     = "budgetMonthlyUsd"
	KeyCloudWatchLogs       = "cloudwatchLogs"
	KeyLogRetentionDays     = "logRetentionDays"
)

// minTokenLength matches the gateway's rule for plaintext tokens; `skykoi
// token new` makes 43 characters.
const minTokenLength = 32

// tokenHint is how to make and store a token, for every token message.
const tokenHint = `pulumi config set --secret skykoi:gatewayToken "$(skykoi token new)"`

// ConfigError lists every problem with the stack config, one message per
// key, so one `pulumi up` shows all there is to fix.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("the stack config has %d problem(s) (see docs/deploy.md):\n  - %s",
		len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// configSource is the part of a Pulumi context LoadConfig reads, so the
// parsing does not depend on a running engine.
type configSource struct {
	get      func(key string) (string, bool)
	isSecret func(key string) bool
	// root is the project directory that relative paths start from.
	root string
}

// LoadConfig reads the Koi's settings from the stack config (namespace
// skykoi), applies the defaults and checks everything, including that the
// gateway binary exists and matches the instance's architecture. The
// gateway token leaves as its SHA-256 only. The error, a *ConfigError,
// names every missing or invalid value.
func LoadConfig(ctx *pulumi.Context) (KoiArgs, error) {
	return loadConfig(configSource{
		get:      ctx.GetConfig,
		isSecret: ctx.IsConfigSecret,
		root:     projectRoot(ctx.RootDirectory()),
	})
}

// projectRoot is where Pulumi.yaml is. Newer CLIs say so; otherwise it is
// found upwards from the working directory, which for a Go program may be
// the directory of its main package rather than the project's.
func projectRoot(fromEngine string) string {
	if fromEngine != "" {
		return fromEngine
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "Pulumi.yaml")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return wd
		}
		dir = parent
	}
}

// keyOrder is the order problems are reported in, whichever check found
// them: the order the keys appear in docs/deploy.md.
var keyOrder = []string{
	KeyInstanceType, KeyAllowedCidrs, KeySSHCidrs, KeyModel, KeyFallbacks,
	KeyGatewayToken, KeyGatewayBinary, KeyDataVolumeGiB, KeyRootVolumeGiB,
	KeyIdleStopMinutes, KeyKeepDataOnDestroy, KeyElasticIP, KeySubnetID,
	KeyBackupRetentionDays, KeyDataVolumeSnapshotID, KeyDataVolumeID,
	KeyBudgetEmail, KeyBudgetMonthlyUSD, KeyCloudWatchLogs, KeyLogRetentionDays,
}

// configReader collects one problem per key while values are parsed.
type configReader struct {
	src      configSource
	problems []problem
	failed   map[string]bool
}

func (r *configReader) bad(key, format string, args ...any) {
	if r.failed[key] {
		return
	}
	r.failed[key] = true
	r.problems = append(r.problems, problem{key, fmt.Sprintf(format, args...)})
}

func (r *configReader) err() error {
	if len(r.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(r.problems, func(a, b problem) int {
		return slices.Index(keyOrder, a.key) - slices.Index(keyOrder, b.key)
	})
	e := &ConfigError{}
	for _, p := range r.problems {
		e.Problems = append(e.Problems, ConfigNamespace+":"+p.key+": "+p.msg)
	}
	return e
}

func (r *configReader) raw(key string) (string, bool) {
	return r.src.get(ConfigNamespace + ":" + key)
}

func (r *configReader) str(key string) string {
	v, _ := r.raw(key)
	return strings.TrimSpace(v)
}

func (r *configReader) list(key, example string) []string {
	v, ok := r.raw(key)
	if !ok {
		return nil
	}
	var out []string
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		r.bad(key, "want a list, got %q; set items with pulumi config set --path '%s:%s[0]' %s",
			v, ConfigNamespace, key, example)
		return nil
	}
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

func (r *configReader) integer(key string, def, lo, hi int, unit string) int {
	v, ok := r.raw(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		r.bad(key, "want a whole number of %s from %d to %d, got %q", unit, lo, hi, v)
		return def
	}
	return n
}

func (r *configReader) boolean(key string, def bool) bool {
	v, ok := r.raw(key)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		r.bad(key, "want true or false, got %q", v)
		return def
	}
	return b
}

func loadConfig(src configSource) (KoiArgs, error) {
	r := &configReader{src: src, failed: map[string]bool{}}
	a := KoiArgs{
		InstanceType:    r.str(KeyInstanceType),
		AllowedCidrs:    r.list(KeyAllowedCidrs, "203.0.113.7/32"),
		SSHCidrs:        r.list(KeySSHCidrs, "203.0.113.7/32"),
		Model:           r.str(KeyModel),
		Fallbacks:       r.list(KeyFallbacks, configgen.Provider+"/us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
		GatewayBinary:   r.str(KeyGatewayBinary),
		DataVolumeGiB:   r.integer(KeyDataVolumeGiB, DefaultDataVolumeGiB, 1, maxVolumeGiB, "GiB"),
		RootVolumeGiB:   r.integer(KeyRootVolumeGiB, DefaultRootVolumeGiB, minRootVolumeGiB, maxVolumeGiB, "GiB"),
		IdleStopMinutes: r.integer(KeyIdleStopMinutes, 0, 0, maxIdleStopMinutes, "minutes"),
		ElasticIP:       r.boolean(KeyElasticIP, false),
		SubnetID:        r.str(KeySubnetID),
	}
	a.DeleteDataOnDestroy = !r.boolean(KeyKeepDataOnDestroy, true)
	r.backupSettings(&a)
	a.Budget = r.budget()
	a.Logs = LogsArgs{On: r.boolean(KeyCloudWatchLogs, false)}
	if _, set := r.raw(KeyLogRetentionDays); set {
		if !a.Logs.On {
			r.bad(KeyLogRetentionDays, "applies only with %s:%s true", ConfigNamespace, KeyCloudWatchLogs)
		}
		a.Logs.RetentionDays = r.integer(KeyLogRetentionDays, DefaultLogRetentionDays, 1, 3653, "days")
	}
	a.TokenSha256 = r.token()
	a = a.withDefaults()
	if a.GatewayBinary != "" && !filepath.IsAbs(a.GatewayBinary) && src.root != "" {
		a.GatewayBinary = filepath.Join(src.root, a.GatewayBinary)
	}

	for _, p := range a.problems() {
		if p.key == keyTokenSha256 {
			// Only reachable through r.token, which reported it already.
			continue
		}
		r.bad(p.key, "%s", p.msg)
	}
	if !r.failed[KeyInstanceType] && !r.failed[KeyGatewayBinary] {
		r.checkBinary(a)
	}
	if err := r.err(); err != nil {
		return KoiArgs{}, err
	}
	return a, nil
}

// token returns the gateway token's SHA-256. The plaintext goes no further.
func (r *configReader) token() string {
	key := KeyGatewayToken
	v, ok := r.raw(key)
	switch {
	case !ok || v == "":
		r.bad(key, "required: the token clients present to the Koi; make one with %s", tokenHint)
	case !r.src.isSecret(ConfigNamespace + ":" + key):
		// Saying so without echoing it: the value is a credential.
		r.bad(key, "is stored in plaintext in the stack's config file; make a new token and store it encrypted: %s", tokenHint)
	case strings.IndexFunc(v, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }) >= 0:
		r.bad(key, "contains spaces or control characters, which clients would not send back; make one with %s", tokenHint)
	case len(v) < minTokenLength:
		r.bad(key, "is %d characters, want at least %d; make one with %s", len(v), minTokenLength, tokenHint)
	default:
		return configgen.HashSecret(v)
	}
	return ""
}

func (r *configReader) checkBinary(a KoiArgs) {
	arch, err := ArchOf(a.InstanceType)
	if err != nil {
		return
	}
	got, err := binaryArch(a.GatewayBinary)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.bad(KeyGatewayBinary, "%s does not exist; build it with `make dist` (or set %s:%s to the binary's path)",
			a.GatewayBinary, ConfigNamespace, KeyGatewayBinary)
	case err != nil:
		r.bad(KeyGatewayBinary, "%v", err)
	case got != arch:
		r.bad(KeyGatewayBinary, "%v", archMismatch(a.GatewayBinary, got, a.InstanceType, arch))
	}
}

// backupSettings reads the backup, restore and adoption keys. With a
// snapshot or an adopted volume, an unset dataVolumeGiB means the
// snapshot's or the volume's own size, not the default.
func (r *configReader) backupSettings(a *KoiArgs) {
	a.DataVolumeSnapshotID = r.str(KeyDataVolumeSnapshotID)
	a.DataVolumeID = r.str(KeyDataVolumeID)
	if _, set := r.raw(KeyDataVolumeGiB); !set && (a.DataVolumeSnapshotID != "" || a.DataVolumeID != "") {
		a.DataVolumeGiB = 0
	}
	n := r.integer(KeyBackupRetentionDays, DefaultBackupRetentionDays, 0, maxBackupRetentionDays, "daily snapshots (0: no backups)")
	if n == 0 {
		a.DisableBackups = true
		n = DefaultBackupRetentionDays
	}
	a.BackupRetentionDays = n
}

func (r *configReader) budget() BudgetArgs {
	b := BudgetArgs{Email: r.str(KeyBudgetEmail)}
	if v, ok := r.raw(KeyBudgetMonthlyUSD); ok {
		usd, err := parseUSD(v)
		if err != nil {
			r.bad(KeyBudgetMonthlyUSD, "%v", err)
			// Set, if invalid: the email's check must not also say it is missing.
			usd = 1
		}
		b.MonthlyUSD = usd
	}
	return b
}
