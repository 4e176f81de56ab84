"""Find the CIFAKE layout in a folder or a zip, and read member bytes in place.

A source is the Kaggle layout ``<root>/{train,test}/{REAL,FAKE}/*.jpg``, found at the given path
or one folder below it, in a directory or inside a zip (read without extracting). Split and class
folder names match in any letter case. Everything that is not an image candidate is listed as
ignored, so nothing disappears unreported.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .labels import CLASS_IDS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
# no image file of this project is anywhere near this: larger files (or zip members that declare
# or inflate to more) are treated as corrupt instead of being read into memory
MAX_FILE_BYTES = 50 * 2**20
SPLITS = ("train", "test")
SYNTHETIC_MARKER = "SYNTHETIC_DATA.txt"
LAYOUT_HINT = (
    "expected the Kaggle CIFAKE layout: <root>/train/{REAL,FAKE}/*.jpg (and optionally "
    "<root>/test/{REAL,FAKE}/*.jpg), as a folder or as the Kaggle zip"
)


class DataError(ValueError):
    """The data source is structurally unusable (missing folder, empty class, bad zip...)."""


@dataclass(frozen=True)
class SourceFile:
    """One image candidate: where it is and what the layout says about it."""

    split: str
    label: int
    relpath: str  # relative to the dataset root, always with "/" separators
    stamp: tuple  # (size, crc or mtime_ns): what the fingerprint is made of


@dataclass
class Source:
    """A located dataset: its image candidates, ignored entries and how to read bytes."""

    kind: str  # "dir" or "zip"
    location: str  # the folder or the zip file
    prefix: str  # path of the dataset root inside the location ("" or "cifake/")
    files: list[SourceFile]
    ignored: list[str] = field(default_factory=list)
    synthetic: bool = False
    splits: tuple[str, ...] = ()
    _zip: zipfile.ZipFile | None = field(default=None, repr=False, compare=False)

    def read_bytes(self, relpath: str) -> bytes:
        """A member's bytes; OSError for one whose declared or actual size is over MAX_FILE_BYTES."""
        if self.kind == "zip":
            if self._zip is None:
                self._zip = zipfile.ZipFile(self.location)
            info = self._zip.getinfo(self.prefix + relpath)
            if info.file_size > MAX_FILE_BYTES:
                raise OSError(f"declares {info.file_size:,} bytes, more than the {MAX_FILE_BYTES:,}-byte limit")
            try:
                with self._zip.open(info) as fh:
                    data = fh.read(MAX_FILE_BYTES + 1)  # never more, whatever the member inflates to
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                # zipfile stops at the declared size and then fails the CRC check of a member
                # that inflates to more (or different) bytes than it declares
                raise OSError(f"damaged zip member ({type(exc).__name__}: {exc})") from None
            if len(data) > MAX_FILE_BYTES:
                raise OSError(f"inflates past the {MAX_FILE_BYTES:,}-byte limit (declared {info.file_size:,})")
            return data
        path = Path(self.location) / self.prefix / relpath
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise OSError(f"{size:,} bytes is more than the {MAX_FILE_BYTES:,}-byte limit for one image file")
        return path.read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __getstate__(self):  # a ZipFile handle does not cross process boundaries
        state = self.__dict__.copy()
        state["_zip"] = None
        return state

    def fingerprint(self, *extra) -> str:
        """sha256 over names, sizes and CRCs/mtimes of every entry (plus decode settings)."""
        h = hashlib.sha256()
        for item in extra:
            h.update(repr(item).encode())
        h.update(repr(self.synthetic).encode())
        for f in self.files:
            h.update(f"{f.relpath}\0{f.stamp}\n".encode())
        for name in self.ignored:
            h.update(f"ignored:{name}\n".encode())
        return h.hexdigest()

    def describe(self) -> str:
        root = self.location if not self.prefix else f"{self.location}:{self.prefix}"
        return f"{self.kind} {root}"


