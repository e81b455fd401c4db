"""How right the counts are, against hand labels, at full rate and when frames are skipped.

    python bench/accuracy.py [--scenes vtest,market-street] [--settings float32,int8]
                             [--strides 1,2,3,5,3/s] [--json]

A setting is a model (``float32``: the bundled default, ``int8``: its quantised
copy, ``centernet``: the MobileNetV3-CenterNet candidate that
scripts/build-candidate-models builds, see models/README.md) with the camera's
default configuration, optionally varied:
``int8:608x448`` runs the model at another input size (a copy with a dynamic
input shape is written to a temporary directory with the ``onnx`` package),
``int8:stretch`` stretches frames to the input instead of letterboxing them,
``int8@0.45`` sets ``score_threshold``. Each setting counts every frame of
each scene's video through the real pipeline (``build_pipeline``: motion
gate, detector, tracker, line and zone counters) at each analysis stride N:
every Nth frame is analysed, as by a box that keeps up with only 1/N of the
video's frame rate (a Raspberry Pi 4 manages about 3 frames/s with the bundled
model). A stride ``R/s`` analyses at most R frames per second of video instead,
chosen by the live counter's own rule (``agent.vision.pace.KeepRate``): ``3/s``
is a Pi 4 whatever the video's frame rate (every 3rd or 4th frame of vtest's 10 fps,
every 10th of market-street's 30). The scenes (``SCENES``;
tests/vision/ground_truth/README.md says how their labels were made):

* ``vtest``: OpenCV's vtest.avi, 10 fps, a square seen from a first floor;
  occupancy is the whole frame's;
* ``market-street``: one minute of a 1906 film shot from a moving cable car
  at eye level, 29.97 fps; occupancy is that of the zone ``near`` (the street
  in the picture's lower part), the only part of the picture where every
  person could be told apart by eye.

For each scene it prints:

* occupancy error against the hand-counted frames (every person, hidden
  ones included): MAE and bias for each label file (for vtest the tuning half
  ``a``, the hold-out half ``b``) and all of them. Between analysed frames
  the counter's figure is the last analysed frame's, as it would be reported;
* line counts against every hand-labelled crossing of each line whose labels
  exist (``<scene>_crossings_<line>.csv``, and vtest's older ``path`` set in
  ``vtest_line_crossings.json``): counted/true per direction, and
  accuracy = 1 − Σ|error| / Σtrue;
* analysed frames per second on this machine (decoding every frame included),
  GFLOP per analysed frame from the model's graph (multiply-accumulates of
  its convolutions and matrix products × 2, at the input size used), and what
  a Raspberry Pi 4 would analyse per second at that cost (it manages about 3
  frames/s of NanoDet-g at 416², ≈ 4.2 GFLOP each: 12.6 GFLOP/s).

Labels are never used inside this script except to score; settings are chosen
on vtest's half ``a`` and checked on its half ``b`` and on market-street. Needs
the videos (``scripts/fetch-test-media all``) and the dev extra (``onnx``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
from tqdm import tqdm

from agent.config.camera import CameraConfig
from agent.vision.counting import Direction
from agent.vision.detector import Detector
from agent.vision.pace import KeepRate
from agent.vision.pipeline import Pipeline, build_pipeline
from agent.vision.preprocess import Preprocessor
from agent.vision.source import read_video

REPO = Path(__file__).resolve().parent.parent
TRUTH = REPO / "tests" / "vision" / "ground_truth"


@dataclass(frozen=True)
class ModelFile:
    """An ONNX detector and the decoder of its family."""

    path: Path
    decoder: str = "nanodet"


def candidate_dir() -> Path:
    """Where scripts/build-candidate-models puts the detectors that are not bundled."""
    base = os.environ.get("LOKAALMETEN_MODELS_DIR")
    return Path(base) if base else Path.home() / ".cache" / "lokaalmeten" / "models"


MODELS = {"float32": ModelFile(REPO / "models" / "nanodet-g-416.onnx"),
          "int8": ModelFile(REPO / "models" / "nanodet-g-416.int8.onnx"),
          "centernet": ModelFile(candidate_dir() / "centernet-mbv3-512.onnx", "centernet")}
"""The bundled default, its int8 copy and the candidates of models/README.md
("Other detectors evaluated")."""


@dataclass(frozen=True)
class Scene:
    """A labelled video: how to read it and what its labels are about."""

    name: str
    video: str
    """File name in the media directory (scripts/fetch-test-media)."""
    fps: float
    frames: int
    lines: dict[str, tuple[int, int, int, int]]
    """Directed lines (x1, y1, x2, y2): in = from the line's left to its right."""
    counts: tuple[str, ...]
    """Label files of per-frame counts (``<scene>_counts<suffix>.csv``), by suffix."""
    zone: list[tuple[int, int]] | None = None
    """Where the hand counts count people (zone ``near``); None: the whole frame."""

    @property
    def prefix(self) -> str:
        return self.name.replace("-", "_")


