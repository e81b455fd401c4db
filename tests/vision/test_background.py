"""The scene's slow background: what was there before is not foreground, what arrived is."""

import numpy as np
import pytest

from agent.vision.background import Background, BackgroundSettings

CONE = np.array([50.0, 50.0, 60.0, 70.0])
ARRIVAL = np.array([150.0, 50.0, 166.0, 90.0])


def scene(arrived: bool, rng: np.random.Generator) -> np.ndarray:
    """A grey 320x240 street with sensor noise, a cone, and maybe someone new."""
    image = np.full((240, 320, 3), 120, dtype=np.int16)
    image += rng.integers(-6, 7, size=image.shape, dtype=np.int16)
    image[50:70, 50:60] = (20, 120, 240)
    if arrived:
        image[50:90, 150:166] = 40
    return np.clip(image, 0, 255).astype(np.uint8)


def shares_over(seconds: float, fps: float, arrive_s: float) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    background = Background(BackgroundSettings(width=160, time_constant_s=10.0))
    boxes = np.stack([CONE, ARRIVAL])
    return [background.update(scene(k / fps >= arrive_s, rng), k / fps, boxes)
            for k in range(int(seconds * fps))]


def test_a_static_thing_is_background_and_an_arrival_is_foreground() -> None:
    shares = shares_over(20.0, 10.0, arrive_s=5.0)
    assert all(s[0] == 0.0 for s in shares)  # the cone, and the noise, never
    assert all(s[1] < 0.01 for s in shares[:50])
    assert all(s[1] > 0.95 for s in shares[50:60])  # just arrived


@pytest.mark.parametrize("fps", [10.0, 10.0 / 3])
def test_someone_standing_still_fades_into_it_after_tens_of_seconds(fps: float) -> None:
    """The time constant is in seconds, not frames: a Pi analysing every 3rd frame sees
    the same fade as a box analysing all of them."""
    shares = shares_over(60.0, fps, arrive_s=1.0)
    at = {round(k / fps): s[1] for k, s in enumerate(shares)}
    assert at[6] > 0.95  # 5 s in: grey 40 vs 120 has moved a third of the way
    assert at[59] < 0.05  # 58 s in: part of the scene


def test_nothing_is_foreground_when_the_whole_view_changed() -> None:
    """A camera on a moving vehicle, or knocked, or the sun coming out: the average is no
    picture of the scene, so it proves nothing."""
    rng = np.random.default_rng(3)
    background = Background(BackgroundSettings(width=160))
    boxes = np.stack([ARRIVAL])
    background.update(scene(False, rng), 0.0, boxes)
    brighter = np.clip(scene(True, rng).astype(np.int16) + 60, 0, 255).astype(np.uint8)
    assert background.update(brighter, 0.1, boxes)[0] == 0.0


def test_a_walker_over_a_cone_makes_only_the_walker_stand_out() -> None:
    """Foreground pixels belong to the most confident box over them: the cone's own box
    (scored lower) does not stand out because someone walks across it."""
    rng = np.random.default_rng(4)
    background = Background(BackgroundSettings(width=160))
    walker = np.array([45.0, 30.0, 65.0, 72.0])
    boxes = np.stack([walker, CONE])  # most confident first
    background.update(scene(False, rng), 0.0, boxes)
    frame = scene(False, rng)
    frame[30:72, 45:65] = 40
    walker_share, cone_share = background.update(frame, 0.1, boxes)
    assert walker_share > 0.9 and cone_share == 0.0
