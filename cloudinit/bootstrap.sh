#!/bin/bash
# SkyKoi first boot: run once per instance by cloud-init (runcmd, after the
# deferred write_files). Rendered by github.com/skykoi/skykoi/cloudinit.
# "bootstrap announce" is what skykoi-console.service runs at every boot:
# it repeats the console announcements and reports cloud-init's verdict.
set -Eeuo pipefail
shopt -s inherit_errexit nullglob dotglob
# @SETTINGS@

# Every path hangs off SKYKOI_ROOT and every endpoint can be overridden, so
# tests run this script in a temp dir against fakes. cloud-init sets none of
# these, which leaves the production defaults.
: "${SKYKOI_ROOT:=}"
: "${SKYKOI_METADATA_URL:=$METADATA_URL}"
: "${SKYKOI_READYZ_URL:=http://127.0.0.1:$GATEWAY_PORT/readyz}"
: "${SKYKOI_CONSOLE:=/dev/ttyS0}"
: "${SKYKOI_RETRIES:=8}"
: "${SKYKOI_DEVICE_ATTEMPTS:=120}"
: "${SKYKOI_CLOUD_INIT_WAIT:=600}"

readonly ROOT=$SKYKOI_ROOT
readonly KOI_USER=ubuntu
readonly DATA=$ROOT/data
readonly DATA_WORKSPACE=$DATA/koi
readonly DATA_STATE=$DATA/skykoi
readonly DATA_TLS=$DATA/tls
readonly WORKSPACE=$ROOT/home/$KOI_USER/koi
readonly STATE=$ROOT/home/$KOI_USER/.skykoi
readonly SEED_DIR=$ROOT/var/lib/skykoi/seed
# S3 needs the payload hash in a header; a GET's payload is empty.
readonly EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

STEP=start
WORK=
DEVICE=
IMDS_TOKEN=
KEPT_CONFIG=
AWS_KEY_ID=
AWS_SECRET=
AWS_TOKEN=

log() { printf 'skykoi-bootstrap: %s\n' "$*" >&2; }

# console reaches the person through the EC2 console log: stdout is already
# there via cloud-init, and the serial port also gets it directly in case
# cloud-init's output goes elsewhere.
console() {
	printf '%s\n' "$*"
	if [[ -w $SKYKOI_CONSOLE ]]; then
		{ printf '%s\n' "$*" >>"$SKYKOI_CONSOLE"; } 2>/dev/null || true
	fi
}

fail() {
	console "SKYKOI-FAILED $STEP: $*"
	exit 1
}

# on_error names the step of any command that fails without its own message.
# In a subshell it only passes the status up, so the parent reports once.
on_error() {
	local rc=$1 line=$2 cmd=$3
	if [[ $BASHPID != "$$" ]]; then
		exit "$rc"
	fi
	fail "line $line: '$cmd' exited with status $rc"
}

# retry runs a command until it succeeds, with exponential backoff capped at
# 30 s. Commands it runs report failure by status, since set -e does not
# apply inside them.
retry() {
	local what=$1 attempt=1 delay=1
	shift
	until "$@"; do
		if ((attempt >= SKYKOI_RETRIES)); then
			log "$what: failed $attempt times, giving up"
			return 1
		fi
		log "$what: attempt $attempt failed, retrying in ${delay}s"
		sleep "$delay"
		attempt=$((attempt + 1))
		delay=$((delay * 2 > 30 ? 30 : delay * 2))
	done
}

