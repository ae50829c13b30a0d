package infra

import (
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/skykoi/skykoi/configgen"
)

// load runs LoadConfig inside a mocked Pulumi program, where the config
// comes from the run's info as the engine would supply it.
func load(t *testing.T, s stack) (KoiArgs, error) {
	t.Helper()
	var args KoiArgs
	var loadErr error
	if err := s.run(newFakeAWS(), func(ctx *pulumi.Context) error {
		args, loadErr = LoadConfig(ctx)
		return nil
	}); err != nil {
		t.Fatalf("program: %v", err)
	}
	return args, loadErr
}

func TestLoadConfigDefaults(t *testing.T) {
	root := projectDir(t)
	args, err := load(t, stack{
		config:  map[string]string{"skykoi:allowedCidrs": `["203.0.113.7/32"]`, "skykoi:gatewayToken": testToken},
		secrets: tokenSecret,
		root:    root,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := KoiArgs{
		InstanceType:  "t3.small",
		AllowedCidrs:  []string{"203.0.113.7/32"},
		Model:         configgen.DefaultModel,
		TokenSha256:   configgen.HashSecret(testToken),
		GatewayBinary: filepath.Join(root, "dist", "skykoi-linux-amd64"),
		DataVolumeGiB: 20,
		RootVolumeGiB: 16,

		BackupRetentionDays: DefaultBackupRetentionDays,
	}
	if !reflect.DeepEqual(args, want) {
		t.Errorf("LoadConfig =\n%+v\nwant\n%+v", args, want)
	}
}

func TestLoadConfigEverySetting(t *testing.T) {
	root := projectDir(t)
	custom := fakeBinary(t, filepath.Join(t.TempDir(), "koi-arm"), elf.EM_AARCH64)
	args, err := load(t, stack{
		config: map[string]string{
			"skykoi:instanceType":      "t4g.medium",
			"skykoi:allowedCidrs":      `["203.0.113.0/24", " 2001:db8::/32 "]`,
			"skykoi:sshCidrs":          `["198.51.100.7/32"]`,
			"skykoi:model":             "amazon-bedrock/eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
			"skykoi:fallbacks":         `["amazon-bedrock/amazon.nova-pro-v1:0"]`,
			"skykoi:gatewayToken":      testToken,
			"skykoi:gatewayBinary":     custom,
			"skykoi:dataVolumeGiB":     "100",
			"skykoi:rootVolumeGiB":     "30",
			"skykoi:idleStopMinutes":   "45",
			"skykoi:keepDataOnDestroy": "false",
			"skykoi:elasticIp":         "true",
			"skykoi:subnetId":          "subnet-0123456789abcdef0",

			"skykoi:backupRetentionDays":  "30",
			"skykoi:dataVolumeSnapshotId": "snap-0123456789abcdef0",
			"skykoi:budgetEmail":          "ada@example.com",
			"skykoi:budgetMonthlyUsd":     "42.50",
		},
		secrets: tokenSecret,
		root:    root,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := KoiArgs{
		InstanceType:        "t4g.medium",
		AllowedCidrs:        []string{"203.0.113.0/24", "2001:db8::/32"},
		SSHCidrs:            []string{"198.51.100.7/32"},
		Model:               "amazon-bedrock/eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
		Fallbacks:           []string{"amazon-bedrock/amazon.nova-pro-v1:0"},
		TokenSha256:         configgen.HashSecret(testToken),
		GatewayBinary:       custom,
		DataVolumeGiB:       100,
		RootVolumeGiB:       30,
		IdleStopMinutes:     45,
		DeleteDataOnDestroy: true,
		ElasticIP:           true,
		SubnetID:            "subnet-0123456789abcdef0",

		BackupRetentionDays:  30,
		DataVolumeSnapshotID: "snap-0123456789abcdef0",
		Budget:               BudgetArgs{Email: "ada@example.com", MonthlyUSD: 42.5},
	}
	if !reflect.DeepEqual(args, want) {
		t.Errorf("LoadConfig =\n%+v\nwant\n%+v", args, want)
	}
}

func TestLoadConfigRelativeBinary(t *testing.T) {
	root := projectDir(t)
	cfg := goodConfig()
	cfg["skykoi:gatewayBinary"] = "dist/skykoi-linux-amd64"
	args, err := load(t, stack{config: cfg, secrets: tokenSecret, root: root})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "dist", "skykoi-linux-amd64"); args.GatewayBinary != want {
		t.Errorf("gatewayBinary %q, want it under the project root: %q", args.GatewayBinary, want)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	root := projectDir(t)
	emptyRoot := t.TempDir()
	notELF := filepath.Join(root, "not-elf")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		set     map[string]string
		unset   []string
		public  bool // the token is not a secret
		root    string
		wantErr []string // one substring per expected problem, in order
	}{
		{name: "nothing set", unset: []string{"skykoi:allowedCidrs", "skykoi:gatewayToken"}, root: emptyRoot, wantErr: []string{
			"skykoi:allowedCidrs: required",
			"skykoi:gatewayToken: required",
			"skykoi:gatewayBinary: " + filepath.Join(emptyRoot, "dist", "skykoi-linux-amd64") + " does not exist; build it with `make dist`",
		}},
		{name: "token not secret", public: true, wantErr: []string{
			"skykoi:gatewayToken: is stored in plaintext",
		}},
		{name: "token short", set: map[string]string{"skykoi:gatewayToken": "hunter2"}, wantErr: []string{
			"skykoi:gatewayToken: is 7 characters, want at least 32",
		}},
		{name: "token with newline", set: map[string]string{"skykoi:gatewayToken": testToken + "\n"}, wantErr: []string{
			"skykoi:gatewayToken: contains spaces or control characters",
		}},
		{name: "cidrs as a string", set: map[string]string{"skykoi:allowedCidrs": "203.0.113.7/32"}, wantErr: []string{
			"skykoi:allowedCidrs: want a list, got \"203.0.113.7/32\"; set items with pulumi config set --path 'skykoi:allowedCidrs[0]'",
		}},
		{name: "cidrs empty list", set: map[string]string{"skykoi:allowedCidrs": "[]"}, wantErr: []string{
			"skykoi:allowedCidrs: required",
		}},
		{name: "cidr mistakes", set: map[string]string{"skykoi:allowedCidrs": `["203.0.113.7","10.1.2.3/8","nonsense"]`}, wantErr: []string{
			`skykoi:allowedCidrs: "203.0.113.7" is an address, not a CIDR; for this address alone use 203.0.113.7/32; "10.1.2.3/8" has bits set past its /8; the network is 10.0.0.0/8; "nonsense" is not a CIDR`,
		}},
		{name: "ssh from anywhere v4", set: map[string]string{"skykoi:sshCidrs": `["0.0.0.0/0"]`}, wantErr: []string{
			"skykoi:sshCidrs: 0.0.0.0/0 would open SSH to too much of the internet: too broad: together they reach as many IPv4 addresses as a /0",
		}},
		{name: "ssh from anywhere v6", set: map[string]string{"skykoi:sshCidrs": `["203.0.113.7/32","::/0"]`}, wantErr: []string{
			"skykoi:sshCidrs: 203.0.113.7/32, ::/0 would open SSH to too much of the internet: too broad: together they reach as many IPv4 addresses as a /0; together they reach as many IPv6 addresses as a /0",
		}},
		{name: "ssh from anywhere split in halves", set: map[string]string{"skykoi:sshCidrs": `["0.0.0.0/1","128.0.0.0/1"]`}, wantErr: []string{
			"skykoi:sshCidrs: 0.0.0.0/1, 128.0.0.0/1 would open SSH to too much of the internet: too broad: together they reach as many IPv4 addresses as a /0 (the rule: all the prefixes together must cover fewer addresses than an IPv4 /7 and an IPv6 /31, that is one /8 (IPv6 /32) at most plus smaller ones; IPv4-mapped IPv6 counts as IPv4",
		}},
		{name: "instance type", set: map[string]string{"skykoi:instanceType": "t3small"}, wantErr: []string{
			`skykoi:instanceType: instance type "t3small": want a type like t3.small`,
		}},
		{name: "mac", set: map[string]string{"skykoi:instanceType": "mac2.metal"}, wantErr: []string{
			"skykoi:instanceType: instance type \"mac2.metal\": Mac instances run macOS only",
		}},
		{name: "model", set: map[string]string{"skykoi:model": "us.anthropic.claude-opus-4-6-v1"}, wantErr: []string{
			`skykoi:model: want "amazon-bedrock/<modelId>", got "us.anthropic.claude-opus-4-6-v1"`,
		}},
		{name: "fallbacks", set: map[string]string{"skykoi:fallbacks": `["openai/gpt-5","amazon-bedrock/arn:aws:bedrock:us-east-1:1:x/y"]`}, wantErr: []string{
			`skykoi:fallbacks: want "amazon-bedrock/<modelId>", got "openai/gpt-5"; give a model or inference profile id`,
		}},
		{name: "fallbacks not a list", set: map[string]string{"skykoi:fallbacks": "amazon-bedrock/amazon.nova-pro-v1:0"}, wantErr: []string{
			"skykoi:fallbacks: want a list",
		}},
		{name: "numbers", set: map[string]string{
			"skykoi:dataVolumeGiB":   "lots",
			"skykoi:rootVolumeGiB":   "4",
			"skykoi:idleStopMinutes": "-1",
		}, wantErr: []string{
			`skykoi:dataVolumeGiB: want a whole number of GiB from 1 to 16384, got "lots"`,
			`skykoi:rootVolumeGiB: want a whole number of GiB from 8 to 16384, got "4"`,
			`skykoi:idleStopMinutes: want a whole number of minutes from 0 to 525600, got "-1"`,
		}},
		{name: "zero data volume", set: map[string]string{"skykoi:dataVolumeGiB": "0"}, wantErr: []string{
			`skykoi:dataVolumeGiB: want a whole number of GiB from 1 to 16384, got "0"`,
		}},
		{name: "booleans", set: map[string]string{"skykoi:keepDataOnDestroy": "maybe", "skykoi:elasticIp": "yes please"}, wantErr: []string{
			`skykoi:keepDataOnDestroy: want true or false, got "maybe"`,
			`skykoi:elasticIp: want true or false, got "yes please"`,
		}},
		{name: "subnet", set: map[string]string{"skykoi:subnetId": "sub-123"}, wantErr: []string{
			`skykoi:subnetId: want a subnet id like subnet-0123456789abcdef0, got "sub-123"`,
		}},
		{name: "binary for the other architecture", set: map[string]string{"skykoi:instanceType": "t4g.small", "skykoi:gatewayBinary": "dist/skykoi-linux-amd64"}, wantErr: []string{
			"skykoi:gatewayBinary: " + filepath.Join(root, "dist", "skykoi-linux-amd64") + " is built for amd64, but t4g.small is arm64; use dist/skykoi-linux-arm64",
		}},
		{name: "binary not ELF", set: map[string]string{"skykoi:gatewayBinary": notELF}, wantErr: []string{
			"skykoi:gatewayBinary: " + notELF + " is not a Linux executable",
		}},
		{name: "everything wrong at once", unset: []string{"skykoi:gatewayToken"}, set: map[string]string{
			"skykoi:instanceType":      "t3small",
			"skykoi:allowedCidrs":      `["203.0.113.7"]`,
			"skykoi:sshCidrs":          `["0.0.0.0/0"]`,
			"skykoi:model":             "gpt",
			"skykoi:fallbacks":         `["x"]`,
			"skykoi:dataVolumeGiB":     "-5",
			"skykoi:rootVolumeGiB":     "big",
			"skykoi:idleStopMinutes":   "soon",
			"skykoi:keepDataOnDestroy": "perhaps",
			"skykoi:elasticIp":         "2",
			"skykoi:subnetId":          "default",
		}, wantErr: []string{
			"skykoi:instanceType:",
			"skykoi:allowedCidrs:",
			"skykoi:sshCidrs:",
			"skykoi:model:",
			"skykoi:fallbacks:",
			"skykoi:gatewayToken:",
			"skykoi:dataVolumeGiB:",
			"skykoi:rootVolumeGiB:",
			"skykoi:idleStopMinutes:",
			"skykoi:keepDataOnDestroy:",
			"skykoi:elasticIp:",
			"skykoi:subnetId:",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := goodConfig()
			for _, k := range tc.unset {
				delete(cfg, k)
			}
			for k, v := range tc.set {
				cfg[k] = v
			}
			s := stack{config: cfg, secrets: tokenSecret, root: root}
			if tc.public {
				s.secrets = nil
			}
			if tc.root != "" {
				s.root = tc.root
			}
			_, err := load(t, s)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			if len(ce.Problems) != len(tc.wantErr) {
				t.Fatalf("%d problems, want %d:\n  %s", len(ce.Problems), len(tc.wantErr), strings.Join(ce.Problems, "\n  "))
			}
			for i, want := range tc.wantErr {
				if !strings.Contains(ce.Problems[i], want) {
					t.Errorf("problem %d:\n  %s\nwant it to contain\n  %s", i, ce.Problems[i], want)
				}
			}
			msg := err.Error()
			if !strings.Contains(msg, "problem(s)") || strings.Contains(msg, testToken) {
				t.Errorf("error text: %s", msg)
			}
			for _, p := range ce.Problems {
				if strings.Contains(p, "hunter2") {
					t.Errorf("a problem echoes the token: %s", p)
				}
			}
		})
	}
}

// TestLoadConfigSecretFromEnvironment is the engine's path: the config and
// the list of secret keys arrive as JSON in PULUMI_CONFIG and
// PULUMI_CONFIG_SECRET_KEYS, which the SDK reads when the program starts.
func TestLoadConfigSecretFromEnvironment(t *testing.T) {
	root := projectDir(t)
	t.Setenv(pulumi.EnvConfig, `{"skykoi:allowedCidrs":"[\"203.0.113.7/32\"]","skykoi:gatewayToken":"`+testToken+`"}`)
	t.Setenv(pulumi.EnvConfigSecretKeys, `["skykoi:gatewayToken"]`)
	t.Setenv(pulumi.EnvPulumiRootDirectory, root)
	var args KoiArgs
	var loadErr error
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		args, loadErr = LoadConfig(ctx)
		return nil
	}, pulumi.WithMocks("skykoi", "dev", newFakeAWS()))
	if err != nil {
		t.Fatal(err)
	}
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	if args.TokenSha256 != configgen.HashSecret(testToken) || !reflect.DeepEqual(args.AllowedCidrs, []string{"203.0.113.7/32"}) {
		t.Errorf("LoadConfig = %+v", args)
	}
}
