#!/bin/sh
# Renders a validation report in headless Chromium and checks that the page and its SVG
# charts really render: a real browser is the judge of "well-formed enough", which a
# string test cannot be. Skips (exit 77, CTest's SKIP_RETURN_CODE) when no Chromium is
# installed; scripts/setup.sh installs Debian's `chromium`.
# usage: render_report.sh WRITE_SAMPLE_REPORT OUT_DIR
set -eu
writer=$1
out=$2

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  echo "SKIP: no chromium installed (scripts/setup.sh installs it)"
  exit 77
fi

rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
"$writer" "$out/report.html"

# A private profile folder: parallel runs and a user's own browser do not collide.
# --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
flags="--headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=$out/profile"
timeout 180 "$browser" $flags --screenshot="$out/report.png" --window-size=1200,1600 \
  "file://$out/report.html" >"$out/screenshot.log" 2>&1 || { cat "$out/screenshot.log"; exit 1; }
timeout 180 "$browser" $flags --dump-dom "file://$out/report.html" >"$out/dom.html" 2>"$out/dom.log" ||
  { cat "$out/dom.log"; exit 1; }

fail() { echo "FAIL: $*"; exit 1; }
[ -f "$out/report.png" ] || fail "no screenshot written"
# PNG signature: \211 P N G.
[ "$(head -c 4 "$out/report.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "screenshot is not a PNG"
size=$(wc -c <"$out/report.png")
# A blank 1200x1600 page compresses to a few kB; text, tables and bars take far more.
[ "$size" -gt 40000 ] || fail "screenshot is only $size bytes: the page looks blank"
# The browser's DOM after parsing: the three charts are SVG elements with their bars.
svgs=$(grep -o '<svg' "$out/dom.html" | wc -l)
[ "$svgs" -eq 3 ] || fail "the rendered DOM has $svgs <svg> elements, expected 3"
rects=$(grep -o '<rect' "$out/dom.html" | wc -l)
[ "$rects" -gt 40 ] || fail "the rendered DOM has only $rects <rect> elements"
echo "rendered: $out/report.png ($size bytes), $svgs charts, $rects rects"