ensure_packages() {
	local missing=()
	[[ -x $ROOT/usr/sbin/nginx ]] || missing+=(nginx)
	[[ -x $ROOT/usr/bin/curl ]] || missing+=(curl)
	[[ -x $ROOT/usr/bin/openssl ]] || missing+=(openssl)
	if ((${#missing[@]} == 0)); then
		log "nginx, curl and openssl are present; apt is not needed"
		return 0
	fi
	export DEBIAN_FRONTEND=noninteractive
	# A fresh Ubuntu instance may be running unattended-upgrades: wait for
	# the dpkg lock instead of failing on it.
	retry "apt-get update" apt-get -o DPkg::Lock::Timeout=300 -qq update ||
		fail "apt-get update failed"
	retry "apt-get install" apt-get -o DPkg::Lock::Timeout=300 -qq -y \
		--no-install-recommends install "${missing[@]}" ||
		fail "could not install ${missing[*]}"
}

# find_device prints the data volume's device. EBS on Nitro shows up as NVMe
# with the volume id (dash removed) in the serial; a virtio disk whose serial
# is the volume id (the VM test) shows its serial, which virtio cuts to 20
# characters.
find_device() {
	local link
	for link in \
		"$ROOT/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol${VOLUME_ID#vol-}" \
		"$ROOT/dev/disk/by-id/virtio-$VOLUME_ID" \
		"$ROOT/dev/disk/by-id/virtio-${VOLUME_ID:0:20}"; do
		if [[ -e $link ]]; then
			readlink -f -- "$link"
			return 0
		fi
	done
	return 1
}

# wait_for_device waits because the volume is attached after the instance
# starts, possibly after this script does.
wait_for_device() {
	local attempt
	for ((attempt = 1; attempt <= SKYKOI_DEVICE_ATTEMPTS; attempt++)); do
		if DEVICE=$(find_device); then
			log "data volume $VOLUME_ID is $DEVICE"
			return 0
		fi
		log "waiting for data volume $VOLUME_ID (attempt $attempt)"
		if command -v udevadm >/dev/null; then
			udevadm settle --timeout=5 || true
		fi
		sleep 5
	done
	return 1
}

# probe prints blkid's view of the device: nothing when it is blank.
probe() {
	local out rc=0
	out=$(blkid -p -o export -- "$DEVICE") || rc=$?
	case $rc in
	0) printf '%s\n' "$out" ;;
	2) ;;
	*) return 1 ;;
	esac
}

mount_data_volume() {
	local info fstype uuid
	wait_for_device || fail "volume $VOLUME_ID did not appear under /dev/disk/by-id"
	info=$(probe) || fail "blkid could not probe $DEVICE"
	fstype=$(sed -n 's/^TYPE=//p' <<<"$info")
	if [[ -z $fstype ]]; then
		if grep -q '^PTTYPE=' <<<"$info"; then
			fail "$DEVICE has a partition table but no filesystem; refusing to format it"
		fi
		# blkid also finds nothing on a device it cannot read: prove it reads
		# before formatting anything.
		dd if="$DEVICE" of=/dev/null bs=4096 count=1 status=none ||
			fail "cannot read $DEVICE"
		log "formatting blank $DEVICE as ext4"
		mkfs.ext4 -q -L skykoi-data "$DEVICE"
		info=$(probe) || fail "blkid could not probe $DEVICE after formatting"
		fstype=$(sed -n 's/^TYPE=//p' <<<"$info")
	else
		log "$DEVICE already has a $fstype filesystem; keeping it"
	fi
	uuid=$(sed -n 's/^UUID=//p' <<<"$info")
	[[ -n $uuid && -n $fstype ]] || fail "$DEVICE has no filesystem UUID"
	mkdir -p -- "$DATA"
	if ! mountpoint -q -- "$DATA"; then
		mount -t "$fstype" -- "$DEVICE" "$DATA"
	fi
	persist_mount "$uuid" "$fstype"
}

# persist_mount mounts the volume at every boot. nofail keeps a missing
# volume from stopping the boot; the gateway unit requires the mount instead.
persist_mount() {
	local fstab=$ROOT/etc/fstab
	if [[ -f $fstab ]] && grep -Eq '^[^#]*[[:space:]]/data[[:space:]]' "$fstab"; then
		grep -Fq "UUID=$1 " "$fstab" ||
			fail "/etc/fstab already mounts another filesystem at /data"
		return 0
	fi
	printf 'UUID=%s /data %s defaults,nofail,x-systemd.device-timeout=30s 0 2\n' "$1" "$2" >>"$fstab"
}

# link_dir replaces a home directory with a link into the data volume. What
# the directory held moves along unless the volume has it already; leftovers
# are set aside, never deleted.
link_dir() {
	local home=$1 data=$2 entry aside
	if [[ -L $home ]]; then
		rm -f -- "$home"
	elif [[ -d $home ]]; then
		for entry in "$home"/*; do
			if [[ ! -e $data/${entry##*/} && ! -L $data/${entry##*/} ]]; then
				mv -- "$entry" "$data/"
			fi
		done
		if ! rmdir -- "$home" 2>/dev/null; then
			aside=$home.before-data-volume
			mv -- "$home" "$aside"
			log "$home held files the data volume already has; they are in $aside"
		fi
	fi
	mkdir -p -- "${home%/*}"
	ln -s -- "$data" "$home"
	chown -h "$KOI_USER:$KOI_USER" "$home"
}

