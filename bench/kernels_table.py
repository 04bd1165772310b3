"""The kernels' comparison table (BENCHMARKS.md, issue 15) from `bash bench/device.sh --json` output:

  bash bench/device.sh --json > rows.jsonl && python3 bench/kernels_table.py rows.jsonl

Each slimnet row is set beside its peer on the same core: CMSIS-NN's dense int8 harness for the LeNets, TFLM with
CMSIS-NN for the imported `.tflite` fixtures. The ratio is slimnet's instructions over the peer's; the targets are
the issue's (dense: ≤ 1, compressed: ≤ 1/4 of CMSIS-NN's dense instructions).
"""

import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
peers = {}
for r in rows:
    if r["stack"] != "slimnet":
        peers[(r["model"].replace(".int8.tflite", ""), r["core"])] = r


def fmt(v):
    return "—" if v is None else f"{v:,}"


print("| model | encoding | core | slimnet instructions | slimnet cycles (est.) | peer | peer instructions "
      "| peer cycles (est.) | slimnet / peer | target | slimnet code + model B | peer code + model B "
      "| slimnet arena B | peer arena B | check |")
print("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
for r in rows:
    if r["stack"] != "slimnet":
        continue
    key = (r["model"].replace(".int8.tflite", ""), r["core"])
    p = peers.get(key)
    compressed = not r["encoding"].startswith("dense")
    ratio = r["instructions_per_inference"] / p["instructions_per_inference"] if p else None
    goal = 0.25 if compressed else 1.0
    target = "—"
    if ratio is not None and r["core"] != "cortex-m7":
        target = f"≤ {'1/4' if compressed else '1'} {'✔' if ratio <= goal else '✘'}"
    print(f"| {r['model']} | {r['encoding']} | {r['core']} "
          f"| {fmt(r['instructions_per_inference'])} | {fmt(r.get('cycles_estimate'))} "
          f"| {p['stack'] if p else '—'} | {fmt(p['instructions_per_inference']) if p else '—'} "
          f"| {fmt(p.get('cycles_estimate')) if p else '—'} | {f'{ratio:.3f}' if ratio else '—'} | {target} "
          f"| {fmt(r['flash_bytes'])} | {fmt(p['flash_bytes']) if p else '—'} | {fmt(r['arena_bytes'])} "
          f"| {fmt(p['arena_bytes']) if p else '—'} | {r['correct']} |")
