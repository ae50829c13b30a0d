package configgen

import "strings"

// execSecurityDoc is docs/config.md's account of what each
// tools.exec.security mode does and does not protect, so nobody reads
// "allowlist" as a sandbox.
func execSecurityDoc() string {
	return `
## What tools.exec.security protects

The agent's tools run as the gateway's own user. The mode decides how much of that user's
power the model gets:

- ` + "`deny`" + ` (the default): no shell; ` + "`exec`" + ` and ` + "`process`" + ` are refused. ` + "`read`" + `, ` + "`write`" + ` and ` + "`edit`" + `
  are confined to ` + "`agents.defaults.workspace`" + `: absolute paths, ` + "`~/…`" + `, ` + "`..`" + ` and symlinks that lead
  out of it are refused. This is the one mode in which the model cannot reach the rest of the
  machine.
- ` + "`allowlist`" + `: ` + "`exec`" + ` runs only the programs in ` + "`tools.exec.allowlist`" + `, and the file tools are
  confined as with ` + "`deny`" + `. Redirections in the command (` + "`>`" + `, ` + "`>>`" + `, ` + "`>|`" + `, ` + "`<`" + `, ` + "`<>`" + `, ` + "`&>`" + `,
  ` + "`2>`" + `, ` + "`>& file`" + `) must name a plain path in the workspace (or ` + "`/dev/null`" + `). What a listed
  program does with its arguments is not checked and cannot be: ` + "`tee ~/.bashrc`" + `, ` + "`cp`" + `,
  ` + "`sed -i`" + ` or ` + "`curl -o`" + ` write wherever the gateway's user may. A listed program is as powerful as
  its arguments let it be, so listing ` + "`bash`" + `, ` + "`python3`" + `, ` + "`env`" + `, ` + "`find`" + `, ` + "`xargs`" + ` and the like
  is the same as ` + "`full`" + `.
- ` + "`full`" + `: the agent is the gateway's user, with that user's shell (and ` + "`sudo`" + `, where the user
  has it). The file tools accept any other path. **It is not a sandbox.**

In every mode, ` + "`full`" + ` included, the file tools refuse the gateway's config file and its state
directory (` + "`" + EnvStateDir + "`" + `, else the config file's directory: paired devices, sessions), however
the path reaches them (` + "`~`" + `, ` + "`..`" + `, symlinks), so a model cannot raise its own ` + "`tools.exec.security`" + `
or pair a device through them. With ` + "`allowlist`" + ` this extends to redirections; a listed program's
arguments, and any command with ` + "`full`" + `, can still read and change both.

Commands started by ` + "`exec`" + ` get the gateway's environment without the gateway's own secrets
(` + "`" + strings.Join(SecretEnvNames(), "`, `") + "`" + `). AWS credentials are passed on: the agent may use
the AWS CLI with the Koi's role, which the instance metadata service would give it anyway.

The checks resolve symlinks before the file is used, and read, edit and write act on the
directory they checked. Another process can still swap a directory for a symlink between the
check and bash opening a redirection's target; only a command the agent already runs can
do that, which in ` + "`deny`" + ` mode it cannot.
`
}