# adopt_config keeps a config already on the data volume: it carries the
# person's edits, which a new instance must not undo. The provisioned one
# stays beside it; merge_config takes the provisioner's keys from it once the
# binary that knows how is installed.
adopt_config() {
	local provisioned=$STATE/skykoi.json kept=$DATA_STATE/skykoi.json
	if [[ ! -L $STATE && -f $provisioned ]]; then
		if [[ -e $kept ]]; then
			log "keeping the config on the data volume; the provisioned one is $kept.provisioned"
			mv -f -- "$provisioned" "$kept.provisioned"
			KEPT_CONFIG=1
		else
			mv -- "$provisioned" "$kept"
		fi
	fi
	[[ -f $kept ]] || fail "no config: neither $provisioned nor $kept exists"
	chmod 0600 "$kept"
}

# seed_workspace copies the starter files without replacing any the person
# has already written.
seed_workspace() {
	local f
	for f in "$SEED_DIR"/*; do
		if [[ -f $f && ! -e $DATA_WORKSPACE/${f##*/} ]]; then
			cp -- "$f" "$DATA_WORKSPACE/"
			chmod 0644 "$DATA_WORKSPACE/${f##*/}"
		fi
	done
}

prepare_state() {
	mkdir -p -- "$DATA_WORKSPACE" "$DATA_STATE" "$DATA_STATE/update"
	chmod 0700 "$DATA_STATE" "$DATA_STATE/update"
	adopt_config
	link_dir "$STATE" "$DATA_STATE"
	link_dir "$WORKSPACE" "$DATA_WORKSPACE"
	seed_workspace
	# The user's id may differ from the instance that wrote the volume.
	chown -R "$KOI_USER:$KOI_USER" "$DATA_WORKSPACE" "$DATA_STATE"
}

imds_token_try() {
	IMDS_TOKEN=$(curl -fsS --connect-timeout 3 --max-time 10 -X PUT \
		-H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' \
		"$SKYKOI_METADATA_URL/latest/api/token") || return 1
	[[ -n $IMDS_TOKEN ]]
}

imds_token() {
	if [[ -n $IMDS_TOKEN ]]; then
		return 0
	fi
	retry "metadata token" imds_token_try ||
		fail "no metadata token from $SKYKOI_METADATA_URL (IMDSv2)"
}

# imds_try fetches one metadata path into a file. A 404 leaves the file
# empty: a missing key (no public IPv4) is an answer, not an outage.
imds_try() {
	local code
	code=$(curl -sS --connect-timeout 3 --max-time 10 -o "$2" -w '%{http_code}' \
		-H "X-aws-ec2-metadata-token: $IMDS_TOKEN" \
		"$SKYKOI_METADATA_URL/latest/meta-data/$1") || return 1
	case $code in
	200) return 0 ;;
	404) : >"$2" ;;
	*)
		log "metadata $1: HTTP $code"
		return 1
		;;
	esac
}

imds() {
	retry "metadata $1" imds_try "$1" "$WORK/imds" || return 1
	cat -- "$WORK/imds"
}

