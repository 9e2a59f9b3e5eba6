#!/usr/bin/env bash
# Puts the default evaluation text in .cache/eval/ and prints its path on stdout: Mark
# Twain's "The Adventures of Tom Sawyer" (1876, public domain; Project Gutenberg's text
# without its header and footer), as the Debian package golang-github-pierrec-lz4-dev ships
# it for the lz4 tests (testdata/Mark.Twain-Tom.Sawyer.txt, 387,851 bytes). The two credit
# lines at its top are dropped. If apt cannot fetch the package, Lewis Carroll's "Alice's
# Adventures in Wonderland" (the Canterbury corpus alice29.txt, public domain) is taken from
# the PyPI sdist of brotli 1.1.0 instead, and a note on stderr says so. Never generated text.
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=.cache/eval
text=$out_dir/tom-sawyer.txt
if [ -s "$text" ]; then echo "$text"; exit 0; fi
alt=$out_dir/alice29.txt
if [ -s "$alt" ]; then echo "$alt"; exit 0; fi
mkdir -p "$out_dir" .cache/downloads
tmp=$(mktemp -d .cache/downloads/.eval.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
download_deb() { (cd "$tmp" && apt-get download -qq golang-github-pierrec-lz4-dev >/dev/null 2>&1); }
# A fresh machine may have no package lists yet: refresh them once (as root) and retry.
if ! download_deb && [ "$(id -u)" -eq 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
if { [ -n "$(ls "$tmp"/*.deb 2>/dev/null)" ] || download_deb; } &&
   dpkg-deb -x "$tmp"/golang-github-pierrec-lz4-dev_*.deb "$tmp/x"; then
  src=$(find "$tmp/x" -name Mark.Twain-Tom.Sawyer.txt | head -n 1)
  if [ -n "$src" ]; then
    # Lines 1-2 credit the Gutenberg producers; the book starts at line 3.
    tail -n +3 "$src" > "$tmp/text" && mv "$tmp/text" "$text"
    echo "$text"; exit 0
  fi
fi
echo "fetch_eval_text: the Debian package is unavailable; using alice29.txt from the brotli 1.1.0 sdist" >&2
python=${PYTHON:-python3}
"$python" -m pip download -q --no-deps --no-binary :all: --disable-pip-version-check Brotli==1.1.0 -d "$tmp" >&2
tar -xzf "$tmp"/[Bb]rotli-1.1.0.tar.gz -C "$tmp" --wildcards '*/tests/testdata/alice29.txt'
tr -d '\r' < "$tmp"/[Bb]rotli-1.1.0/tests/testdata/alice29.txt > "$tmp/text" && mv "$tmp/text" "$alt"
echo "$alt"
