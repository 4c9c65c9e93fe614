#!/usr/bin/env bash
# Regenerates runtime/src/seccomp/syscalls.rs from the SYS_* constants of the
# libc crate in ~/.cargo/registry (run after a libc upgrade).
set -euo pipefail
libc=$(ls -d ~/.cargo/registry/src/*/libc-0.2.* | sort -V | tail -n 1)
out=$(dirname "$0")/../runtime/src/seccomp/syscalls.rs
table() {
	echo "#[cfg(target_arch = \"$1\")]"
	echo 'pub(super) const SYSCALLS: &[(&str, libc::c_long)] = &['
	grep -h "pub const SYS_[a-z0-9_]*: c_long" "$2" | sed -E 's/.*SYS_([a-z0-9_]+):.*/    ("\1", libc::SYS_\1),/' | sort -u
	echo '];'
}
{
	echo '//! Syscall names to numbers for the native architecture, from the `libc`'
	echo '//! crate'"'"'s constants (the list below is every `SYS_*` that libc 0.2 defines'
	echo '//! for the arch; regenerate with `scripts/gen-syscall-table.sh` when libc grows).'
	echo
	table x86_64 "$libc/src/unix/linux_like/linux/gnu/b64/x86_64/not_x32.rs"
	echo
	table aarch64 "$libc/src/unix/linux_like/linux/gnu/b64/aarch64/mod.rs"
} >"$out"