def _is_image_name(base: str) -> bool:
    return base.lower().endswith(IMAGE_SUFFIXES) and not base.startswith("._")


def _classify_plain(entries: dict[str, tuple]) -> tuple[list[SourceFile], list[str], tuple] | None:
    """A plain labelled folder, <root>/{REAL,FAKE}/... at any depth: every image is scored as
    split "test". None when the root has no REAL and FAKE folders."""
    tops = {rel.split("/")[0].upper() for rel in entries if "/" in rel}
    if not set(CLASS_IDS) <= tops:
        return None
    files, ignored = [], []
    for rel, stamp in entries.items():
        parts = rel.split("/")
        if len(parts) >= 2 and parts[0].upper() in CLASS_IDS and _is_image_name(parts[-1]):
            files.append(SourceFile("test", CLASS_IDS[parts[0].upper()], rel, stamp))
        elif rel != SYNTHETIC_MARKER:
            ignored.append(rel)
    files.sort(key=lambda f: (-f.label, f.relpath))
    return files, sorted(ignored), ("test",)


def _classify(
    entries: dict[str, tuple], where: str, require_train: bool = True
) -> tuple[list[SourceFile], list[str], tuple]:
    """Turn {relpath: stamp} below a dataset root into image files and ignored entries.

    ``require_train=False`` (scoring data a model was not trained on) also accepts a root with
    only test/, and a plain folder of REAL/ and FAKE/ images."""
    files: list[SourceFile] = []
    ignored: list[str] = []
    # split and class folders present, by lower-case name -> actual name
    split_dirs: dict[str, str] = {}
    class_dirs: dict[tuple[str, str], str] = {}
    for rel in entries:
        parts = rel.split("/")
        if len(parts) >= 2 and parts[0].lower() in SPLITS:
            split_dirs.setdefault(parts[0].lower(), parts[0])
            if len(parts) >= 3 and parts[1].upper() in CLASS_IDS:
                class_dirs.setdefault((parts[0].lower(), parts[1].upper()), parts[1])
    for rel, stamp in entries.items():
        parts = rel.split("/")
        if (
            len(parts) == 3
            and parts[0].lower() in SPLITS
            and parts[1].upper() in CLASS_IDS
            and _is_image_name(parts[2])
        ):
            files.append(SourceFile(parts[0].lower(), CLASS_IDS[parts[1].upper()], rel, stamp))
        elif rel != SYNTHETIC_MARKER:
            ignored.append(rel)
    if not split_dirs and not require_train:
        plain = _classify_plain(entries)
        if plain is not None:
            if not plain[0]:
                raise DataError(f"{where}: REAL/ and FAKE/ hold no images ({', '.join(IMAGE_SUFFIXES)})")
            return plain
    if "train" not in split_dirs and (require_train or "test" not in split_dirs):
        top = sorted({r.split("/")[0] for r in entries})
        wanted = "no train/ folder" if require_train else "no train/ or test/ folder and no REAL/ and FAKE/ folders"
        raise DataError(f"{wanted} in {where} (found: {', '.join(top[:10]) or 'nothing'}); {LAYOUT_HINT}")
    splits = tuple(s for s in SPLITS if s in split_dirs)
    per_class = Counter((f.split, f.label) for f in files)
    for split in splits:
        present = sorted(name for (s, name) in class_dirs if s == split)
        for cls in CLASS_IDS:
            if (split, cls) not in class_dirs:
                raise DataError(
                    f"{where}/{split_dirs[split]} has no {cls} folder "
                    f"(found class folders: {', '.join(present) or 'none'}); {LAYOUT_HINT}"
                )
            if per_class[(split, CLASS_IDS[cls])] == 0:
                folder = f"{split_dirs[split]}/{class_dirs[(split, cls)]}"
                others = sum(1 for r in ignored if r.lower().startswith(folder.lower() + "/"))
                raise DataError(
                    f"{where}/{folder} contains no images ({', '.join(IMAGE_SUFFIXES)}); "
                    f"{others} other file(s) there were ignored"
                )
    files.sort(key=lambda f: (SPLITS.index(f.split), -f.label, f.relpath))
    ignored.sort()
    return files, ignored, splits


