"""Near-duplicates: images whose decoded pixels are (almost) the same, whatever their bytes.

The exact-duplicate audit compares file bytes (sha256): a copy re-encoded at another JPEG
quality, or an image that differs by a few grey levels, is invisible to it. CIFAKE's REAL images
are CIFAR-10, whose test set holds near-copies of training images (ciFAIR: Barz & Denzler, 2020,
about 3% of the test images). Here two images are near-duplicates when

1. their 64-bit perceptual hashes differ in at most ``HASH_BITS`` bits (the hash: grey levels
   averaged over 4x4 blocks of the 32x32 image, each of the 8x8 block means compared with their
   median), and
2. their decoded pixels differ by at most ``PIXEL_MAD`` grey levels on average (mean absolute
   difference over the 3 x 32 x 32 values, 0-255 scale), which rules out hash collisions of
   unrelated images with similar layouts.

Exact copies are near-duplicates too (distance 0). The thresholds catch copies that were
re-encoded or slightly retouched; shifted, cropped or flipped copies are not found. Candidate
pairs come from multi-index hashing on the distinct hashes: with the hash cut into
``HASH_BITS + 1`` pieces, two hashes within ``HASH_BITS`` bits share at least one piece exactly,
so only hashes sharing a piece are compared. Images with the same hash are compared only when
their mean levels are within ``PIXEL_MAD`` (a necessary condition), so many flat images with one
hash do not make the search quadratic.
"""

from __future__ import annotations

import numpy as np

HASH_BITS = 4  # perceptual-hash bits two near-duplicates may differ in
PIXEL_MAD = 6.0  # mean absolute pixel difference (0-255) two near-duplicates may differ by
_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CACHE: dict[str, np.ndarray] = {}  # data fingerprint -> hashes of all its images


