"""Benchmark of the tracker and counters on synthetic crowds (run on demand).

    python bench/tracker.py [--frames 300] [--people 5 20 50 100]

For each crowd size, N people walk at random constant velocities through a
1280×720 frame at 10 FPS (detector jitter of 2 px, 10 % missed boxes, 10 %
low-score boxes), and the script times ``Tracker.update`` alone, then tracker
plus a ``SceneCounter`` with two lines and two zones. It prints frames per
second and track-updates per second (confirmed tracks × frames / s), best of
three runs on one core. No assertions: the tests hold correctness.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from agent.vision.counting import CountingLine, SceneCounter, Zone
from agent.vision.tracker import Tracker

WIDTH, HEIGHT, FPS = 1280.0, 720.0, 10.0


def scene(people, frames, seed=0):
    """Per-frame detection arrays for ``people`` walkers that wrap around the frame."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 150], [WIDTH, HEIGHT], size=(people, 2))
    vel = rng.normal(0, 60.0, size=(people, 2))
    size = rng.uniform(60, 200, size=people)
    out = []
    for k in range(frames):
        p = (pos + vel * k / FPS) % [WIDTH, HEIGHT - 150] + [0, 150]
        h, w = size, 0.4 * size
        boxes = np.stack([p[:, 0] - w / 2, p[:, 1] - h, p[:, 0] + w / 2, p[:, 1]], axis=1)
        boxes += rng.normal(0, 2.0, boxes.shape)
        score = np.where(rng.random(people) < 0.1, 0.3, rng.uniform(0.6, 0.95, people))
        keep = rng.random(people) > 0.1
        out.append(np.column_stack([boxes, score])[keep])
    return out


def run(dets, with_counter):
    tracker = Tracker()
    counter = SceneCounter(
        [
            CountingLine("a", (100.0, 400.0), (1180.0, 400.0), band_px=20.0),
            CountingLine("b", (640.0, 150.0), (640.0, 720.0), band_px=20.0),
        ],
        [
            Zone("left", ((0, 150), (640, 150), (640, 720), (0, 720)), area_m2=200.0),
            Zone("kerb", ((0, 600), (1280, 600), (1280, 720), (0, 720)), area_m2=60.0),
        ],
    )
    tracks = 0
    start = time.perf_counter()
    for k, d in enumerate(dets):
        frame = tracker.update(d, k / FPS)
        tracks += len(frame.confirmed)
        if with_counter:
            counter.update(frame)
    return time.perf_counter() - start, tracks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--people", type=int, nargs="+", default=[5, 20, 50, 100])
    args = parser.parse_args()
    print(f"== {args.frames} frames at {FPS:g} FPS, best of 3, one core ==")
    print(f"{'people':>7}{'what':>20}{'frames/s':>12}{'tracks×frames/s':>18}{'ms/frame':>10}")
    for people in args.people:
        dets = scene(people, args.frames)
        for with_counter, what in ((False, "tracker"), (True, "tracker + counter")):
            best, tracks = min(run(dets, with_counter) for _ in range(3))
            print(
                f"{people:>7}{what:>20}{args.frames / best:>12.0f}"
                f"{tracks / best:>18.0f}{1000 * best / args.frames:>10.2f}"
            )


if __name__ == "__main__":
    main()