# new_certificate makes a self-signed P-256 certificate for the instance's
# public address. Clients pin its fingerprint, so it is kept for the life of
# the data volume rather than renewed.
new_certificate() {
	local crt=$1 key=$2 ip dns cnf=$WORK/openssl.cnf
	imds_token
	ip=$(imds public-ipv4) || fail "cannot read public-ipv4 from the instance metadata"
	if [[ -z $ip ]]; then
		ip=$(imds local-ipv4) || fail "cannot read local-ipv4 from the instance metadata"
	fi
	dns=$(imds public-hostname) || fail "cannot read public-hostname from the instance metadata"
	# They go into a config file: anything but an address or a name is refused.
	[[ $ip =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || fail "the instance metadata has no usable IPv4 address: '$ip'"
	[[ -z $dns || $dns =~ ^[A-Za-z0-9.-]+$ ]] || fail "the instance metadata has an unusable public-hostname: '$dns'"
	{
		printf '[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n'
		printf '[dn]\nCN = %s\n' "${dns:-$ip}"
		printf '[ext]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n'
		printf 'extendedKeyUsage = serverAuth\nsubjectAltName = @san\n[san]\nIP.1 = %s\n' "$ip"
		if [[ -n $dns ]]; then
			printf 'DNS.1 = %s\n' "$dns"
		fi
	} >"$cnf"
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-sha256 -days 3650 -config "$cnf" -keyout "$WORK/tls.key" -out "$WORK/tls.crt" ||
		fail "openssl could not make a certificate"
	mv -f -- "$WORK/tls.key" "$key"
	mv -f -- "$WORK/tls.crt" "$crt"
	log "made a TLS certificate for $ip${dns:+ and $dns}"
}

ensure_certificate() {
	local crt=$DATA_TLS/skykoi.crt key=$DATA_TLS/skykoi.key fp
	mkdir -p -- "$DATA_TLS"
	chmod 0700 "$DATA_TLS"
	if [[ -s $crt && -s $key ]]; then
		log "keeping the TLS certificate on the data volume"
	else
		new_certificate "$crt" "$key"
	fi
	# nginx reads copies on the root volume, so it starts at boot without
	# waiting for the data volume.
	mkdir -p -- "$ROOT$TLS_DIR"
	install -m 0644 -- "$crt" "$ROOT$TLS_DIR/skykoi.crt"
	install -m 0600 -- "$key" "$ROOT$TLS_DIR/skykoi.key"
	fp=$(openssl x509 -noout -fingerprint -sha256 -in "$crt")
	console "SKYKOI-TLS-SHA256 ${fp#*=}"
}

s3_credentials() {
	local role creds
	imds_token
	role=$(imds iam/security-credentials/) || fail "cannot read the instance's IAM role"
	role=${role%%$'\n'*}
	[[ -n $role ]] || fail "the instance has no IAM role; it needs one that can read s3://$S3_BUCKET/$S3_KEY"
	creds=$(imds "iam/security-credentials/$role") || fail "cannot read the credentials of role $role"
	AWS_KEY_ID=$(json_field AccessKeyId <<<"$creds")
	AWS_SECRET=$(json_field SecretAccessKey <<<"$creds")
	AWS_TOKEN=$(json_field Token <<<"$creds")
	[[ -n $AWS_KEY_ID && -n $AWS_SECRET && -n $AWS_TOKEN ]] ||
		fail "the credentials of role $role are incomplete"
}

json_field() {
	sed -n 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1
}

# download_s3 signs the GET with the role's credentials. They reach curl
# through a config on stdin, so they never show in a process listing.
download_s3() {
	local url=https://$S3_BUCKET.s3.$S3_REGION.amazonaws.com/$S3_KEY
	if [[ -n $S3_ENDPOINT ]]; then
		url=$S3_ENDPOINT/$S3_BUCKET/$S3_KEY
	fi
	printf 'user = "%s:%s"\nheader = "x-amz-security-token: %s"\n' \
		"$AWS_KEY_ID" "$AWS_SECRET" "$AWS_TOKEN" |
		curl -fsS --connect-timeout 5 --max-time 600 -K - \
			--aws-sigv4 "aws:amz:$S3_REGION:s3" \
			-H "x-amz-content-sha256: $EMPTY_SHA256" -o "$1" "$url"
}

download_url() {
	curl -fsSL --connect-timeout 5 --max-time 600 -o "$1" "$ARTIFACT_URL"
}

# install_binary installs the gateway only when its SHA-256 is the one this
# script was rendered with: the download's source is not trusted for that.
install_binary() {
	local tmp=$WORK/skykoi got
	if [[ -n $ARTIFACT_URL ]]; then
		retry "download $ARTIFACT_URL" download_url "$tmp" ||
			fail "could not download the gateway from $ARTIFACT_URL"
	else
		s3_credentials
		retry "download s3://$S3_BUCKET/$S3_KEY" download_s3 "$tmp" ||
			fail "could not download the gateway from s3://$S3_BUCKET/$S3_KEY"
	fi
	got=$(sha256sum -- "$tmp")
	got=${got%% *}
	if [[ $got != "$BINARY_SHA256" ]]; then
		fail "SHA-256 mismatch: the download is $got, expected $BINARY_SHA256; not installing it"
	fi
	mkdir -p -- "$ROOT${BINARY_PATH%/*}"
	install -m 0755 -- "$tmp" "$ROOT$BINARY_PATH.new"
	mv -f -- "$ROOT$BINARY_PATH.new" "$ROOT$BINARY_PATH"
}

# merge_config applies what `pulumi up` changed (token, models, idle stop,
# region, port) to a kept config: the IAM policy and the person's client
# already follow the new values. Every other key stays as the person left it,
# and the file is rewritten only when a value differs.
merge_config() {
	local kept=$DATA_STATE/skykoi.json
	if [[ $KEPT_CONFIG != 1 ]]; then
		return 0
	fi
	"$ROOT$BINARY_PATH" config merge --from "$kept.provisioned" "$kept" ||
		fail "the config on the data volume cannot take the provisioned values (problems above); fix $kept, then run: sudo $BINARY_PATH config merge --from $kept.provisioned $kept && sudo $0"
}

# enable_units enables the units that are not enabled yet. The nginx package
# has usually enabled its own, and enabling it again goes through Debian's
# SysV update-rc.d: seconds of Perl for nothing.
enable_units() {
	local u todo=()
	for u in "$@"; do
		if ! systemctl is-enabled --quiet "$u"; then
			todo+=("$u")
		fi
	done
	if ((${#todo[@]} > 0)); then
		# start_services has just reloaded systemd; enable would again.
		systemctl enable --no-reload "${todo[@]}"
	fi
}

start_services() {
	mkdir -p -- "$ROOT/etc/nginx/sites-enabled"
	ln -sfn /etc/nginx/sites-available/skykoi "$ROOT/etc/nginx/sites-enabled/skykoi"
	# The packaged default site also claims port 80.
	rm -f -- "$ROOT/etc/nginx/sites-enabled/default"
	nginx -t -q || fail "nginx rejected its configuration"
	systemctl daemon-reload
	enable_units nginx.service skykoi-gateway.service skykoi-console.service skykoi-update.path ${LOGS_UNIT:+"$LOGS_UNIT"}
	systemctl restart nginx.service || fail "nginx did not start; see journalctl -u nginx"
	systemctl restart skykoi-gateway.service ||
		fail "the gateway did not start; see journalctl -u skykoi-gateway"
	# In-place updates (update.run) wait for this; the gateway runs without.
	systemctl start skykoi-update.path ||
		log "could not start skykoi-update.path; update.run requests will wait for the next boot"
	# Journal shipping (cloudwatchLogs) is an extra: the Koi serves without.
	if [[ -n $LOGS_UNIT ]]; then
		systemctl restart "$LOGS_UNIT" ||
			log "could not start $LOGS_UNIT; see journalctl -u $LOGS_UNIT"
	fi
}

ready_try() {
	curl -fsS --max-time 3 -o /dev/null "$SKYKOI_READYZ_URL"
}

wait_ready() {
	retry "gateway readiness" ready_try ||
		fail "the gateway did not become ready at $SKYKOI_READYZ_URL"
}

run_step() {
	STEP=$1
	log "step $1"
	"$2"
}

# report_cloud_init puts cloud-init's status on the console once cloud-init
# has finished: a boot can go wrong in cloud-init's own modules (users,
# write_files) while this script succeeds, and the console is where that
# shows. It never fails the announcement, whose work is already done.
report_cloud_init() {
	local out rc=0 line
	if ! command -v cloud-init >/dev/null; then
		return 0
	fi
	out=$(timeout "$SKYKOI_CLOUD_INIT_WAIT" cloud-init status --wait --long 2>&1) || rc=$?
	while IFS= read -r line; do
		# --wait prints a dot per poll while it waits.
		if [[ -n ${line//./} ]]; then
			console "SKYKOI-CLOUD-INIT $line"
		fi
	done <<<"$out"
	console "SKYKOI-CLOUD-INIT exit $rc"
}

# announce repeats the first boot's announcements from what that boot left:
# the certificate nginx serves and the gateway's readiness.
announce() {
	local fp
	trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
	STEP=tls
	fp=$(openssl x509 -noout -fingerprint -sha256 -in "$ROOT$TLS_DIR/skykoi.crt") ||
		fail "cannot read the TLS certificate $TLS_DIR/skykoi.crt"
	console "SKYKOI-TLS-SHA256 ${fp#*=}"
	run_step ready wait_ready
	console "SKYKOI-READY"
	report_cloud_init
}

main() {
	umask 077
	WORK=$(mktemp -d)
	trap 'rm -rf -- "$WORK"' EXIT
	trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
	run_step packages ensure_packages
	run_step volume mount_data_volume
	run_step state prepare_state
	run_step tls ensure_certificate
	run_step binary install_binary
	run_step config merge_config
	run_step services start_services
	run_step ready wait_ready
	console "SKYKOI-READY"
	# cloud-init finishes only after this script, so its verdict comes from
	# the console unit, which waits for it. --no-block: this script is part
	# of cloud-init's last stage and must not wait on anything behind it.
	systemctl start --no-block skykoi-console.service ||
		log "could not start skykoi-console.service; cloud-init's status will not be on the console"
}

case ${1:-} in
'') main ;;
announce) announce ;;
*)
	log "usage: $0 [announce]"
	exit 2
	;;
esac
