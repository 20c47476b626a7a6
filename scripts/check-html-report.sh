#!/usr/bin/env bash
# Renders `marshal report --html` in headless Chromium and checks the screenshot really shows
# the compliance chart and the cost-per-day-by-tier chart: the page loads with no network, the
# compliance chart's blue line and dots are drawn, and so are the cost chart's tier colours. Installs Debian's chromium when it is missing (as root, with apt-get).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
out_dir="${1:-$(mktemp -d)}"
mkdir -p "$out_dir"

find_chromium() {
  command -v chromium || command -v chromium-browser || command -v google-chrome || true
}
chromium="$(find_chromium)"
if [ -z "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "check-html-report: installing Debian's chromium (once)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    chromium="$(find_chromium)"
  fi
  [ -n "$chromium" ] || { echo "check-html-report: chromium not found; install it (Debian: apt-get install chromium)" >&2; exit 1; }
fi

(cd "$ROOT" && cargo build --release --locked --quiet -p marshal --bin marshal --example gen_ledger --example gen_transcripts)
"$target_dir/release/examples/gen_ledger" --records 20000 "$out_dir/ledger.jsonl" 2>/dev/null
# Transcripts with the ledger their turns would have written, for the cost chart.
rm -rf "$out_dir/claude"
"$target_dir/release/examples/gen_transcripts" --megabytes 30 --ledger "$out_dir/transcripts-ledger.jsonl" "$out_dir/claude" 2>/dev/null
TZ=UTC "$target_dir/release/marshal" report --ledger "$out_dir/ledger.jsonl" --ledger "$out_dir/transcripts-ledger.jsonl" \
  --claude-dir "$out_dir/claude" --html "$out_dir/report.html" --color never > "$out_dir/report.txt"

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# Flags keep Chromium off the network entirely (this machine has none, and the page needs none).
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1000,1400 \
  --screenshot="$out_dir/report.png" "file://$out_dir/report.html" >/dev/null 2>&1

python3 - "$out_dir/report.png" <<'PY'
import struct, sys, zlib

def pixels(path):
    """Decodes an 8-bit RGB or RGBA PNG (what Chromium writes) into rows of bytes."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), f"unexpected PNG format {depth}/{color}"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1: line[i] = (line[i] + a) & 255
            elif kind == 2: line[i] = (line[i] + b) & 255
            elif kind == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, channels, rows

width, height, channels, rows = pixels(sys.argv[1])
def count(rgb):
    return sum(1 for row in rows for i in range(0, len(row), channels)
               if all(abs(row[i + k] - rgb[k]) < 24 for k in range(3)))
blue, green, purple = count((0x25, 0x63, 0xEB)), count((0x16, 0xA3, 0x4A)), count((0x93, 0x33, 0xEA))
print(f"check-html-report: {width}x{height} screenshot, {blue} blue (compliance line, base tier), "
      f"{green} green (weak tier), {purple} purple (strong tier) pixels")
assert blue > 500, "the compliance chart is not visible in the screenshot"
assert green > 500 and purple > 500, "the cost-per-day-by-tier chart is not visible in the screenshot"
PY
grep -q 'id="compliance-chart"' "$out_dir/report.html"
grep -q 'id="cost-chart"' "$out_dir/report.html"
! grep -Eq '(src|href)="https?:' "$out_dir/report.html" || { echo "check-html-report: the page loads something from the network" >&2; exit 1; }
echo "check-html-report: ok ($out_dir/report.png)"
