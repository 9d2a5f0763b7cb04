#!/usr/bin/env bash
# Builds ajar's Debian package: the binary (unless --no-build), then its man pages and shell
# completion scripts written by that binary (`ajar man`, `ajar completions`), then the .deb with
# cargo-deb from [package.metadata.deb] in crates/ajar/Cargo.toml. Other arguments go to
# `cargo deb` (e.g. --deb-version, -o DIR). AJAR_DEB_PROFILE picks the Cargo profile
# (default release; `dev` packages the debug build). Prints the .deb's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${AJAR_DEB_PROFILE:-release}
case "$profile" in
  dev | debug) profile=dev dir=debug ;;
  *) dir=$profile ;;
esac
build=1
for arg in "$@"; do
  [ "$arg" = --no-build ] && build=0
done
command -v cargo-deb >/dev/null 2>&1 || {
  echo "packaging/deb.sh: cargo-deb is missing: cargo install cargo-deb --locked" >&2
  exit 1
}
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target/$dir/ajar"
if [ "$build" = 1 ]; then
  cargo build --locked -p ajar --profile "$profile"
fi
[ -x "$bin" ] || { echo "packaging/deb.sh: no binary at $bin; build it first" >&2; exit 1; }

out="$target/$dir/ajar-packaging"
rm -rf "$out"
mkdir -p "$out/completions"
"$bin" man --dir "$out/man" >/dev/null 2>&1
gzip -9n "$out"/man/*.1
"$bin" completions bash >"$out/completions/ajar"
"$bin" completions zsh >"$out/completions/_ajar"
"$bin" completions fish >"$out/completions/ajar.fish"

args=("$@")
[ "$build" = 1 ] && args+=(--no-build)
cargo deb -p ajar --profile "$profile" --strip --no-dbgsym "${args[@]}"