def _has_train(names) -> bool:
    return any(n.lower() == "train" for n in names)


def _open_dir(path: Path, require_train: bool = True) -> Source:
    root = path
    if not _has_train(p.name for p in path.iterdir() if p.is_dir()):
        # one folder down: <path>/<something>/train/...
        below = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        below = [p for p in below if _has_train(c.name for c in p.iterdir() if c.is_dir())]
        if len(below) > 1:
            raise DataError(
                f"{path} holds several CIFAKE-like folders ({', '.join(p.name for p in below)}); pass the one to use"
            )
        if below:
            root = below[0]
    entries: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(dirnames)
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            st = os.stat(os.path.join(dirpath, name))
            entries[rel] = (st.st_size, st.st_mtime_ns)
    synthetic = SYNTHETIC_MARKER in entries
    files, ignored, splits = _classify(entries, str(root), require_train)
    prefix = "" if root == path else root.name + "/"
    return Source("dir", str(path), prefix, files, ignored, synthetic, splits)


def _open_zip(path: Path, require_train: bool = True) -> Source:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path} is not a valid zip file ({exc}); {LAYOUT_HINT}") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    names = [i.filename for i in infos]
    prefix = ""
    if not any(n.split("/")[0].lower() == "train" for n in names):
        tops = sorted(
            {n.split("/")[0] for n in names if n.count("/") >= 2 and n.split("/")[1].lower() == "train"} - {"__MACOSX"}
        )
        if len(tops) > 1:
            raise DataError(f"{path} holds several CIFAKE-like folders ({', '.join(tops)})")
        if tops:
            prefix = tops[0] + "/"
    entries: dict[str, tuple] = {}
    outside: list[str] = []
    for info in infos:
        if prefix and not info.filename.startswith(prefix):
            outside.append(info.filename)
            continue
        entries[info.filename[len(prefix) :]] = (info.file_size, info.CRC)
    synthetic = SYNTHETIC_MARKER in entries
    files, ignored, splits = _classify(entries, f"{path}:{prefix}" if prefix else str(path), require_train)
    return Source("zip", str(path), prefix, files, sorted(ignored + outside), synthetic, splits)


def zip_directory_digest(path: str | os.PathLike) -> str | None:
    """sha256 of a zip's central directory (every member's name, size and CRC), or None.

    Hashing the raw directory takes milliseconds where parsing 100k entries takes most of a
    second, so a cached decode of an unchanged zip is found without listing it.
    """
    try:
        with open(path, "rb") as fp:
            endrec = zipfile._EndRecData(fp)  # handles zip64 and archive comments
            if not endrec:
                return None
            size_cd, offset_cd = endrec[zipfile._ECD_SIZE], endrec[zipfile._ECD_OFFSET]
            concat = endrec[zipfile._ECD_LOCATION] - size_cd - offset_cd
            if endrec[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
                concat -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
            fp.seek(offset_cd + concat)
            h = hashlib.sha256()
            for block in iter(lambda: fp.read(1 << 20), b""):
                h.update(block)
            return h.hexdigest()
    except (OSError, AttributeError, IndexError, zipfile.BadZipFile):
        return None


def open_source(path: str | os.PathLike, require_train: bool = True) -> Source:
    """Locate the CIFAKE layout at ``path`` (folder or zip); raise DataError if it is not there.

    With ``require_train=False`` a root with only test/, or a plain folder of REAL/ and FAKE/
    images (all scored as split "test"), is accepted too."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data not found: {p} does not exist; {LAYOUT_HINT}")
    if p.is_dir():
        return _open_dir(p, require_train)
    if zipfile.is_zipfile(p) or p.suffix.lower() == ".zip":
        return _open_zip(p, require_train)
    raise DataError(f"{p} is neither a folder nor a zip file; {LAYOUT_HINT}")
