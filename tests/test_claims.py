"""Claims that survive a reviewer: near-duplicates by pixels, a log of every read of held-out
data, and differences between recipes or architectures judged over seeds."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from cifake_lib.cli import main
from cifake_lib.data.dataset import load_cifake
from cifake_lib.data.neardup import PIXEL_MAD, near_copies, near_duplicate_pairs, perceptual_hashes
from cifake_lib.study.results import SeedComparison, seed_spread
from cifake_lib.study.stages.evaluation import seed_sentence


def _smooth_images(n: int, seed: int) -> np.ndarray:
    """Photograph-like 32x32 images: 8x8 random colour blocks, each 4x4 pixels."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 3, 8, 8)).astype(np.uint8)
    return np.repeat(np.repeat(base, 4, axis=2), 4, axis=3)


def test_near_duplicates_are_found_by_pixels_not_bytes():
    images = _smooth_images(300, 0)
    rng = np.random.default_rng(1)
    noisy = np.clip(images[:10].astype(int) + rng.integers(-3, 4, images[:10].shape), 0, 255).astype(np.uint8)
    shifted = (images[10:15] // 2 + 40).astype(np.uint8)  # an affine change of every pixel: not a copy
    allim = np.concatenate([images, noisy, shifted])
    pairs = {tuple(p) for p in near_duplicate_pairs(allim)}
    assert pairs == {(i, 300 + i) for i in range(10)}
    # the pixel check is what rules the changed images out (an affine change keeps the hash)
    h = perceptual_hashes(allim)
    assert (h[10:15] == h[310:315]).all()
    assert near_copies(allim, np.arange(300, 315), np.arange(300)).tolist() == [True] * 10 + [False] * 5


def test_hash_search_finds_every_pair_within_the_bit_budget():
    """Multi-index hashing against brute force, on hashes 0 to 6 bits apart."""
    from cifake_lib.data.neardup import HASH_BITS, _popcount, hash_pairs

    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 300, dtype=np.uint64)
    variants = [base]
    for k in range(1, 7):
        flips = np.zeros(len(base), dtype=np.uint64)
        for i in range(len(base)):
            for bit in rng.choice(64, k, replace=False):
                flips[i] |= np.uint64(1) << np.uint64(int(bit))
        variants.append(base ^ flips)
    hashes = np.unique(np.concatenate(variants))
    a, b = np.triu_indices(len(hashes), 1)
    close = _popcount(hashes[a] ^ hashes[b]) <= HASH_BITS
    expected = {(int(i), int(j)) for i, j in zip(a[close], b[close])}
    found = [tuple(map(int, p)) for p in hash_pairs(hashes)]
    assert len(found) == len(set(found))  # each pair once, whichever pieces it shares
    assert set(found) == expected and len(expected) > 300


def test_near_duplicate_threshold_is_the_documented_one():
    images = _smooth_images(2, 3)
    a = images[:1]
    just_in = np.clip(a.astype(int) + int(PIXEL_MAD), 0, 255).astype(np.uint8)
    just_out = np.clip(a.astype(int) + int(PIXEL_MAD) + 2, 0, 255).astype(np.uint8)
    for other, expected in ((just_in, True), (just_out, False)):
        mad = np.abs(a.astype(int) - other.astype(int)).mean()
        assert (mad <= PIXEL_MAD) == expected
        assert (len(near_duplicate_pairs(np.concatenate([a, other]))) == 1) == expected


def _reencode(src, dst, quality=90):
    img = Image.open(src)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    dst.write_bytes(buf.getvalue())