SCENES = {
    "vtest": Scene(
        "vtest", "vtest.avi", 10.0, 795,
        {"mid": (384, 576, 384, 0), "square": (0, 300, 768, 300), "path": (230, 340, 230, 170)},
        ("_a", "_b")),
    "market-street": Scene(
        "market-street", "market-street.mp4", 30000 / 1001, 1799,
        {"track": (300, 360, 300, 220)}, ("",),
        [(50, 220), (590, 220), (590, 360), (50, 360)]),
}
"""vtest: mid (in = walking right), square (in = walking down), path (older set).
market-street: track, along the cable car's track ahead (in = walking right)."""
PI4_GFLOP_S = 3.0 * 4.2
"""What a Raspberry Pi 4 analyses per second: ~3 frames of NanoDet-g at 416² (4.2 GFLOP)."""


@dataclass(frozen=True)
class Setting:
    """A model and how the camera section varies from its defaults."""

    name: str
    model: str
    input_size: tuple[int, int] | None = None
    stretch: bool = False
    score: float | None = None

    @classmethod
    def parse(cls, text: str) -> Setting:
        """``model[:WxH][:stretch][@score]``."""
        head, _, score = text.partition("@")
        model, *options = head.split(":")
        if model not in MODELS:
            raise SystemExit(f"unknown model {model!r} (known: {', '.join(MODELS)})")
        size = None
        for option in options:
            if option != "stretch":
                width, height = option.split("x")
                size = (int(width), int(height))
        return cls(text, model, size, "stretch" in options, float(score) if score else None)


