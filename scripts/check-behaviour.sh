#!/usr/bin/env bash
# Behaviour check for refactors (issue 12): reruns four fixed experiments and compares
# their outputs byte for byte with the files saved in tests/behaviour/ before the change.
#
#   scripts/check-behaviour.sh           # compare (exit 1 on any difference)
#   scripts/check-behaviour.sh --save    # overwrite the saved files (only before a refactor)
#
# Compared: summary.json without wall_time_s, metrics.jsonl and model.safetensors of
# `ward run` (default), of examples/fed-heart-disease-dp.toml and of
# examples/scanner-shift-fedbn.toml with 3 rounds, and table.csv of `ward reproduce
# flamby-heart`. Uses the dev profile (the one the tests build); WARD_PROFILE=release
# switches to the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
save=0
[ "${1:-}" = "--save" ] && save=1
profile="${WARD_PROFILE:-dev}"
dir=debug; [ "$profile" = release ] && dir=release
cargo build --locked --profile "$profile" --bin ward
ward="${CARGO_TARGET_DIR:-target}/$dir/ward"
golden=tests/behaviour
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

strip_wall_time() {
  /usr/bin/env python3 - "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s.pop("wall_time_s", None)
json.dump(s, open(sys.argv[2], "w"), indent=2, sort_keys=True)
open(sys.argv[2], "a").write("\n")
PY
}

collect() { # name run_dir
  mkdir -p "$work/out/$1"
  strip_wall_time "$2/summary.json" "$work/out/$1/summary.json"
  cp "$2/metrics.jsonl" "$2/model.safetensors" "$work/out/$1/"
}

"$ward" run --out "$work/default" >/dev/null
collect default "$work/default"
"$ward" run examples/fed-heart-disease-dp.toml --out "$work/dp" >/dev/null
collect dp "$work/dp"
"$ward" run examples/scanner-shift-fedbn.toml --set federation.rounds=3 --out "$work/fedbn" >/dev/null
collect fedbn "$work/fedbn"
"$ward" reproduce flamby-heart --out "$work/flamby" >/dev/null
mkdir -p "$work/out/flamby-heart"
cp "$work/flamby/table.csv" "$work/out/flamby-heart/"

if [ $save = 1 ]; then
  rm -rf "$golden"
  mkdir -p "$golden"
  cp -r "$work/out/." "$golden/"
  echo "saved to $golden"
  exit 0
fi
if diff -r "$golden" "$work/out"; then
  echo "behaviour unchanged: all files byte-identical to $golden"
else
  echo "behaviour CHANGED: the files above differ from $golden" >&2
  exit 1
fi
