"""A simulated site behaves like cameras: objects arrive as a Poisson process at the configured rates, pass, stop
and leave; stretches are empty about as often as the traffic model says; any frame renders the same alone as in
sequence; shifts change what a camera shows; the writer leaves what a run needs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
from scipy import stats

from visionloop.core.frame_clock import read_frame_number, strip_height
from visionloop.core.layout import shipped_config
from visionloop.simulation.site import Shift, SiteCamera, SiteSpec
from visionloop.simulation.site.traffic import Track, spell_factor
from visionloop.simulation.site.writer import write_site
from visionloop.simulation.world import CLASS_NAMES, load_domains

DOMAINS_FILE = shipped_config("domains.yaml")
DOMAINS = load_domains(DOMAINS_FILE)
TEN_MINUTES = SiteSpec(seed=11, cameras=8, seconds=600)


def _tracks(camera: SiteCamera, seconds: float) -> list[Track]:
    spell_s = camera.domain_at.base.traffic.spell_s
    return [t for k in range(math.ceil(seconds / spell_s)) for t in camera.traffic.spell(k) if t.enters < seconds]


@pytest.fixture(scope="module")
def site() -> list[SiteCamera]:
    return [SiteCamera(TEN_MINUTES, name, DOMAINS) for name in TEN_MINUTES.camera_names()]


def test_arrivals_are_poisson_at_the_configured_rates(site: list[SiteCamera]) -> None:
    traffic = DOMAINS["A"].traffic
    spells = int(TEN_MINUTES.seconds // traffic.spell_s)
    observed, expected = [], []
    for camera in site:
        observed.append(len(_tracks(camera, TEN_MINUTES.seconds)))
        factors = [spell_factor(TEN_MINUTES.seed, camera.index, k, traffic) for k in range(spells)]
        expected.append(sum(traffic.arrivals_per_minute / 60 * f * traffic.spell_s for f in factors))
    alpha = 0.001 / len(site)  # each camera's count inside its Poisson interval, Bonferroni over the cameras
    for count, mean in zip(observed, expected, strict=True):
        low, high = stats.poisson.ppf(alpha / 2, mean), stats.poisson.ppf(1 - alpha / 2, mean)
        assert low <= count <= high, (observed, expected)
    pooled_low, pooled_high = stats.poisson.interval(0.999, sum(expected))
    assert pooled_low <= sum(observed) <= pooled_high, (sum(observed), sum(expected))
    weights = np.asarray(DOMAINS["A"].class_weights, float)
    classes = np.bincount([t.class_id for c in site for t in _tracks(c, 600)], minlength=len(CLASS_NAMES))
    assert stats.chisquare(classes, classes.sum() * weights / weights.sum()).pvalue > 0.001, classes


def test_empty_stretches_come_as_often_as_the_traffic_model_says(site: list[SiteCamera]) -> None:
    """The objects in view at a moment are Poisson with mean m(t) = integral of rate(s) * P(life > t - s) ds
    (an M_t/G/inf queue), so a frame is empty with probability exp(-m(t)): the band is that prediction +- 0.08
    for the whole site (+- 0.25 for one camera, whose 10 minutes hold only 20 spells)."""
    traffic = DOMAINS["A"].traffic
    lives = np.array([t.leaves - t.enters for c in site for t in _tracks(c, 600)])
    grid = np.arange(0.0, 600.0, 1.0)
    survival = np.array([(lives > u).mean() for u in grid])
    observed, predicted = [], []
    for camera in site:
        tracks = _tracks(camera, 600)
        busy = np.array([any(t.enters <= s <= t.leaves for t in tracks) for s in grid])
        rate = np.array(
            [spell_factor(TEN_MINUTES.seed, camera.index, int(s // traffic.spell_s), traffic) for s in grid]
        )
        rate *= traffic.arrivals_per_minute / 60
        mean_in_view = np.array([np.dot(rate[: i + 1][::-1], survival[: i + 1]) for i in range(grid.size)])
        settled = grid >= 60  # the site starts empty
        observed.append(1 - busy[settled].mean())
        predicted.append(float(np.exp(-mean_in_view[settled]).mean()))
    print(f"\nempty share observed {np.round(observed, 3)} predicted {np.round(predicted, 3)}")
    assert abs(np.mean(observed) - np.mean(predicted)) < 0.08
    assert all(abs(o - p) < 0.25 for o, p in zip(observed, predicted, strict=True))
    assert 0.05 < np.mean(observed) < 0.6  # quiet spells do empty the view, busy ones fill it


def test_some_objects_stop_and_move_again_and_each_keeps_its_id(site: list[SiteCamera]) -> None:
    tracks = [t for c in site for t in _tracks(c, 600)]
    chance = DOMAINS["A"].traffic.stop_chance
    stopping = [t for t in tracks if t.stops]
    low, high = stats.binom.interval(0.999, len(tracks), chance)
    assert low <= len(stopping) <= high
    for track in stopping:
        (stand_from, stand_to) = next((a, b) for a, b, p, q in _legs(track) if p == q)
        assert track.moving(stand_from - 0.5) and not track.moving((stand_from + stand_to) / 2)
        assert track.moving(stand_to + 0.5)
    for camera in site:
        ids = [t.id for t in _tracks(camera, 600)]
        assert len(ids) == len(set(ids))


def _legs(track: Track) -> list[tuple[float, float, tuple[float, float], tuple[float, float]]]:
    return list(zip(track.times, track.times[1:], track.points, track.points[1:], strict=False))


def test_a_frame_renders_the_same_alone_as_in_sequence() -> None:
    spec = SiteSpec(seed=2, cameras=2, seconds=30, shifts=(Shift(camera="cam2", at_s=1.0, domain="B", ramp_s=2),))
    for name in spec.camera_names():
        in_sequence = SiteCamera(spec, name, DOMAINS)
        frames = [in_sequence.render(n) for n in range(0, 46)]
        for number in (45, 30, 7):
            alone = SiteCamera(spec, name, DOMAINS).render(number)
            assert np.array_equal(alone.image, frames[number].image)
            assert alone.truth_line() == frames[number].truth_line()


def test_truth_lies_above_the_clock_and_matches_the_masks() -> None:
    spec = SiteSpec(seed=4, cameras=1, seconds=120)
    camera = SiteCamera(spec, "cam1", DOMAINS)
    top_of_strip = spec.height - strip_height(spec.height)
    seen = 0
    for number in range(0, spec.frames, 45):
        frame = camera.render(number)
        assert read_frame_number(frame.image) == number
        for obj, mask in zip(frame.objects, frame.masks, strict=True):
            x1, y1, x2, y2 = obj.box
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
            assert y2 <= top_of_strip
            seen += 1
    assert seen > 20


def test_a_shift_changes_the_camera_that_shifts_and_no_other() -> None:
    spec = SiteSpec(seed=6, cameras=2, seconds=60, shifts=(Shift(camera="cam2", at_s=20, domain="B"),))
    still, shifting = (SiteCamera(spec, name, DOMAINS) for name in ("cam1", "cam2"))

    def grey(camera: SiteCamera, seconds: range) -> float:
        return float(np.mean([camera.render(s * spec.fps).image[:-20].mean() for s in seconds]))

    assert grey(shifting, range(22, 30)) < 0.8 * grey(shifting, range(10, 18))  # dusk (B) is darker than A
    assert grey(still, range(22, 30)) == pytest.approx(grey(still, range(10, 18)), rel=0.1)
    assert shifting.domain_at(25).name == "B" and still.domain_at(25).name == "A"


def test_domains_files_that_never_name_the_new_knobs_make_cameras(tmp_path: Path) -> None:
    unseen = tmp_path / "domains.yaml"
    unseen.write_text("Z:\n  brightness: [0.5, 0.6]\n  background: noise\n  objects: [1, 2]\n")
    domains = load_domains(unseen)
    frame = SiteCamera(SiteSpec(domain="Z", seconds=10), "cam1", domains).render(140)
    assert frame.image.shape == (360, 640, 3) and read_frame_number(frame.image) == 140
    assert set(load_domains(DOMAINS_FILE)) == {"A", "B", "C"}  # today's file loads unchanged


def test_the_writer_leaves_videos_truth_and_a_description_and_reuses_them(tmp_path: Path) -> None:
    spec = SiteSpec(seed=1, cameras=2, seconds=3, shifts=(Shift(camera="cam1", at_s=1, domain="C"),))
    site_json = write_site(spec, DOMAINS_FILE, tmp_path / "site", workers=1)
    site = json.loads(site_json.read_text())
    assert site["spec"]["cameras"] == 2 and site["class_names"] == list(CLASS_NAMES)
    assert site["cameras"]["cam1"]["shifts"][0]["domain"] == "C"
    for name in ("cam1", "cam2"):
        lines = (tmp_path / "site" / name / "truth.jsonl").read_text().splitlines()
        assert [json.loads(line)["frame"] for line in lines] == list(range(spec.frames))
        with av.open(str(tmp_path / "site" / name / "video.mp4")) as video:
            numbers = [read_frame_number(f.to_ndarray(format="bgr24")) for f in video.decode(video=0)]
        assert numbers == list(range(spec.frames))
    stamp = site_json.stat().st_mtime_ns
    assert write_site(spec, DOMAINS_FILE, tmp_path / "site", workers=1) == site_json
    assert site_json.stat().st_mtime_ns == stamp  # the same recipe is not rendered again


def test_test_sets_come_from_the_cameras_later_window_and_unseen_viewpoints(tmp_path: Path) -> None:
    from visionloop.learning.datasets import DatasetStore
    from visionloop.simulation.site.live import RenderedSite
    from visionloop.simulation.site.testsets import site_test_sets

    spec = SiteSpec(seed=8, cameras=2, unseen=1, seconds=6)
    site = RenderedSite(write_site(spec, DOMAINS_FILE, tmp_path / "site", workers=1))
    store = DatasetStore(tmp_path / "datasets")
    sets = site_test_sets(store, "demo-site", site, labels_until_s=3.0, every_s=0.5)
    future, unseen = sets["future"], sets["unseen"]
    assert future.manifest["counts"]["val"]["images"] == 2 * 6
    assert unseen.manifest["counts"]["val"]["images"] == 12
    stems = sorted(p.stem for p in (future.path / "images").rglob("*.jpg"))
    assert stems[0] == "cam1_0000045" and all(int(s.split("_")[1]) >= 45 for s in stems)  # after 3 s at 15 fps
    labels = {p.stem: p.read_text().split() for p in (future.path / "labels").rglob("*.txt")}
    truth = site.truth("cam1")[45]
    assert len(labels["cam1_0000045"]) == 5 * len(truth["objects"])
    assert site_test_sets(store, "demo-site", site, labels_until_s=3.0, every_s=0.5)["future"].version == future.version
