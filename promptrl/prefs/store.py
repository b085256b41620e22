"""The rating store: SQLite (WAL, one transaction per choice) plus PNG files named by content hash.

A row is one choice between two images rendered for one idea from the same seed: who rated
(`rater`), the idea, both prompts and seeds, the render settings (JSON), both images, the
choice (`a`, `b`, `tie`, `both_bad`), when, and the model and step that sampled the pair. A
best-of-four choice is stored as the pairs it decides (the best against each other image), rows
that share a `round_id` and are committed together.
`export_jsonl` / `import_jsonl` move rows as JSONL plus an images folder
(`datasets.load_dataset("json", data_files=...)` reads the JSONL).
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UsageError

SCHEMA_VERSION = 2
CHOICES = ("a", "b", "tie", "both_bad")
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_IMAGE_SIDE = 2048
HASH_LEN = 64
EXPORT_IMAGES = "images"
"""The images folder beside an export's choices.jsonl (not a run's images)."""

MIGRATIONS = {
    1: [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS choices (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            rater TEXT NOT NULL, idea TEXT NOT NULL,
            prompt_a TEXT NOT NULL, prompt_b TEXT NOT NULL,
            seed_a INTEGER NOT NULL, seed_b INTEGER NOT NULL,
            settings TEXT NOT NULL, image_a TEXT NOT NULL, image_b TEXT NOT NULL,
            choice TEXT NOT NULL, created REAL NOT NULL, model TEXT NOT NULL, step INTEGER NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS choices_rater ON choices (rater, created)",
    ],
    2: ["ALTER TABLE choices ADD COLUMN round_id TEXT NOT NULL DEFAULT ''"],
}
"""Schema version -> the statements that bring the previous version to it."""
COUNT_CHOICES = "COUNT(DISTINCT CASE round_id WHEN '' THEN 'row ' || id ELSE round_id END)"
"""Counts choices, not rows: the rows of one best-of-four share its `round_id`."""


@dataclass
class Choice:
    """One rated pair. `image_a`/`image_b` are content hashes of PNG files in the images folder."""

    rater: str
    idea: str
    prompt_a: str
    prompt_b: str
    image_a: str
    image_b: str
    choice: str
    seed_a: int = 0
    seed_b: int = 0
    settings: dict = field(default_factory=dict)
    model: str = ""
    step: int = 0
    round_id: str = ""
    """Shared by the rows of one best-of-four choice (the fit keeps them in one fold); '' for a pair."""
    created: float = 0.0
    id: int | None = None

    def check(self, where: str = "choice") -> Choice:
        if self.choice not in CHOICES:
            raise UsageError(f"{where}: choice {self.choice!r} is not one of {', '.join(CHOICES)}")
        for name in ("image_a", "image_b"):
            value = getattr(self, name)
            if not (isinstance(value, str) and len(value) == HASH_LEN and all(c in "0123456789abcdef" for c in value)):
                raise UsageError(f"{where}: {name} {value!r} is not an image content hash")
        for name in ("rater", "idea", "prompt_a", "prompt_b", "model", "round_id"):
            if not isinstance(getattr(self, name), str):
                raise UsageError(f"{where}: {name} must be text")
        for name in ("seed_a", "seed_b", "step"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
                raise UsageError(f"{where}: {name} must be a whole number of at least 0, got {value!r}")
        if not isinstance(self.created, (int, float)) or isinstance(self.created, bool):
            raise UsageError(f"{where}: created must be a time in seconds, got {self.created!r}")
        if not isinstance(self.settings, dict):
            raise UsageError(f"{where}: settings must be a JSON object")
        return self


class PreferenceStore:
    """Open (creating or migrating) the store at `db`; rated images live in `images_dir`."""

    def __init__(self, db: str | Path, images_dir: str | Path, max_bytes: int | None = None):
        self.db, self.images_dir, self.max_bytes = Path(db), Path(images_dir), max_bytes
        # One connection shared by the app's worker threads: one user of it at a time, so that
        # one thread's transaction never takes in another's statements.
        self.lock = threading.RLock()
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.images_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(self.db), timeout=30, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise UsageError(f"rating store {str(self.db)!r} is not a promptrl preference database: {err}") from err

    @contextmanager
    def transaction(self):
        """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` on any error: all of it or none. (The
        connection is in autocommit mode, where `with conn:` would commit statement by statement.)"""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self.transaction() as c:
            c.execute(MIGRATIONS[1][0])
            row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise UsageError(
                    f"rating store {str(self.db)!r} has schema {version}, newer than this promptrl's "
                    f"{SCHEMA_VERSION}: upgrade promptrl."
                )
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v]:
                    c.execute(statement)
            c.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # images
    def put_image(self, image) -> str:
        """Store an image (PIL, or an HxWx3 uint8 array) as PNG named by its content hash."""
        if not isinstance(image, Image.Image):
            image = Image.fromarray(np.asarray(image, dtype=np.uint8))
        if max(image.size) > MAX_IMAGE_SIDE:
            raise UsageError(f"image {image.size[0]}x{image.size[1]} is larger than {MAX_IMAGE_SIDE} pixels a side")
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="PNG")
        data = buf.getvalue()
        if len(data) > MAX_IMAGE_BYTES:
            raise UsageError(f"image of {len(data)} bytes is over the {MAX_IMAGE_BYTES}-byte limit")
        digest = hashlib.sha256(data).hexdigest()
        path = self.image_path(digest)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return digest

    def image_path(self, digest: str) -> Path:
        return self.images_dir / f"{digest}.png"

    def load_image(self, digest: str) -> Image.Image:
        return Image.open(self.image_path(digest)).convert("RGB")

    # rows
    def add(self, choice: Choice) -> int:
        """Commit one choice in its own transaction; returns its row id."""
        return self.add_all([choice])[0]

    def add_all(self, choices: list[Choice]) -> list[int]:
        """Commit the rows of one choice (a best-of-four's pairs) in one transaction: all or none."""
        for c in choices:
            c.check()
        self.check_room()
        ids = []
        rows = [self._row(c) for c in choices]  # settings that are not JSON fail here, before the transaction
        with self.transaction() as conn:
            for row in rows:
                row["created"] = row["created"] or time.time()
                cur = conn.execute(
                    f"INSERT INTO choices ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()),
                )
                ids.append(int(cur.lastrowid))
        return ids

    def check_room(self) -> None:
        """A clear error when the store (database and images) is over its `max_bytes`."""
        if self.max_bytes is not None and self.size_bytes() > self.max_bytes:
            raise UsageError(f"the rating store is over its {self.max_bytes}-byte limit (--limit prefs_mb)")

    @staticmethod
    def _row(choice: Choice) -> dict:
        row = asdict(choice)
        row.pop("id")
        try:
            row["settings"] = json.dumps(row["settings"], sort_keys=True)
        except (TypeError, ValueError) as err:
            raise UsageError(f"choice settings are not JSON: {err}") from err
        return row

    def size_bytes(self) -> int:
        """The database's files and the rated images: what `max_bytes` bounds."""
        files = [*self.db.parent.glob(self.db.name + "*"), *self.images_dir.glob("*.png")]
        return sum(p.stat().st_size for p in files if p.is_file())

    def count(self, rater: str | None = None) -> int:
        """How many choices `rater` (everyone, when None) made; a best-of-four's rows count once."""
        with self.lock:
            if rater is None:
                return self.conn.execute(f"SELECT {COUNT_CHOICES} FROM choices").fetchone()[0]
            return self.conn.execute(f"SELECT {COUNT_CHOICES} FROM choices WHERE rater = ?", (rater,)).fetchone()[0]

    def recent(self, rater: str, since: float) -> int:
        """How many choices `rater` made at or after `since` (for the per-minute bound)."""
        q = f"SELECT {COUNT_CHOICES} FROM choices WHERE rater = ? AND created >= ?"
        with self.lock:
            return self.conn.execute(q, (rater, since)).fetchone()[0]

    def choices(self, rater: str | None = None) -> list[Choice]:
        """Every row (of `rater`, when given), oldest first. A row that does not read back is an
        error that names its id."""
        cols = [f.name for f in Choice.__dataclass_fields__.values()]
        q = (
            f"SELECT {', '.join(cols)} FROM choices"
            + (" WHERE rater = ?" if rater is not None else "")
            + " ORDER BY id"
        )
        out = []
        with self.lock:
            fetched = self.conn.execute(q, (rater,) if rater is not None else ()).fetchall()
        for values in fetched:
            row = dict(zip(cols, values))
            try:
                row["settings"] = json.loads(row["settings"])
                out.append(Choice(**row).check(f"rating store {str(self.db)!r} row {row['id']}"))
            except (json.JSONDecodeError, TypeError) as err:
                raise UsageError(f"rating store {str(self.db)!r} row {row['id']} is corrupt: {err}") from err
        return out

    # moving rows
    def export_jsonl(self, out_dir: str | Path, rater: str | None = None) -> Path:
        """`out_dir/choices.jsonl` plus `out_dir/images/<hash>.png` for every row (of `rater`)."""
        out = Path(out_dir)
        (out / EXPORT_IMAGES).mkdir(parents=True, exist_ok=True)
        target = out / "choices.jsonl"
        with target.open("w", encoding="utf-8") as f:
            for c in self.choices(rater):
                row = asdict(c)
                row.pop("id")
                row["settings"] = json.dumps(row["settings"], sort_keys=True)
                f.write(json.dumps(row, sort_keys=True) + "\n")
                for digest in (c.image_a, c.image_b):
                    dst = out / EXPORT_IMAGES / f"{digest}.png"
                    if not dst.exists():
                        dst.write_bytes(self.image_path(digest).read_bytes())
        return target

    def import_jsonl(self, path: str | Path) -> int:
        """Read a file `export_jsonl` wrote (images in `images/` beside it). Every line is checked
        before any is added: a malformed one is an error naming its line, and nothing is added."""
        src = Path(path)
        if not src.is_file():
            raise UsageError(f"import file {str(src)!r} does not exist")
        rows = []
        for n, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{src}:{n}"
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise TypeError("not a JSON object")
                row.pop("id", None)
                if isinstance(row.get("settings"), str):
                    row["settings"] = json.loads(row["settings"])
                c = Choice(**row).check(where)
            except (json.JSONDecodeError, TypeError) as err:
                raise UsageError(f"{where} is not a rating row: {err}") from err
            for digest in (c.image_a, c.image_b):
                if not (src.parent / EXPORT_IMAGES / f"{digest}.png").is_file():
                    raise UsageError(f"{where}: image {digest}.png is missing from {src.parent / EXPORT_IMAGES}")
            rows.append(c)
        for c in rows:
            for digest in (c.image_a, c.image_b):
                data = (src.parent / EXPORT_IMAGES / f"{digest}.png").read_bytes()
                if hashlib.sha256(data).hexdigest() != digest:
                    raise UsageError(f"{src}: image {digest}.png does not match its name (its content hash)")
        for c in rows:
            for digest in (c.image_a, c.image_b):
                if not self.image_path(digest).exists():
                    self.image_path(digest).write_bytes((src.parent / EXPORT_IMAGES / f"{digest}.png").read_bytes())
        values = [self._row(c) for c in rows]
        with self.transaction() as conn:
            for row in values:
                conn.execute(
                    f"INSERT INTO choices ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
                )
        return len(rows)
