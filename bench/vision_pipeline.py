"""Benchmark of the whole person-counting pipeline on vtest.avi (run on demand).

    python bench/vision_pipeline.py [--live-s 30] [--video PATH]

For the float and the int8 default model, at default camera settings
(motion gating on, score 0.4, 2 detector threads):

* offline, as ``lokaalmeten count`` runs it (every frame, as fast as it
  goes), in a fresh process: end-to-end frames per second (decode, motion
  gate, detector, tracker, counters), inference p50 / p95, CPU % of one core
  and peak RSS of that process, and the count errors: the crossings of the
  hand-counted line (frames 0-629, 2 in and 6 out) and the detector's raw
  count per frame (boxes scoring at least 0.4, before the tracker) against the
  42 hand-counted frames of vtest_counts.csv (MAE, bias); the counter's
  occupancy against the 200-frame evaluation set is bench/accuracy.py's;
* live, as the daemon runs it: the real counter process under a
  ``CounterSupervisor`` on the video replayed in real time (10 fps, looped)
  for ``--live-s`` seconds: its CPU % and RSS, frames dropped, fps and
  inference p50 / p95 from its interval records.

The detector alone, and OpenCV's HOG people detector for comparison, are in
``bench/detector.py``. Needs the video from scripts/fetch-test-media. No
assertions: the tests hold the limits.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

from agent_idle import cpu_seconds, status_mb

from agent.config.camera import CameraConfig
from agent.vision.pipeline import build_pipeline
from agent.vision.process import CounterSupervisor
from agent.vision.source import read_video

REPO = Path(__file__).resolve().parent.parent
GROUND_TRUTH = REPO / "tests" / "vision" / "ground_truth"
MODELS = {"float32": REPO / "models" / "nanodet-g-416.onnx",
          "int8": REPO / "models" / "nanodet-g-416.int8.onnx"}


def media_path():
    base = os.environ.get("LOKAALMETEN_MEDIA_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "lokaalmeten" / "media"
    return root / "vtest.avi"


def offline(model, video):
    """Runs in its own process: count the whole video, print one JSON line of figures."""
    line = json.loads((GROUND_TRUTH / "vtest_line_crossings.json").read_text())["line"]
    with (GROUND_TRUTH / "vtest_counts.csv").open(newline="") as f:
        hand = {int(r["frame"]): int(r["count"]) for r in csv.DictReader(f)}
    config = CameraConfig(source=str(video), model=model, interval_s=3600, lines=[line])
    pipeline = build_pipeline(config, start_s=0.0)
    crossings = {"in": 0, "out": 0}
    errors = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    frames = 0
    for frame in read_video(video):
        result = pipeline.process(frame)
        frames += 1
        if frame.index <= 629:
            for c in result.counts.crossings:
                crossings[c.direction.value] += 1
        if frame.index in hand:
            errors.append(result.detections - hand[frame.index])
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    report = pipeline.finish(frames / 10.0)[0]
    print(json.dumps({
        "frames": frames, "fps": frames / wall, "cpu_percent": 100 * cpu / wall,
        "inference_p50": report.inference_ms_p50, "inference_p95": report.inference_ms_p95,
        "inferred": report.frames_inferred,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "crossings": crossings, "mae": sum(abs(e) for e in errors) / len(errors),
        "bias": sum(errors) / len(errors)}))


def live(model, video, seconds):
    """The daemon's counter process on the video in real time; CPU and RSS from /proc."""
    config = CameraConfig(source=str(video), model=model, interval_s=5)
    supervisor = CounterSupervisor("bench", config, log_level="WARNING")
    supervisor.start()
    while not supervisor.alive:
        time.sleep(0.05)
    pid = supervisor._process.pid
    time.sleep(5.0)  # model loaded, first frames through
    supervisor.drain()
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    rss = []
    while time.monotonic() - wall0 < seconds:
        time.sleep(1.0)
        rss.append(status_mb(pid))
    cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
    got = supervisor.drain()
    supervisor.stop()
    values = {}
    for m in got:
        values.setdefault(m.quantity, []).append(m.value)
    return {"cpu_percent": 100 * cpu, "rss_mb": max(rss), "fps": _mean(values.get("fps")),
            "inference_p50": _mean(values.get("inference_ms_p50")),
            "inference_p95": _mean(values.get("inference_ms_p95")),
            "dropped": max(values.get("frames_dropped_total", [0]))}


def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=media_path())
    parser.add_argument("--live-s", type=float, default=30.0, help="seconds of live counting")
    parser.add_argument("--offline-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.offline_child:
        offline(args.offline_child, args.video)
        return
    if not args.video.is_file():
        raise SystemExit(f"{args.video} missing: run scripts/fetch-test-media")
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"onnxruntime {version('onnxruntime')}, OpenCV {version('opencv-python-headless')};"
          " vtest.avi 768x576, 795 frames at 10 fps; default settings (motion gating on, "
          "2 detector threads)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name, model in MODELS.items():
        out = subprocess.run([sys.executable, __file__, "--video", str(args.video),
                              "--offline-child", str(model)], capture_output=True, text=True,
                             env=env, check=True)
        r = json.loads(out.stdout.splitlines()[-1])
        print(f"\n{name} ({model.name})")
        print(f"  offline: {r['fps']:.1f} frames/s end to end ({r['frames']} frames, "
              f"{r['inferred']} analysed), inference p50/p95 {r['inference_p50']:.1f} / "
              f"{r['inference_p95']:.1f} ms, CPU {r['cpu_percent']:.0f} % of one core, "
              f"peak RSS {r['rss_peak_mb']:.0f} MB")
        c = r["crossings"]
        print(f"  line crossings, frames 0-629: in {c['in']} out {c['out']} (hand count: in 2 "
              f"out 6); raw detections per frame vs 42 hand counts: MAE {r['mae']:.2f}, "
              f"bias {r['bias']:+.2f}")
        lv = live(model, args.video, args.live_s)
        print(f"  live ({args.live_s:.0f} s at the video's 10 fps): {lv['fps']:.1f} frames/s, "
              f"inference p50/p95 {lv['inference_p50']:.1f} / {lv['inference_p95']:.1f} ms, "
              f"counter process CPU {lv['cpu_percent']:.0f} % of one core, RSS "
              f"{lv['rss_mb']:.0f} MB, {lv['dropped']:.0f} frames dropped")
    print("\nDetector alone and OpenCV's HOG people detector: python bench/detector.py")


if __name__ == "__main__":
    main()
