"""How right the counts are, against hand labels, at full rate and when frames are skipped.

    python bench/accuracy.py [--settings float32,int8] [--strides 1,2,3,5] [--json]

For each setting (a model and its camera settings) and each analysis stride N
(every Nth frame of the 10 fps video analysed, as a Raspberry Pi that keeps
up with only 10/N frames per second would), the real pipeline
(``build_pipeline``: motion gate, detector, tracker, line and zone counters)
counts all of vtest.avi, and the bench prints:

* per-frame occupancy error against the 200 hand-counted frames of
  ``tests/vision/ground_truth/vtest_counts_{a,b}.csv`` (every person, hidden
  ones included): MAE and bias, for the tuning half ``a`` and the hold-out
  half ``b``. Between analysed frames the counter's figure is the last
  analysed frame's, as it would be reported;
* line counts against every hand-labelled crossing of the lines whose labels
  exist (``vtest_crossings_<line>.csv``; the older ``path`` labels cover
  frames 0-629): counted/true per direction, and accuracy = 1 − Σ|error| / Σtrue;
* end-to-end frames per second at stride 1 (decoding included) and GFLOP per
  analysed frame, from the model's graph (multiply-accumulates of its
  convolutions and matrix products × 2).

Labels are never used to tune inside this script; it only measures. Needs the
video from scripts/fetch-test-media.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.config.camera import CameraConfig
from agent.vision.counting import Direction
from agent.vision.pipeline import build_pipeline
from agent.vision.source import read_video

REPO = Path(__file__).resolve().parent.parent
TRUTH = REPO / "tests" / "vision" / "ground_truth"
MODELS = {"float32": REPO / "models" / "nanodet-g-416.onnx",
          "int8": REPO / "models" / "nanodet-g-416.int8.onnx"}
FPS = 10.0
LINES = {"mid": (384, 576, 384, 0), "square": (0, 300, 768, 300), "path": (230, 340, 230, 170)}
"""Directed lines: mid (in = walking right), square (in = walking down), path (older set)."""
PATH_LABELLED_UNTIL = 629


def media_path() -> Path:
    base = os.environ.get("LOKAALMETEN_MEDIA_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "lokaalmeten" / "media"
    return root / "vtest.avi"


def hand_counts() -> dict[str, dict[int, int]]:
    out = {}
    for half in ("a", "b"):
        with (TRUTH / f"vtest_counts_{half}.csv").open(newline="") as f:
            out[half] = {int(r["frame"]): int(r["count"]) for r in csv.DictReader(f)}
    return out


def hand_crossings() -> dict[str, list[tuple[int, str]]]:
    """(frame, direction) per labelled line."""
    out: dict[str, list[tuple[int, str]]] = {}
    for name in LINES:
        path = TRUTH / f"vtest_crossings_{name}.csv"
        if path.exists():
            with path.open(newline="") as f:
                out[name] = [(int(r["frame"]), r["direction"]) for r in csv.DictReader(f)]
    old = json.loads((TRUTH / "vtest_line_crossings.json").read_text())
    out.setdefault("path", [(c["frame"], c["direction"]) for c in old["crossings"]])
    return out


@dataclass
class Run:
    occupancy: dict[int, int] = field(default_factory=dict)
    """Reported whole-frame occupancy at every frame (held between analysed frames)."""
    crossings: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    seconds: float = 0.0
    analysed: int = 0


def count_video(config: CameraConfig, video: Path, stride: int) -> Run:
    pipeline = build_pipeline(config, start_s=0.0)
    run = Run(crossings={name: [] for name in LINES})
    current = 0
    started = time.perf_counter()
    for frame in read_video(video, config.resize_width, FPS):
        if frame.index % stride == 0:
            result = pipeline.process(frame)
            run.analysed += 1
            current = result.counts.occupancy
            for crossing in result.counts.crossings:
                direction = "in" if crossing.direction is Direction.IN else "out"
                run.crossings[crossing.line].append((frame.index, direction))
        run.occupancy[frame.index] = current
    run.seconds = time.perf_counter() - started
    return run


def occupancy_error(run: Run, truth: dict[int, int]) -> tuple[float, float]:
    errors = np.array([run.occupancy[f] - n for f, n in truth.items()], dtype=float)
    return float(np.abs(errors).mean()), float(errors.mean())


def line_scores(run: Run, truth: dict[str, list[tuple[int, str]]]) -> dict[str, dict]:
    scores = {}
    for name, labelled in truth.items():
        counted = run.crossings[name]
        if name == "path":
            counted = [c for c in counted if c[0] <= PATH_LABELLED_UNTIL + 10]
        per = {d: (sum(x[1] == d for x in counted), sum(x[1] == d for x in labelled))
               for d in ("in", "out")}
        total = sum(t for _, t in per.values())
        error = sum(abs(c - t) for c, t in per.values())
        scores[name] = {"in": per["in"], "out": per["out"],
                        "accuracy": 1 - error / total if total else None}
    return scores


def gflop_per_frame(model: Path) -> float:
    """2 × multiply-accumulates of the convolutions and matrix products, from static shapes."""
    import onnx  # noqa: PLC0415 - the dev extra
    from onnx import shape_inference  # noqa: PLC0415

    graph = shape_inference.infer_shapes(onnx.load(str(model))).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*graph.value_info, *graph.input, *graph.output)}
    shapes |= {t.name: list(t.dims) for t in graph.initializer}
    macs = 0
    for node in graph.node:
        weight_index = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}.get(node.op_type)
        if weight_index is not None:
            weight, out = shapes.get(node.input[weight_index]), shapes.get(node.output[0])
            if weight and out and len(out) == 4:
                macs += int(np.prod(out[1:])) * int(np.prod(weight[1:]))
        elif node.op_type in ("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul"):
            a = shapes.get(node.input[0])
            out = shapes.get(node.output[0])
            if a and out:
                macs += int(np.prod(out)) * a[-1]
    return 2 * macs / 1e9


def settings(name: str) -> CameraConfig:
    return CameraConfig.model_validate({
        "source": str(media_path()), "model": str(MODELS[name]), "suppress_below": 0,
        "lines": [{"name": n, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
                  for n, (x1, y1, x2, y2) in LINES.items()]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default="float32,int8")
    parser.add_argument("--strides", default="1,2,3,5")
    parser.add_argument("--json", action="store_true", help="one JSON line per run")
    args = parser.parse_args()
    video = media_path()
    if not video.exists():
        print(f"{video} is missing: run scripts/fetch-test-media", file=sys.stderr)
        return 1
    counts, crossings = hand_counts(), hand_crossings()
    print(f"labels: {sum(map(len, counts.values()))} frames; crossings of "
          + ", ".join(f"{n} ({len(c)})" for n, c in crossings.items()), file=sys.stderr)
    header = f"{'setting':<10} {'stride':>6} {'MAE a':>6} {'bias a':>7} {'MAE b':>6} " \
        f"{'bias b':>7} " + " ".join(f"{n + ' in/out (acc)':>24}" for n in crossings) + \
        f" {'fps':>6} {'GFLOP':>6}"
    if not args.json:
        print(header)
    for name in args.settings.split(","):
        config = settings(name)
        gflop = gflop_per_frame(MODELS[name])
        for stride in map(int, args.strides.split(",")):
            run = count_video(config, video, stride)
            errors = {half: occupancy_error(run, truth) for half, truth in counts.items()}
            lines = line_scores(run, crossings)
            fps = 795 / run.seconds
            if args.json:
                print(json.dumps({"setting": name, "stride": stride, "occupancy": errors,
                                  "lines": lines, "fps": fps, "gflop": gflop}))
                continue
            cells = " ".join(
                f"{s['in'][0]:>3}/{s['in'][1]:<3} {s['out'][0]:>3}/{s['out'][1]:<3} "
                f"({(s['accuracy'] or 0) * 100:4.0f} %)".rjust(24) for s in lines.values())
            print(f"{name:<10} {stride:>6} {errors['a'][0]:6.2f} {errors['a'][1]:+7.2f} "
                  f"{errors['b'][0]:6.2f} {errors['b'][1]:+7.2f} {cells} {fps:6.1f} "
                  f"{gflop:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
