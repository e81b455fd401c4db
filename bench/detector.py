"""Benchmark of the person detector on vtest.avi (run on demand).

    python bench/detector.py [--threads 2] [--repeat 3] [--video PATH]

For the float and the int8 default model: preprocessing, inference and
postprocessing time per frame (p50 / p95 over the 42 ground-truth frames,
each run ``--repeat`` times after a warm-up), and the mean absolute count
error (MAE) and mean signed error (bias) against the hand counts in
tests/vision/ground_truth, without and with that camera's ignore regions.
Then OpenCV's HOG people detector on the same frames, where the installed
OpenCV still has ``cv2.HOGDescriptor`` (OpenCV 4.x; OpenCV 5 dropped it).
Needs the video from scripts/fetch-test-media. No assertions: the tests
hold the limits.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from agent.vision.detector import Detector, default_model_path
from agent.vision.nms import nms

REPO = Path(__file__).resolve().parent.parent
GROUND_TRUTH = REPO / "tests" / "vision" / "ground_truth"
INT8_MODEL = REPO / "models" / "nanodet-g-416.int8.onnx"


@dataclass(frozen=True)
class Scene:
    frames: dict
    counts: dict
    ignore: list


def media_path():
    base = os.environ.get("LOKAALMETEN_MEDIA_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "lokaalmeten" / "media"
    return root / "vtest.avi"


def ground_truth():
    with (GROUND_TRUTH / "vtest_counts.csv").open(newline="") as f:
        counts = {int(r["frame"]): int(r["count"]) for r in csv.DictReader(f)}
    polygons = json.loads((GROUND_TRUTH / "vtest_ignore.json").read_text())["polygons"]
    return counts, [[tuple(p) for p in poly["points"]] for poly in polygons]


def read_frames(path, wanted):
    capture = cv2.VideoCapture(str(path))
    frames, index = {}, 0
    while capture.grab():
        if index in wanted:
            frames[index] = capture.retrieve()[1]
        index += 1
    capture.release()
    return frames


def percentiles(samples_s):
    ms = np.asarray(samples_s) * 1000
    return f"{np.percentile(ms, 50):6.1f} / {np.percentile(ms, 95):6.1f}"


def errors_line(errors):
    e = np.asarray(errors)
    return f"MAE {np.abs(e).mean():.2f}, bias {e.mean():+.2f}"


def bench_model(name, path, scene, threads, repeat):
    frames, counts, ignore = scene.frames, scene.counts, scene.ignore
    detector = Detector(path, intra_op_threads=threads)
    masked = Detector(path, intra_op_threads=threads, roi_ignore=ignore)
    pre, inf, post = [], [], []
    first = next(iter(frames.values()))
    for _ in range(3):
        detector.detect(first)
    errors, errors_masked = [], []
    for _ in range(repeat):
        for frame_no, frame in frames.items():
            t0 = time.perf_counter()
            tensor, placement = detector.preprocess(frame)
            t1 = time.perf_counter()
            outputs = detector.infer(tensor)
            t2 = time.perf_counter()
            found = detector.postprocess(outputs, placement)
            t3 = time.perf_counter()
            pre.append(t1 - t0)
            inf.append(t2 - t1)
            post.append(t3 - t2)
            if len(errors) < len(frames):
                errors.append(len(found) - counts[frame_no])
                errors_masked.append(len(masked.postprocess(outputs, placement)) - counts[frame_no])
    size = os.path.getsize(path) / 1e6
    print(f"\n{name}: {Path(path).name} ({size:.1f} MB), input {detector.input_size}")
    print(f"  preprocess  ms p50 / p95 {percentiles(pre)}")
    print(f"  inference   ms p50 / p95 {percentiles(inf)}")
    print(f"  postprocess ms p50 / p95 {percentiles(post)}")
    print(f"  count error, {len(frames)} frames: {errors_line(errors)}; "
          f"with ignore regions: {errors_line(errors_masked)}")


def bench_hog(scene, repeat):
    frames, counts, ignore = scene.frames, scene.counts, scene.ignore
    if not hasattr(cv2, "HOGDescriptor"):
        print(f"\nOpenCV HOG people detector: skipped: OpenCV {cv2.__version__} has no HOG "
              "(cv2.HOGDescriptor was removed in OpenCV 5; run this with opencv-python-headless<5)")
        return
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    for upscale in (1.0, 1.5):
        times, errors, errors_masked = [], [], []
        for r in range(repeat):
            for frame_no, frame in frames.items():
                t0 = time.perf_counter()
                image = frame if upscale == 1.0 else cv2.resize(frame, None, fx=upscale,
                                                                fy=upscale)
                rects, weights = hog.detectMultiScale(image, winStride=(8, 8),
                                                      padding=(8, 8), scale=1.05)
                times.append(time.perf_counter() - t0)
                if r:
                    continue
                boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in rects],
                                 float).reshape(-1, 4) / upscale
                scores = np.asarray(weights, float).reshape(-1)
                keep = nms(boxes, scores, 0.5)
                errors.append(len(keep) - counts[frame_no])
                feet = [((b[0] + b[2]) / 2, b[3]) for b in boxes[keep]]
                inside = sum(any(_inside(f, p) for p in ignore) for f in feet)
                errors_masked.append(len(keep) - inside - counts[frame_no])
        print(f"\nOpenCV {cv2.__version__} HOG people detector, frame scaled x{upscale:g} "
              "(winStride 8, scale 1.05, then NMS 0.5)")
        print(f"  detect      ms p50 / p95 {percentiles(times)}")
        print(f"  count error, {len(frames)} frames: {errors_line(errors)}; "
              f"with ignore regions: {errors_line(errors_masked)}")


def _inside(point, polygon):
    return cv2.pointPolygonTest(np.asarray(polygon, np.float32), point, False) > 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the frames")
    parser.add_argument("--video", type=Path, default=media_path())
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"{args.video} missing: run scripts/fetch-test-media")
    counts, ignore = ground_truth()
    frames = read_frames(args.video, counts)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"onnxruntime {ort.__version__}, OpenCV {cv2.__version__}, "
          f"{args.threads} intra-op thread(s); {len(frames)} frames x {args.repeat}")
    scene = Scene(frames, counts, ignore)
    bench_model("float32", default_model_path(), scene, args.threads, args.repeat)
    if INT8_MODEL.is_file():
        bench_model("int8 (static QDQ)", INT8_MODEL, scene, args.threads, args.repeat)
    else:
        print(f"\nint8: skipped: {INT8_MODEL} missing (scripts/build-default-model --int8)")
    bench_hog(scene, args.repeat)


if __name__ == "__main__":
    main()
