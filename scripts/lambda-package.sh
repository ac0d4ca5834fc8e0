#!/usr/bin/env bash
# Build the AWS Lambda deployment zip (provided.al2023): `bootstrap` at the root — the harken
# binary, which runs as a Lambda custom runtime under that name — and optionally a model
# package under model/ (then set HARKEN_MODEL_URI=/var/task/model). Reports zipped and unzipped
# sizes against Lambda's limits (50 MB zip for direct upload, 250 MB unzipped incl. layers).
#
#   scripts/lambda-package.sh [--arch x86_64|arm64] [--bundle MODEL_DIR] [-o OUT_DIR]
#
# Tools: cargo-lambda and zig from PyPI into a venv under the Harken cache (idempotent); the
# Rust target is added with rustup when missing. glibc symbols are pinned by cargo-lambda's zig
# linker, so the binary runs on Amazon Linux 2023. The build uses the `dist` profile (thin LTO,
# stripped) in its own target dir ($HARKEN_LAMBDA_TARGET_DIR, default under the cache).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
arch=x86_64 bundle= out="$root/target/lambda-dist"
while [[ $# -gt 0 ]]; do
  case $1 in
    --arch) arch=$2; shift 2 ;;
    --bundle) bundle=$2; shift 2 ;;
    -o|--out) out=$2; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "lambda-package: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $arch in
  x86_64) triple=x86_64-unknown-linux-gnu; flag=--x86-64 ;;
  arm64|aarch64) arch=arm64; triple=aarch64-unknown-linux-gnu; flag=--arm64 ;;
  *) echo "lambda-package: --arch must be x86_64 or arm64" >&2; exit 2 ;;
esac

venv="$cache/lambda-venv"
if ! [[ -x "$venv/bin/cargo-lambda" ]] || ! "$venv/bin/python" -c "import ziglang" 2>/dev/null; then
  echo "installing cargo-lambda and zig into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda>=1.8" "ziglang>=0.13"
fi
rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"

export CARGO_TARGET_DIR=${HARKEN_LAMBDA_TARGET_DIR:-$cache/lambda-target}
(cd "$root" && PATH="$venv/bin:$PATH" cargo lambda build --profile dist --bin harken "$flag" --locked >&2)
bin="$CARGO_TARGET_DIR/lambda/harken/bootstrap"
[[ -x $bin ]] || { echo "lambda-package: no bootstrap at $bin" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$bin" "$stage/bootstrap"
name="harken-lambda-$arch"
if [[ -n $bundle ]]; then
  [[ -d $bundle ]] || { echo "lambda-package: --bundle $bundle is not a directory" >&2; exit 2; }
  if [[ -f $bundle/MLmodel ]]; then
    cp -r "$bundle" "$stage/model"
  else
    # A raw Whisper directory: pack it so the function verifies what it loads.
    host=${CARGO_HOST_HARKEN:-$root/target/release/harken}
    [[ -x $host ]] || host=$(command -v harken || true)
    [[ -x $host ]] || { echo "lambda-package: need a host harken binary to pack $bundle (cargo build --release)" >&2; exit 2; }
    "$host" model pack "$bundle" -o "$stage/model" --name "$(basename "$bundle")" >&2
  fi
  name="$name-bundled"
fi
mkdir -p "$out"
zipfile="$out/$name.zip"
rm -f "$zipfile"
(cd "$stage" && zip -q -X -r -9 "$zipfile" .)

python3 - "$zipfile" "$arch" "$bundle" <<'PY'
import json, os, sys, zipfile
path, arch, bundle = sys.argv[1], sys.argv[2], sys.argv[3]
z = zipfile.ZipFile(path)
unzipped = sum(i.file_size for i in z.infolist())
zipped = os.path.getsize(path)
mb = 1024 * 1024
def verdict(n, limit): return "ok" if n <= limit * mb else f"OVER by {(n - limit * mb) / mb:.1f} MiB"
print(f"{path}")
print(f"  zipped   {zipped / mb:8.1f} MiB  (direct upload limit 50 MiB: {verdict(zipped, 50)}; larger zips go through S3)")
print(f"  unzipped {unzipped / mb:8.1f} MiB  (limit 250 MiB incl. layers: {verdict(unzipped, 250)})")
if bundle:
    print("  set HARKEN_MODEL_URI=/var/task/model")
print(json.dumps({"zip": path, "arch": arch, "bundled": bool(bundle), "zipped_bytes": zipped,
                  "unzipped_bytes": unzipped, "fits_direct_upload": zipped <= 50 * mb,
                  "fits_unzipped_limit": unzipped <= 250 * mb}))
PY