def media_path(scene: Scene) -> Path:
    base = os.environ.get("LOKAALMETEN_MEDIA_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "lokaalmeten" / "media"
    return root / scene.video


def hand_counts(scene: Scene) -> dict[str, dict[int, int]]:
    """Per label file (named by its suffix, or ``all`` for a single file): frame → count.

    Frames labelled uncertain have no count and are left out.
    """
    out = {}
    for suffix in scene.counts:
        with (TRUTH / f"{scene.prefix}_counts{suffix}.csv").open(newline="") as f:
            out[suffix.lstrip("_") or "all"] = {
                int(r["frame"]): int(r["count"]) for r in csv.DictReader(f) if r["count"].strip()}
    return out


def hand_crossings(scene: Scene) -> dict[str, list[tuple[int, str]]]:
    """(frame, direction) per labelled line."""
    out: dict[str, list[tuple[int, str]]] = {}
    for name in scene.lines:
        path = TRUTH / f"{scene.prefix}_crossings_{name}.csv"
        if path.exists():
            with path.open(newline="") as f:
                out[name] = [(int(r["frame"]), r["direction"].strip()) for r in csv.DictReader(f)]
    if scene.name == "vtest":
        old = json.loads((TRUTH / "vtest_line_crossings.json").read_text())
        out.setdefault("path", [(c["frame"], c["direction"]) for c in old["crossings"]])
    return out


def dynamic_copy(model: Path, folder: Path) -> Path:
    """The model with a dynamic input height and width (same weights), for other sizes."""
    import onnx  # noqa: PLC0415 - the dev extra

    graph = onnx.load(str(model))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    for dim, name in ((dims[2], "height"), (dims[3], "width")):
        dim.ClearField("dim_value")
        dim.dim_param = name
    for k, output in enumerate(graph.graph.output):  # all but batch and channels follow
        for j, dim in enumerate(output.type.tensor_type.shape.dim[1:-1]):
            dim.ClearField("dim_value")
            dim.dim_param = f"out{k}_{j}"
    del graph.graph.value_info[:]
    path = folder / f"{model.stem}.dynamic.onnx"
    onnx.save(graph, str(path))
    return path


@dataclass
class Run:
    occupancy: dict[int, int] = field(default_factory=dict)
    """Reported whole-frame occupancy at every frame (held between analysed frames)."""
    crossings: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    seconds: float = 0.0
    analysed: int = 0


def pipeline_for(scene: Scene, setting: Setting, model: Path) -> Pipeline:
    values: dict[str, object] = {
        "source": str(media_path(scene)), "model": str(model), "suppress_below": 0,
        "decoder": MODELS[setting.model].decoder,
        "lines": [{"name": n, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
                  for n, (x1, y1, x2, y2) in scene.lines.items()]}
    if scene.zone is not None:
        values["zones"] = [{"name": "near", "polygon": scene.zone}]
    if setting.input_size:
        values["input_size"] = list(setting.input_size)
    if setting.score is not None:
        values["score_threshold"] = setting.score
    pipeline = build_pipeline(CameraConfig.model_validate(values), start_s=0.0)
    if setting.stretch:
        detector = cast(Detector, pipeline.detector)
        spec = dataclasses.replace(detector.decoder.input_spec, keep_ratio=False)
        detector.preprocessor = Preprocessor(spec, detector.input_size)
    return pipeline


@dataclass(frozen=True)
class Stride:
    """Which frames a run analyses: every ``every``-th, or at most ``rate`` per second."""

    text: str
    every: int = 1
    rate: float | None = None
    phase: int = 0
    """Frames passed over before the first analysed one."""

    @classmethod
    def parse(cls, text: str) -> Stride:
        """``N`` (every Nth frame) or ``R/s`` (at most R frames per second of video)."""
        if text.endswith("/s"):
            return cls(text, rate=float(text.removesuffix("/s")))
        return cls(text, every=int(text))

    def phases(self, fps: float) -> list[Stride]:
        """The same stride started at each frame of its first period: a box does not pick
        which frames it analyses, so one phase is one draw of them."""
        count = self.every if self.rate is None else max(1, math.ceil(fps / self.rate))
        return [dataclasses.replace(self, phase=k) for k in range(count)]

    def chooser(self, fps: float) -> Callable[[int], bool]:
        """Whether frame ``index`` is analysed; call it for every frame, in order."""
        if self.rate is None:
            return lambda index: index % self.every == self.phase
        rate = KeepRate(self.rate, start_s=self.phase / fps)
        return lambda index: index >= self.phase and rate.keeps(index / fps)


def count_video(pipeline: Pipeline, scene: Scene, stride: Stride, label: str) -> Run:
    run = Run(crossings={name: [] for name in scene.lines})
    current = 0
    started = time.perf_counter()
    frames = read_video(media_path(scene), None, scene.fps)
    takes = stride.chooser(scene.fps)
    for frame in tqdm(frames, total=scene.frames, desc=label, leave=False, unit="frame",
                      disable=None):
        if takes(frame.index):
            result = pipeline.process(frame)
            run.analysed += 1
            counts = result.counts
            current = counts.zones[0].count if scene.zone is not None else counts.occupancy
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
        per = {d: (sum(x[1] == d for x in counted), sum(x[1] == d for x in labelled))
               for d in ("in", "out")}
        total = sum(t for _, t in per.values())
        error = sum(abs(c - t) for c, t in per.values())
        scores[name] = {"in": per["in"], "out": per["out"],
                        "accuracy": 1 - error / total if total else None}
    return scores


def gflop_per_frame(model: Path, input_size: tuple[int, int] | None = None) -> float:
    """2 × multiply-accumulates of the convolutions and matrix products, from static shapes."""
    import onnx  # noqa: PLC0415 - the dev extra
    from onnx import shape_inference  # noqa: PLC0415

    graph = onnx.load(str(model))
    if input_size is not None:
        dims = graph.graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = input_size[1], input_size[0]
    graph = shape_inference.infer_shapes(graph).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*graph.value_info, *graph.input, *graph.output)}
    shapes |= {t.name: list(t.dims) for t in graph.initializer}
    macs = 0
    for node in graph.node:
        weight_index = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}.get(node.op_type)
        if weight_index is not None:  # each output value: C_in/groups × kH × kW
            weight, out = shapes.get(node.input[weight_index]), shapes.get(node.output[0])
            if weight and out and len(out) == 4:
                macs += int(np.prod(out[1:])) * int(np.prod(weight[1:]))
        elif node.op_type == "ConvTranspose":  # each input value: C_out/groups × kH × kW
            x, weight = shapes.get(node.input[0]), shapes.get(node.input[1])
            if x and weight and len(x) == 4:
                macs += int(np.prod(x[1:])) * int(np.prod(weight[1:]))
        elif node.op_type in ("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul"):
            a = shapes.get(node.input[0])
            out = shapes.get(node.output[0])
            if a and out:
                macs += int(np.prod(out)) * a[-1]
    return 2 * macs / 1e9


def labels(scene: Scene) -> tuple[dict[str, dict[int, int]], dict[str, list[tuple[int, str]]]]:
    """The scene's hand counts (with ``all`` when there are several files) and crossings."""
    counts, crossings = hand_counts(scene), hand_crossings(scene)
    if len(counts) > 1:
        counts["all"] = {f: n for truth in list(counts.values()) for f, n in truth.items()}
    print(f"{scene.name}: {len(counts['all'])} labelled frames; crossings of "
          + (", ".join(f"{n} ({len(c)})" for n, c in crossings.items()) or "no line"),
          file=sys.stderr)
    return counts, crossings