def test_audit_json_has_near_duplicates_within_and_across(synth_copy, capsys):
    # a re-encoded copy of a train image in test: other bytes, nearly the same pixels
    src = next((synth_copy / "train/REAL").glob("*.jpg"))
    _reencode(src, synth_copy / "test/REAL" / ("copy " + src.name))
    assert main(["audit", str(synth_copy), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    near = out["near_duplicates"]
    assert near["across"] >= 1 and out["duplicates"]["across"] == 0  # invisible to the byte hash
    assert set(near["within"]) == {"train", "test"} and near["hash_bits"] == 4
    assert any("copy " in p for pair in near["examples"] for p in pair)
    assert main(["audit", str(synth_copy)]) == 0
    assert "test images with a near-copy in train:" in capsys.readouterr().out


def test_evaluation_reports_near_duplicate_free_and_logs_each_read(synth_copy, tmp_path):
    from cifake_lib.data.splits import make_splits
    from cifake_lib.engine.config import TrainConfig
    from cifake_lib.engine.evaluate import evaluate_model, test_reads
    from cifake_lib.engine.trainer import train_model

    src = next((synth_copy / "train/FAKE").glob("*.jpg"))
    _reencode(src, synth_copy / "test/FAKE" / ("copy " + src.name))
    data = load_cifake(synth_copy, progress=False, cache_dir=tmp_path / "cache")
    splits = make_splits(data, seed=0)
    run = tmp_path / "run"
    cfg = TrainConfig(model="custom_cnn", epochs=1, batch_size=32, seed=0)
    train_model(cfg, data, splits, run, progress=False, log=lambda m: None)
    ev = evaluate_model(run, data, splits=splits, n_boot=20, progress=False)
    m = ev.metrics
    in_train = np.isin(data.index_of([str(p) for p in ev.predictions["path"]]), splits.train)
    assert not in_train.any()
    assert m["near_duplicates_removed"] >= 1 and m["leaked_images_removed"] == 0
    assert m["near_duplicate_free"]["n"] == m["n"] - m["near_duplicates_removed"]
    evaluate_model(run, data, splits=splits, split="val", n_boot=20, progress=False)  # validation: not logged
    reads = test_reads(run)
    assert len(reads) == 1 and reads[0]["split"] == "test" and reads[0]["fingerprint"] == data.fingerprint
    assert reads[0]["images"] == m["n"] and reads[0]["own_data"] is True and reads[0]["git_commit"]
    evaluate_model(run, data, splits=splits, n_boot=20, progress=False)
    assert len(test_reads(run)) == 2  # a second read of the test part is on record


# ----------------------------------------------------------------------------- seeds as the unit of a claim


def test_seed_level_interval_is_a_t_interval():
    one = seed_spread([0.01])
    assert one.ci95 is None and not one.excludes_zero
    s = seed_spread([0.010, 0.012, 0.014])
    # mean 0.012, sd 0.002, t(0.975, 2) = 4.303: half width 4.303 * 0.002 / sqrt(3)
    assert s.ci95 == pytest.approx((0.012 - 0.0049687, 0.012 + 0.0049687), abs=1e-6)
    assert s.excludes_zero and not seed_spread([0.01, -0.002, 0.004]).excludes_zero


def test_the_conclusion_follows_the_seed_level_interval():
    clear = SeedComparison(
        "custom_cnn, improved recipe", "custom_cnn, paper recipe", "accuracy", seed_spread([0.02, 0.021, 0.019])
    )
    noisy = SeedComparison("resnet18", "custom_cnn", "accuracy", seed_spread([0.01, -0.012, 0.004]))
    single = SeedComparison("resnet18", "custom_cnn", "accuracy", seed_spread([0.01]))
    assert "a difference at the level of training runs, in favour of Custom CNN (improved recipe)" in seed_sentence(
        clear
    )
    assert "+2.00, +2.10, +1.90" in seed_sentence(clear)  # the per-seed values
    assert "no difference beyond seed-to-seed variation" in seed_sentence(noisy)
    assert "from one run of each, so no seed-level interval" in seed_sentence(single)
    assert "in favour" not in seed_sentence(clear, synthetic=True)  # demo data: numbers, no verdict


def test_seed_runs_are_paired_by_seed_index():
    from cifake_lib.study.results import RunFacts, ScoredModel, Scores
    from cifake_lib.study.stages.evaluation import recipe_seed_differences, seed_difference

    def scored(model, acc):
        ci = {m: (acc, acc) for m in ("accuracy", "precision", "recall", "f1", "auc")}
        s = Scores(acc, 0.9, 0.9, 0.9, 0.9, 10, {"tp": 5, "tn": 4, "fp": 1, "fn": 0}, ci, 0.9, {})
        return ScoredModel(model, s, RunFacts())

    paper = {
        "resnet18": [scored("resnet18", a) for a in (0.90, 0.92)],
        "custom_cnn": [scored("custom_cnn", a) for a in (0.91, 0.90, 0.95)],
    }
    d = seed_difference(paper)
    assert d.difference.values == pytest.approx((-0.01, 0.02)) and d.difference.n_seeds == 2  # the third has no pair
    improved = {"custom_cnn": [scored("custom_cnn", a) for a in (0.93, 0.93, 0.96)]}
    (r,) = recipe_seed_differences(paper, improved)
    assert r.a == "custom_cnn, improved recipe" and r.difference.values == pytest.approx((0.02, 0.03, 0.01))
