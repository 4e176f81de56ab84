"""Dataset audit: counts, formats, conversions, corrupt files, colour statistics, duplicates."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .dataset import CifakeData
from .labels import CLASS_NAMES
from .neardup import near_duplicate_stats

AUDIT_SCHEMA = 2  # 2: near_duplicates


def duplicate_stats(data: CifakeData) -> dict:
    """Exact duplicates by content hash: within each split, per class, across splits."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(data.hashes.tolist()):
        groups[h].append(i)
    within: dict[str, int] = {}
    by_class: dict[str, int] = {}
    for split in sorted(set(data.splits.tolist())):
        mask = data.splits == split
        within[split] = int(mask.sum() - len(set(data.hashes[mask].tolist())))
        for cls, name in sorted(CLASS_NAMES.items()):
            m = mask & (data.labels == cls)
            by_class[f"{split}/{name}"] = int(m.sum() - len(set(data.hashes[m].tolist())))
    # images whose bytes also appear with the other label: a contradiction, not just a copy
    conflicting = sum(1 for idx in groups.values() if len(idx) > 1 and len(set(data.labels[idx].tolist())) > 1)
    across = 0
    if data.has_test:
        train_hashes = set(data.hashes[data.splits == "train"].tolist())
        across = int(sum(h in train_hashes for h in data.hashes[data.splits == "test"].tolist()))
    pairs = sum(len(idx) * (len(idx) - 1) // 2 for idx in groups.values())
    examples = [[data.paths[i] for i in idx] for idx in groups.values() if len(idx) > 1][:5]
    return {
        "within": within,
        "by_class": by_class,
        "across": across,
        "pairs": int(pairs),
        "groups": int(sum(1 for idx in groups.values() if len(idx) > 1)),
        "label_conflicts": int(conflicting),
        "examples": examples,
    }


def mean_rgb(data: CifakeData) -> dict[str, dict[str, list[float]]]:
    """Mean R, G, B level (0..255) per split and class."""
    out: dict[str, dict[str, list[float]]] = {}
    for split in sorted(set(data.splits.tolist())):
        out[split] = {}
        for cls, name in sorted(CLASS_NAMES.items()):
            m = (data.splits == split) & (data.labels == cls)
            if not m.any():
                continue
            # accumulate in float64 over chunks: exact and without a 1 GB float copy
            total = np.zeros(3)
            for idx in np.array_split(np.flatnonzero(m), max(1, int(m.sum()) // 10000)):
                total += data.images[idx].sum(axis=(0, 2, 3), dtype=np.float64)
            pixels = m.sum() * data.image_size**2
            out[split][name] = [round(float(v), 2) for v in total / pixels]
    return out


def audit(data: CifakeData) -> dict:
    """A JSON-ready audit of a loaded dataset (keys documented in the README)."""
    rep = data.report
    return {
        "schema": AUDIT_SCHEMA,
        "source": data.source,
        "fingerprint": data.fingerprint,
        "synthetic": data.synthetic,
        "official_test_split": data.has_test,
        "total": len(data),
        "per_split": data.counts(),
        "image_size": data.image_size,
        "sizes": rep.sizes,
        "modes": rep.modes,
        "formats": rep.formats,
        "converted": rep.converted,
        "corrupt": sorted(rep.corrupt),
        "corrupt_reasons": rep.corrupt,
        "ignored": rep.ignored,
        "mean_rgb": mean_rgb(data),
        "duplicates": duplicate_stats(data),
        "near_duplicates": near_duplicate_stats(
            data.images, {s: np.flatnonzero(data.splits == s) for s in sorted(set(data.splits.tolist()))}, data.paths
        ),
    }


def format_audit(a: dict) -> str:
    """Human-readable audit text for the terminal."""
    lines = [f"CIFAKE audit of {a['source']}"]
    if a["synthetic"]:
        lines.append("!! SYNTHETIC demo data (cifake synth), not CIFAKE !!")
    lines.append(f"fingerprint {a['fingerprint'][:16]}   images loaded: {a['total']:,}")
    lines.append("")
    lines.append(f"{'split':<8}{'REAL':>10}{'FAKE':>10}{'total':>10}")
    for split, c in a["per_split"].items():
        lines.append(f"{split:<8}{c['REAL']:>10,}{c['FAKE']:>10,}{c['REAL'] + c['FAKE']:>10,}")
    if not a["official_test_split"]:
        lines.append("no test/ split: a held-out test part will be carved from train (stratified, seeded)")
    lines.append("")
    lines.append("sizes as found: " + ", ".join(f"{k} ({v:,})" for k, v in a["sizes"].items()))
    lines.append("modes as found: " + ", ".join(f"{k} ({v:,})" for k, v in a["modes"].items()))
    lines.append("formats by content: " + ", ".join(f"{k} ({v:,})" for k, v in a["formats"].items()))
    conv = a["converted"]
    lines.append("conversions: " + (", ".join(f"{k}: {v:,}" for k, v in conv.items()) if conv else "none"))
    lines.append(f"corrupt files (skipped): {len(a['corrupt'])}")
    for p in a["corrupt"][:10]:
        lines.append(f"  {p}: {a['corrupt_reasons'][p]}")
    lines.append(f"ignored non-image files: {len(a['ignored'])}")
    for p in a["ignored"][:10]:
        lines.append(f"  {p}")
    lines.append("")
    lines.append("mean RGB (0-255):")
    for split, by_class in a["mean_rgb"].items():
        for name, rgb in by_class.items():
            lines.append(f"  {split}/{name}: " + ", ".join(f"{v:.1f}" for v in rgb))
    d = a["duplicates"]
    lines.append("")
    lines.append(
        f"exact duplicates (same bytes): {d['pairs']:,} pair(s) in {d['groups']:,} group(s); "
        f"label conflicts: {d['label_conflicts']}"
    )
    for key, n in d["by_class"].items():
        if n:
            lines.append(f"  extra copies in {key}: {n:,}")
    if a["official_test_split"]:
        lines.append(f"  test images whose bytes appear in train (leaks): {d['across']:,}")
    nd = a.get("near_duplicates")
    if nd:
        lines.append(f"near-duplicates ({nd['method']}): {nd['pairs']:,} pair(s)")
        for split, n in nd["within"].items():
            lines.append(f"  {split} images with a near-copy in {split}: {n:,}")
        if nd["across"] is not None:
            lines.append(f"  test images with a near-copy in train: {nd['across']:,}")
    return "\n".join(lines)
