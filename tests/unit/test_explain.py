"""The pieces of a SHAP explanation that need no trained model: the D-RISE box score over raw candidates, the peak,
the overlay, and the world's per-object masks the pointing game scores against."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from visionloop.core.config import PACKAGE_ROOT
from visionloop.explaining.explainer import (
    EigenCam,
    ExplainError,
    Explanation,
    box_scores,
    first_component,
    overlay_png,
    peak_of,
    render_overlay,
)
from visionloop.simulation.world import load_domains
from visionloop.simulation.world.scene import render_scene
from visionloop.simulation.world.yolo_export import scene_rng


def candidates(*rows: list[float]) -> np.ndarray:
    """(1, A, 4 + 2) raw candidates: xyxy box and two class scores per row."""
    return np.asarray([rows], dtype=np.float32)


def test_box_score_is_best_iou_times_class_score() -> None:
    box = (10.0, 10.0, 30.0, 30.0)
    raw = candidates(
        [10, 10, 30, 30, 0.6, 0.1],  # exact box, class 0 score 0.6 -> 0.6
        [10, 10, 30, 34, 0.9, 0.0],  # IoU 400/480 = 0.833 x 0.9 = 0.75 -> the best
        [50, 50, 70, 70, 1.0, 1.0],  # elsewhere: IoU 0 -> 0
    )
    assert box_scores(raw, box, 0, 0.5)[0] == pytest.approx(0.9 * 400 / 480, rel=1e-5)
    assert box_scores(raw, box, 1, 0.5)[0] == pytest.approx(0.1, rel=1e-5)  # the other class's scores count


def test_box_score_ignores_candidates_overlapping_too_little() -> None:
    raw = candidates([10, 10, 30, 30, 0.9, 0.0], [20, 10, 40, 30, 1.0, 0.0])  # second: IoU 1/3
    assert box_scores(raw, (20.0, 10.0, 40.0, 30.0), 0, 0.5)[0] == pytest.approx(1.0)
    assert box_scores(raw, (0.0, 0.0, 12.0, 12.0), 0, 0.5)[0] == 0.0  # nothing overlaps by half


def test_box_score_is_batched_and_rejects_unknown_classes() -> None:
    raw = np.concatenate([candidates([0, 0, 10, 10, 0.8, 0.0]), candidates([0, 0, 10, 10, 0.2, 0.0])])
    assert box_scores(raw, (0.0, 0.0, 10.0, 10.0), 0, 0.5).tolist() == pytest.approx([0.8, 0.2])
    with pytest.raises(ExplainError, match="class id 2"):
        box_scores(raw, (0.0, 0.0, 10.0, 10.0), 2, 0.5)


def test_peak_prefers_the_block_whose_neighbours_matter_too() -> None:
    """Partition attributions are flat over blocks: a raw argmax would take a block's top-left corner."""
    attribution = np.zeros((100, 100), np.float32)
    attribution[40:60, 40:60] = 1.0
    attribution[0:4, 0:4] = 1.0  # a lone tie in the corner
    x, y = peak_of(attribution)
    assert 40 <= x < 60 and 40 <= y < 60


def explanation(attribution: np.ndarray) -> Explanation:
    return Explanation(attribution, peak_of(attribution), (20.0, 20.0, 60.0, 60.0), 0, 0.9, 1.0, 100)


def test_overlay_colours_the_attributed_region_and_draws_the_box() -> None:
    frame = np.full((80, 100, 3), 90, np.uint8)
    attribution = np.zeros((80, 100), np.float32)
    attribution[30:50, 30:50] = 2.0
    attribution[0:10, 80:100] = -5.0  # negative evidence is not painted as heat
    out = render_overlay(frame, explanation(attribution))
    assert out.shape == frame.shape and out.dtype == np.uint8
    hot, cold, negative = out[40, 35], out[70, 10], out[5, 90]
    assert int(hot[2]) > int(hot[0]) + 40  # JET's red where attribution peaks
    assert int(cold[0]) > int(cold[2]) + 40  # JET's blue where there is none
    assert np.array_equal(negative, cold)
    assert (out[20, 25:55] == 255).all()  # the box's top edge, white
    png = overlay_png(frame, explanation(attribution))
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape == frame.shape


def test_overlay_of_an_all_zero_map_is_still_an_image() -> None:
    frame = np.zeros((40, 40, 3), np.uint8)
    out = render_overlay(frame, explanation(np.zeros((40, 40), np.float32)))
    assert out.shape == frame.shape


def test_scene_masks_are_each_objects_visible_pixels() -> None:
    domain = load_domains(PACKAGE_ROOT / "configs" / "domains.yaml")["A"]
    checked = 0
    for index in range(10):
        scene = render_scene(scene_rng(3, index), domain, 160, 160)
        assert len(scene.masks) == len(scene.boxes) == len(scene.class_ids)
        for mask, (x1, y1, x2, y2) in zip(scene.masks, scene.boxes, strict=True):
            assert mask.shape == (160, 160) and mask.dtype == bool
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)  # the box is the mask's
            checked += 1
        for a in range(len(scene.masks)):  # one pixel belongs to one object at most
            for b in range(a + 1, len(scene.masks)):
                assert not (scene.masks[a] & scene.masks[b]).any()
    assert checked >= 10


def test_first_component_lights_up_where_features_stand_out() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(0, 0.05, (16, 10, 12)).astype(np.float32)
    features[:, 6:9, 2:5] += np.linspace(1, 2, 16, dtype=np.float32)[:, None, None]  # one strong shared pattern
    component = first_component(features)
    assert component.shape == (10, 12) and component.min() >= 0 and component.max() == pytest.approx(1.0)
    y, x = np.unravel_index(int(np.argmax(component)), component.shape)
    assert 6 <= y < 9 and 2 <= x < 5
    assert component[6:9, 2:5].min() > 5 * component[:5].mean()


def test_eigencam_maps_a_frame_of_any_shape(var_dir: Path) -> None:
    from tests.conftest import make_settings
    from visionloop.core.model_setup import registry_for

    champion = registry_for(make_settings(var_dir)).champion()
    cam = EigenCam(champion.onnx_path, 320, threads=1)
    assert len(cam.features) == 3  # one feature map per detection stride
    heat = cam(np.random.default_rng(1).integers(0, 255, (90, 160, 3), dtype=np.uint8))
    assert heat.shape == (90, 160) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1.0
