#!/bin/bash
# build-image.sh makes the Debian 12 base image the VM test boots (vmtest/),
# once per recipe, and prints the directory that holds it:
#
#   <dir>/root.img     ext4 root filesystem, used read-only as a qcow2 backing file
#   <dir>/vmlinuz      the image's own kernel, for qemu -kernel
#   <dir>/initrd.img   its initramfs, for qemu -initrd
#   <dir>/recipe       what the directory's name is the hash of
#
# The directory is $SKYKOI_VM_CACHE/<hash of the recipe>, so a changed
# package list gets a new image and a fresh machine builds its own. The
# build happens in a temporary directory beside it that is renamed into
# place only when complete: a killed build never leaves a half image where
# the test would find it.
set -Eeuo pipefail

# Everything the guest needs besides the minimal base, as the VM test's
# product code expects to find it on a Koi's image: cloud-init (with the
# virtual dependency debootstrap misses), nginx, curl, openssl, udev for the
# data volume's /dev/disk/by-id link, e2fsprogs to format it, sudo for the
# agent. dbus lets systemd-logind turn the ACPI power button into a clean
# shutdown, which is how the test stops an instance. locales: cloud-init
# sets the system locale (en_US.UTF-8) on every distro, as on a cloud image.
readonly SUITE=bookworm
readonly PACKAGES=linux-image-cloud-amd64,systemd-sysv,udev,dbus,cloud-init,python3-cffi-backend,nginx,openssl,curl,ca-certificates,sudo,ifupdown,isc-dhcp-client,iproute2,netbase,procps,e2fsprogs,locales
readonly LOCALE=en_US.UTF-8
readonly SIZE=1200M
# Bump when anything below changes the image without changing the lines above.
readonly RECIPE_VERSION=2

: "${SKYKOI_VM_CACHE:=/var/cache/skykoi-vm}"
: "${SKYKOI_VM_MIRROR:=http://deb.debian.org/debian}"

log() { printf 'build-image: %s\n' "$*" >&2; }

# remove_tree deletes a build directory. A debootstrap that was killed
# leaves proc and sys (in a container, bind mounts of /dev) mounted inside
# it: those are unmounted first, deepest first, and rm never leaves the
# build's own file system, so it cannot reach into the host's.
remove_tree() {
	local dir=$1 mnt
	[[ -e $dir ]] || return 0
	while read -r mnt; do
		umount -l -- "$mnt" || true
	done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
	if awk -v d="$dir/" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
		log "$dir still has file systems mounted in it; not removing it"
		return 1
	fi
	rm -rf --one-file-system -- "$dir"
}

recipe() {
	printf 'version %s\nsuite %s\npackages %s\nlocale %s\nsize %s\n' "$RECIPE_VERSION" "$SUITE" "$PACKAGES" "$LOCALE" "$SIZE"
}

main() {
	local key final tmp start stale
	key=$(recipe | sha256sum)
	key=${key:0:16}
	final=$SKYKOI_VM_CACHE/$key
	# The rename is the last step, so the directory existing means the image
	# is complete.
	if [[ -f $final/root.img ]]; then
		printf '%s\n' "$final"
		return 0
	fi
	if [[ $(id -u) != 0 ]]; then
		# debootstrap and mkfs -d of a root-owned tree need root.
		exec sudo --preserve-env=SKYKOI_VM_CACHE,SKYKOI_VM_MIRROR -- "$0" "$@"
	fi
	for tool in debootstrap mkfs.ext4 flock; do
		command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
			{ log "$tool is missing: run make deps"; return 1; }
	done
	export PATH=$PATH:/usr/sbin:/sbin

	mkdir -p -- "$SKYKOI_VM_CACHE/debs"
	# One build at a time; a second caller waits and then finds the image.
	exec 9>"$SKYKOI_VM_CACHE/.lock"
	flock 9
	if [[ -f $final/root.img ]]; then
		printf '%s\n' "$final"
		return 0
	fi
	# Under the lock, any build directory left over is from a killed build.
	for stale in "$SKYKOI_VM_CACHE"/.build-*; do
		remove_tree "$stale"
	done

	start=$SECONDS
	tmp=$(mktemp -d "$SKYKOI_VM_CACHE/.build-$key.XXXXXX")
	# shellcheck disable=SC2064 # tmp is fixed now; expand it now
	trap "remove_tree '$tmp'" EXIT
	log "building $final (debootstrap $SUITE from $SKYKOI_VM_MIRROR; about 2 minutes)"
	if ! debootstrap --variant=minbase --cache-dir="$SKYKOI_VM_CACHE/debs" --include="$PACKAGES" \
		"$SUITE" "$tmp/rootfs" "$SKYKOI_VM_MIRROR" >"$tmp/debootstrap.log" 2>&1; then
		tail -n 40 -- "$tmp/debootstrap.log" >&2
		[[ -f $tmp/rootfs/debootstrap/debootstrap.log ]] &&
			tail -n 40 -- "$tmp/rootfs/debootstrap/debootstrap.log" >&2
		log "debootstrap failed"
		return 1
	fi
	# The test attaches the root disk as the first virtio disk.
	printf '/dev/vda / ext4 defaults,discard 0 1\n' >"$tmp/rootfs/etc/fstab"
	# Empty, so every instance booted from the image gets its own id.
	: >"$tmp/rootfs/etc/machine-id"
	# Debian's locale-gen builds only what /etc/locale.gen enables, whatever
	# cloud-init asks for; a cloud image ships with its locale built.
	sed -i "s/^# *$LOCALE /$LOCALE /" "$tmp/rootfs/etc/locale.gen"
	grep -q "^$LOCALE " "$tmp/rootfs/etc/locale.gen" || { log "$LOCALE is not in locale.gen"; return 1; }
	chroot "$tmp/rootfs" locale-gen >&2
	# Set as the system locale too, so cloud-init finds it already applied
	# and does not rebuild every locale at first boot (8 s under TCG).
	chroot "$tmp/rootfs" update-locale "LANG=$LOCALE"
	rm -rf -- "$tmp/rootfs/var/lib/apt/lists"/* "$tmp/rootfs/var/cache/apt"/*.bin
	cp -- "$tmp/rootfs"/boot/vmlinuz-* "$tmp/vmlinuz"
	cp -- "$tmp/rootfs"/boot/initrd.img-* "$tmp/initrd.img"
	# stdout is for the directory alone; mkfs talks even with -q.
	mkfs.ext4 -q -F -L rootfs -d "$tmp/rootfs" "$tmp/root.img" "$SIZE" >&2
	remove_tree "$tmp/rootfs"
	rm -f -- "$tmp/debootstrap.log"
	recipe >"$tmp/recipe"
	chmod 0755 -- "$tmp"
	chmod 0644 -- "$tmp"/*
	mv -T -- "$tmp" "$final"
	trap - EXIT
	log "built $final in $((SECONDS - start)) s"
	printf '%s\n' "$final"
}

main "$@"