def perceptual_hashes(images: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """uint64 hash of each uint8 N x 3 x 32 x 32 image (block-mean hash on an 8x8 grid)."""
    n, _, h, w = images.shape
    out = np.empty(n, dtype=np.uint64)
    weights = (np.uint64(1) << np.arange(64, dtype=np.uint64)).astype(np.uint64)
    for s in range(0, n, chunk):
        x = np.tensordot(images[s : s + chunk].astype(np.float32), _GREY, axes=([1], [0]))  # N x H x W
        blocks = x.reshape(len(x), 8, h // 8, 8, w // 8).mean(axis=(2, 4)).reshape(len(x), 64)
        bits = blocks > np.median(blocks, axis=1, keepdims=True)
        out[s : s + chunk] = (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    return out


def dataset_hashes(data) -> np.ndarray:
    """Perceptual hashes of every image of a loaded dataset, computed once per data fingerprint."""
    if data.fingerprint not in _CACHE:
        _CACHE[data.fingerprint] = perceptual_hashes(data.images)
    return _CACHE[data.fingerprint]


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def _pieces(max_bits: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, 64, max_bits + 2).astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _piece(hashes: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return (hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)


def hash_pairs(hashes: np.ndarray, max_bits: int = HASH_BITS) -> np.ndarray:
    """Index pairs (i < j) of *distinct* hashes that differ in at most ``max_bits`` bits.

    For each piece the hashes are sorted by it; entries ``d`` places apart with the same piece
    are candidate pairs, for d = 1, 2, ... while any bucket is that large (vectorised over all
    buckets at once)."""
    keys = [_piece(hashes, lo, hi) for lo, hi in _pieces(max_bits)]
    found = []
    for p, key in enumerate(keys):
        order = np.argsort(key, kind="stable")
        k = key[order]
        d = 1
        while d < len(k):
            same = np.flatnonzero(k[d:] == k[:-d])
            if not len(same):
                break
            i, j = order[same], order[same + d]
            close = _popcount(hashes[i] ^ hashes[j]) <= max_bits
            for q in range(p):  # a pair sharing an earlier piece was found there already
                close &= keys[q][i] != keys[q][j]
            found.append(np.stack([np.minimum(i, j)[close], np.maximum(i, j)[close]], axis=1))
            d += 1
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def _mad_ok(images: np.ndarray, i: np.ndarray, j: np.ndarray, max_mad: float) -> np.ndarray:
    keep = np.zeros(len(i), dtype=bool)
    for s in range(0, len(i), 4096):
        diff = np.abs(images[i[s : s + 4096]].astype(np.int16) - images[j[s : s + 4096]].astype(np.int16))
        keep[s : s + 4096] = diff.reshape(len(diff), -1).mean(axis=1) <= max_mad
    return keep


def _same_hash_pairs(group: np.ndarray, means: np.ndarray, max_mad: float):
    """Pairs within a group of images with one hash whose mean levels are within ``max_mad``."""
    group = group[np.argsort(means[group], kind="stable")]
    m = means[group]
    ends = np.searchsorted(m, m + max_mad, side="right")
    for r in range(len(group) - 1):
        if ends[r] > r + 1:
            yield np.full(ends[r] - r - 1, group[r]), group[r + 1 : ends[r]]


def near_duplicate_pairs(
    images: np.ndarray,
    hashes: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    max_bits: int = HASH_BITS,
    max_mad: float = PIXEL_MAD,
) -> np.ndarray:
    """Row pairs (i < j) of near-duplicate images among ``rows`` (default: all), as an M x 2 array.
    ``hashes`` are the perceptual hashes of all of ``images`` (computed when not given)."""
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    if len(rows) < 2:
        return np.empty((0, 2), dtype=np.int64)
    hashes = perceptual_hashes(images)[rows] if hashes is None else hashes[rows]
    distinct, inverse = np.unique(hashes, return_inverse=True)
    groups = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    means = np.concatenate(
        [images[rows[s : s + 8192]].reshape(-1, images[0].size).mean(axis=1) for s in range(0, len(rows), 8192)]
        or [np.empty(0)]
    )
    candidates = []
    for g in groups:  # the same hash
        if len(g) > 1:
            candidates += [np.stack(p, axis=1) for p in _same_hash_pairs(g, means, max_mad)]
    hp = hash_pairs(distinct, max_bits)  # hashes a few bits apart
    sizes = np.array([len(g) for g in groups])
    first = np.array([g[0] for g in groups]) if groups else np.empty(0, dtype=np.int64)
    single = (sizes[hp[:, 0]] == 1) & (sizes[hp[:, 1]] == 1)
    a, b = first[hp[single, 0]], first[hp[single, 1]]  # most hashes belong to one image
    candidates.append(np.stack([a, b], axis=1)[np.abs(means[a] - means[b]) <= max_mad])
    for u, v in hp[~single]:
        a, b = (x.ravel() for x in np.meshgrid(groups[u], groups[v], indexing="ij"))
        candidates.append(np.stack([a, b], axis=1)[np.abs(means[a] - means[b]) <= max_mad])
    if not candidates:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(candidates)
    pairs = rows[np.sort(pairs, axis=1)]
    pairs = pairs[_mad_ok(images, pairs[:, 0], pairs[:, 1], max_mad)]
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def near_copies(images: np.ndarray, query: np.ndarray, reference: np.ndarray, hashes=None, **kw) -> np.ndarray:
    """Boolean mask over ``query`` rows: which have a near-duplicate among the ``reference`` rows."""
    rows = np.unique(np.concatenate([query, reference]))
    pairs = near_duplicate_pairs(images, hashes, rows, **kw)
    in_query, in_ref = np.isin(pairs, query), np.isin(pairs, reference)
    hits = np.concatenate([pairs[in_query[:, 0] & in_ref[:, 1], 0], pairs[in_query[:, 1] & in_ref[:, 0], 1]])
    return np.isin(query, hits)


def near_duplicate_stats(images: np.ndarray, parts: dict[str, np.ndarray], paths, examples: int = 5) -> dict:
    """Near-duplicates within each part (images with a near-copy in the same part) and across
    (images of ``test`` with a near-copy in ``train``, when both parts are given)."""
    rows = np.unique(np.concatenate(list(parts.values())))
    pairs = near_duplicate_pairs(images, rows=rows)
    part_of = np.full(len(images), "", dtype=object)
    for name, idx in parts.items():
        part_of[idx] = name
    a, b = part_of[pairs[:, 0]], part_of[pairs[:, 1]]
    within = {name: int(len(np.unique(pairs[(a == name) & (b == name)]))) for name in parts}
    across = None
    if "test" in parts and "train" in parts:
        cross = pairs[((a == "test") & (b == "train")) | ((a == "train") & (b == "test"))]
        across = int(np.isin(parts["test"], cross).sum())
    return {
        "method": f"perceptual hash within {HASH_BITS} bits and mean absolute pixel difference <= {PIXEL_MAD}",
        "hash_bits": HASH_BITS,
        "pixel_mad": PIXEL_MAD,
        "pairs": int(len(pairs)),
        "within": within,
        "across": across,
        "examples": [[paths[int(i)], paths[int(j)]] for i, j in pairs[:examples]],
    }