def score_scene(scene: Scene, models: dict[Setting, tuple[Path, float]], strides: list[Stride],
                as_json: bool, *, every_phase: bool = False) -> None:
    """Count the scene's video once per setting and stride (or once per phase of it, and
    average); print one row (or JSON line) each."""
    counts, crossings = labels(scene)
    if not as_json:
        print(f"{'scene':<13} {'setting':<16} {'N':>4} {'runs':>4} "
              + " ".join(f"{'MAE/bias ' + h:>13}" for h in counts)
              + " " + " ".join(f"{n + ' in, out (acc)':>27}" for n in crossings)
              + f" {'fps':>6} {'GFLOP':>6} {'Pi 4 fps':>8}")
    for setting, (model, gflop) in models.items():
        for stride in strides:
            runs = [count_video(pipeline_for(scene, setting, model), scene, draw,
                                f"{scene.name} {setting.name} {stride.text} +{draw.phase}")
                    for draw in (stride.phases(scene.fps) if every_phase else [stride])]
            errors = {half: tuple(np.mean([occupancy_error(run, truth) for run in runs], axis=0))
                      for half, truth in counts.items()}
            lines = mean_line_scores([line_scores(run, crossings) for run in runs])
            fps = sum(run.analysed for run in runs) / sum(run.seconds for run in runs)
            if as_json:
                print(json.dumps({"scene": scene.name, "setting": setting.name,
                                  "stride": stride.text, "runs": len(runs),
                                  "occupancy": errors, "lines": lines, "fps": fps,
                                  "gflop": gflop, "pi4_fps": PI4_GFLOP_S / gflop}))
                continue
            occupancy = " ".join(f"{m:6.2f} {b:+6.2f}" for m, b in errors.values())
            cells = " ".join(
                f"{s['in'][0]:g}/{s['in'][1]}, {s['out'][0]:g}/{s['out'][1]} "
                f"({s['accuracy'] * 100:3.0f}{worst(s, len(runs))} %)".rjust(27)
                for s in lines.values())
            print(f"{scene.name:<13} {setting.name:<16} {stride.text:>4} {len(runs):>4} "
                  f"{occupancy} {cells} {fps:6.1f} {gflop:6.2f} {PI4_GFLOP_S / gflop:8.1f}",
                  flush=True)


def worst(score: dict, runs: int) -> str:
    """`` ≥N``: the worst run's line accuracy in %, when there were several runs."""
    return f" ≥{score['worst'] * 100:.0f}" if runs > 1 else ""


def mean_line_scores(draws: list[dict[str, dict]]) -> dict[str, dict]:
    """``line_scores`` of several runs in one: mean counts (to 0.1) and mean accuracy, with
    the worst run's accuracy beside it."""
    out = {}
    for name in draws[0]:
        per = [d[name] for d in draws]
        out[name] = {
            **{way: (round(float(np.mean([p[way][0] for p in per])), 1), per[0][way][1])
               for way in ("in", "out")},
            "accuracy": float(np.mean([p["accuracy"] or 0 for p in per])),
            "worst": min(p["accuracy"] or 0 for p in per)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", default=",".join(SCENES),
                        help=f"comma-separated, of {', '.join(SCENES)}")
    parser.add_argument("--settings", default="float32,int8",
                        help="comma-separated model[:WxH][:stretch][@score]")
    parser.add_argument("--strides", default="1,2,3,5",
                        help="comma-separated: N (every Nth frame) or R/s (R frames per second)")
    parser.add_argument("--every-phase", action="store_true",
                        help="run each stride from each frame of its first period and average "
                             "(which frames a box happens to analyse moves a figure by up to "
                             "0.07; this takes out that luck, at N runs of 1/N of the frames)")
    parser.add_argument("--json", action="store_true", help="one JSON line per row")
    args = parser.parse_args()
    scenes = []
    for name in args.scenes.split(","):
        if name not in SCENES:
            raise SystemExit(f"unknown scene {name!r} (known: {', '.join(SCENES)})")
        scenes.append(SCENES[name])
        if not media_path(SCENES[name]).exists():
            print(f"{media_path(SCENES[name])} is missing: run scripts/fetch-test-media all",
                  file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory(prefix="accuracy-") as tmp:
        models = {}
        for text in args.settings.split(","):
            setting = Setting.parse(text)
            model = MODELS[setting.model].path
            if not model.is_file():
                print(f"{model} is missing: run scripts/build-default-model or "
                      "scripts/build-candidate-models", file=sys.stderr)
                return 1
            if setting.input_size:
                model = dynamic_copy(model, Path(tmp))
            models[setting] = (model, gflop_per_frame(model, setting.input_size))
        for scene in scenes:
            score_scene(scene, models, [Stride.parse(n) for n in args.strides.split(",")],
                        args.json, every_phase=args.every_phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
