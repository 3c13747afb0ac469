"""Damaged replays never fail a batch: seeded fuzzing of the real corpus through ingestion.

Real users' files arrive with flipped bits, cut tails, garbage spans and stitched halves. Each
such file must end as exactly one ``games`` row (ok, repaired or quarantined with a reason),
and whatever lands must pass every blocking partition check; a quarantined game's frames and
items are never visible to readers. The damaged copies are generated at test time, from a
fixed seed, into a pytest tmp folder.
"""

from __future__ import annotations

import contextlib
import re
import struct
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exphil_pipeline.definitions import build_definitions
from exphil_pipeline.orchestration.jobs import INGEST_JOB_NAME
from exphil_pipeline.orchestration.partitions import replay_batches
from exphil_pipeline.replays import partition_checks
from exphil_pipeline.replays.batches import BatchRegistry, ReplayBatch
from exphil_pipeline.replays.duckdb_catalog import build_catalog, connect_readonly
from exphil_pipeline.replays.frame_tables import frames_table, items_table
from exphil_pipeline.replays.game_validation import InvalidGame, validate_game
from exphil_pipeline.replays.games_table import GameRecord, describe_end, describe_start
from exphil_pipeline.replays.ingest import BatchResult, IngestSettings, ingest_batch
from exphil_pipeline.replays.reader import ReplayRejectedError, read_replay
from exphil_pipeline.replays.repair import NotAReplayError, event_sizes, repair_replay_bytes
from exphil_pipeline.replays.slippi_events import RAW_HEADER, Command
from exphil_pipeline.storage.layout import DataLayout
from tests.conftest import CatalogEntry

SEED = 20_260_805
# Sources are the corpus' smaller replays, so ~100 damaged copies ingest in seconds.
MAX_SOURCE_BYTES = 1_500_000
BATCH = "damaged"
STREAM_START = len(RAW_HEADER) + 4  # the raw event stream follows the header and its length
# How many damaged copies of each kind the fuzz batch holds (all drawn from SEED).
DAMAGE_COUNTS = {
    "bitflip": 16,  # one bit anywhere in the file
    "bitflips": 16,  # 2-64 bits anywhere
    "bitflips_frames": 24,  # 1-16 bits in the frame events (past the game start and codes)
    "bitflips_game_start": 12,  # 1-4 bits in the Game Start event (characters, stage, ...)
    "truncate": 16,  # cut at a random point
    "crash_truncate": 8,  # cut, and the raw length zeroed as a Dolphin crash leaves it
    "raw_length": 6,  # a random declared raw length
    "overwrite": 16,  # random bytes over a span of the event stream
    "splice": 14,  # head of one replay + tail of another
    "random_bytes": 4,  # no replay at all
    "random_stream": 4,  # the replay header, then random bytes
}
FIXED_FILES = ["clean", "clean_copy", "empty", "header_only", "header_and_length"]
_FIRST_FRAME_EVENTS = {Command.FRAME_START, Command.PRE_FRAME}
BLOCKING_CHECKS = {
    "frames_schema": partition_checks.check_frames_schema,
    "frame_ids_contiguous": partition_checks.check_frames_contiguous,
    "rows_per_game": partition_checks.check_rows_per_game,
    "positions_in_bounds": partition_checks.check_positions_in_bounds,
}


def _frames_begin(data: bytes) -> int:
    """File offset of the first frame event: past the payload table, the Game Start and (3.x)
    the Gecko code list, so damage placed after it hits frame data."""
    raw = memoryview(data)[STREAM_START:]
    try:
        sizes, offset = event_sizes(raw)
    except NotAReplayError:
        return STREAM_START
    while offset < len(raw) and raw[offset] not in _FIRST_FRAME_EVENTS:
        if raw[offset] not in sizes:
            break
        offset += 1 + sizes[raw[offset]]
    return min(len(data) - 1, STREAM_START + offset)


def _game_start_span(data: bytes) -> tuple[int, int]:
    sizes, offset = event_sizes(memoryview(data)[STREAM_START:])
    begin = STREAM_START + offset
    return begin + 1, begin + 1 + sizes[Command.GAME_START]


def _flip(data: bytes, rng: np.random.Generator, count: int, low: int, high: int) -> bytes:
    out = bytearray(data)
    for position in rng.integers(low, high, size=count):
        out[position] ^= 1 << int(rng.integers(8))
    return bytes(out)


def _damage(kind: str, data: bytes, other: bytes, rng: np.random.Generator) -> bytes:
    """One damaged copy of ``data`` (``other``: a second replay, for splices)."""
    n = len(data)
    frames_at = _frames_begin(data)
    if kind == "bitflip":
        return _flip(data, rng, 1, 0, n)
    if kind == "bitflips":
        return _flip(data, rng, int(rng.integers(2, 65)), 0, n)
    if kind == "bitflips_frames":
        return _flip(data, rng, int(rng.integers(1, 17)), frames_at, n)
    if kind == "bitflips_game_start":
        low, high = _game_start_span(data)
        return _flip(data, rng, int(rng.integers(1, 5)), low, high)
    if kind == "truncate":
        return data[: int(rng.integers(0, n))]
    if kind == "crash_truncate":
        cut = bytearray(data[: int(rng.integers(frames_at, n))])
        cut[len(RAW_HEADER) : STREAM_START] = struct.pack(">i", 0)
        return bytes(cut)
    if kind == "raw_length":
        length = int(rng.integers(-(2**31), 2**31))
        return data[: len(RAW_HEADER)] + struct.pack(">i", length) + data[STREAM_START:]
    if kind == "overwrite":
        span = int(rng.integers(1, 4097))
        at = int(rng.integers(STREAM_START, max(STREAM_START + 1, n - span)))
        junk = rng.integers(0, 256, size=span, dtype=np.uint8).tobytes()
        return data[:at] + junk + data[at + span :]
    if kind == "splice":
        head = data[: int(rng.integers(STREAM_START, n))]
        return head + other[int(rng.integers(STREAM_START, len(other))) :]
    if kind == "random_bytes":
        return rng.integers(0, 256, size=int(rng.integers(1, 65_536)), dtype=np.uint8).tobytes()
    if kind == "random_stream":
        junk = rng.integers(0, 256, size=int(rng.integers(1, 65_536)), dtype=np.uint8).tobytes()
        return RAW_HEADER + struct.pack(">i", len(junk)) + junk
    raise AssertionError(kind)


def write_damaged_batch(sources: list[Path], folder: Path, seed: int) -> dict[str, str]:
    """Write the fuzz batch into ``folder``; returns file name -> damage kind."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    blobs = {p.name: p.read_bytes() for p in sources}
    names = sorted(blobs)
    kinds: dict[str, str] = {}

    def put(kind: str, source: str, data: bytes) -> None:
        name = f"{len(kinds):03d}-{kind}-{Path(source).stem}.slp"
        (folder / name).write_bytes(data)
        kinds[name] = kind

    clean = names[int(rng.integers(len(names)))]
    put("clean", clean, blobs[clean])
    put("clean_copy", clean, blobs[clean])  # same bytes twice: one game, one duplicate path
    put("empty", "none", b"")
    put("header_only", "none", RAW_HEADER)
    put("header_and_length", "none", RAW_HEADER + struct.pack(">i", 0))
    for kind, count in DAMAGE_COUNTS.items():
        for _ in range(count):
            source, other = (names[int(i)] for i in rng.integers(len(names), size=2))
            put(kind, source, _damage(kind, blobs[source], blobs[other], rng))
    return kinds


def _error_kind(status: str, error: str) -> str:
    """What a games row's error says, without its values: what the summary line counts."""
    parts = error.split("; ")
    if status == "repaired":
        # The first part is peppi's refusal; the repair's own findings follow.
        text = "repaired: " + (parts[1] if len(parts) > 1 else parts[0])
    else:
        text = parts[0].split(" (peppi:")[0].split(" (original error")[0]
        if text.startswith("impossible value: ") and " = " in text:
            field, _, rest = text.removeprefix("impossible value: ").partition(" = ")
            text = f"impossible value: {field}: {rest.rsplit(': ', 1)[-1]}"
        text = text.replace("unreadable even after rebuilding its event stream", "unreadable")
    text = text.splitlines()[0]
    text = re.sub(r"0x[0-9a-f]+", "<hex>", text)
    return re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", text)[:80]


@dataclass(frozen=True)
class DamagedStore:
    folder: Path
    layout: DataLayout
    kinds: dict[str, str]
    result: BatchResult


def _small_sources(real_replays: Path, catalog: list[CatalogEntry]) -> list[Path]:
    return [real_replays / e.file for e in catalog if e.bytes < MAX_SOURCE_BYTES]


@pytest.fixture(scope="module")
def damaged_batch(
    real_replays: Path, catalog: list[CatalogEntry], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("damaged") / BATCH
    return folder, write_damaged_batch(_small_sources(real_replays, catalog), folder, SEED)


@pytest.fixture(scope="module")
def damaged_store(
    damaged_batch: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> DamagedStore:
    folder, kinds = damaged_batch
    layout = DataLayout(tmp_path_factory.mktemp("damaged-home"))
    # The call itself is the first assertion: it must not raise, whatever the files hold.
    result = ingest_batch(ReplayBatch(BATCH, folder), layout, IngestSettings(workers=2))
    build_catalog(layout)
    statuses = Counter(g.status for g in result.games)
    errors = Counter(_error_kind(g.status, g.error) for g in result.games if g.error)
    print(
        f"\ndamaged replays: {len(kinds)} files tried in {result.seconds:.1f}s -> "
        f"{len(result.games)} games: {statuses['ok']} ok, {statuses['repaired']} repaired, "
        f"{statuses['quarantined']} quarantined; error kinds: "
        + " | ".join(f"{kind} x{n}" for kind, n in sorted(errors.items()))
    )
    return DamagedStore(folder, layout, kinds, result)


def test_the_fuzz_batch_is_large_and_varied(damaged_batch: tuple[Path, dict[str, str]]) -> None:
    folder, kinds = damaged_batch
    assert len(kinds) >= 100
    assert set(kinds.values()) == set(DAMAGE_COUNTS) | set(FIXED_FILES)
    assert sorted(p.name for p in folder.glob("*.slp")) == sorted(kinds)


def test_every_file_has_exactly_one_games_row(damaged_store: DamagedStore) -> None:
    layout, result = damaged_store.layout, damaged_store.result
    games = pq.read_table(layout.games_file(BATCH)).to_pylist()
    assert len(games) == len(result.games)
    seen: Counter[str] = Counter()
    for game in games:
        seen[Path(game["source_path"]).name] += 1
        seen.update(Path(p).name for p in game["duplicate_paths"] or [])
    seen.update(Path(p).name for p in result.duplicates_elsewhere)
    assert seen == Counter(damaged_store.kinds.keys()), "files with no row, or with more than one"
    for game in games:
        assert game["status"] in {"ok", "repaired", "quarantined"}, game["source_path"]
        if game["status"] != "ok":
            assert game["error"], game["source_path"]
    by_name = {Path(g["source_path"]).name: g for g in games}
    assert by_name["002-empty-none.slp"]["status"] == "quarantined"
    assert by_name["003-header_only-none.slp"]["status"] == "quarantined"
    # Both clean copies are one game, and it is not damaged.
    kind = {g["game_id"]: damaged_store.kinds[Path(g["source_path"]).name] for g in games}
    [clean] = [g for g in games if kind[g["game_id"]] in {"clean", "clean_copy"}]
    assert clean["status"] == "ok"
    assert len(clean["duplicate_paths"]) == 1


def test_every_blocking_check_passes(damaged_store: DamagedStore) -> None:
    for name, check in BLOCKING_CHECKS.items():
        verdict = check(damaged_store.layout, BATCH)
        assert verdict.passed, (name, verdict.description, verdict.metadata)


def test_no_frame_or_item_of_a_quarantined_game_is_visible(damaged_store: DamagedStore) -> None:
    layout, result = damaged_store.layout, damaged_store.result
    quarantined = {g.game_id for g in result.games if g.status == "quarantined"}
    landed = {g.game_id for g in result.games if g.status != "quarantined"}
    assert quarantined and landed
    for table in ("frames", "items"):
        stems = {p.stem for p in layout.table_partition(table, BATCH).glob("*.parquet")}
        assert not stems & quarantined, table
        assert stems <= landed, table
    con = connect_readonly(layout)
    try:
        for table in ("frames", "items"):
            visible = {r[0] for r in con.sql(f"SELECT DISTINCT game_id FROM {table}").fetchall()}
            assert not visible & quarantined, table
        visible_frames = {r[0] for r in con.sql("SELECT DISTINCT game_id FROM frames").fetchall()}
        assert visible_frames == landed
    finally:
        con.close()


@pytest.mark.timeout(300)
def test_the_dagster_run_of_the_damaged_batch_succeeds(
    damaged_batch: tuple[Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One bad game never fails a batch: the asset run succeeds and every check passes."""
    folder, kinds = damaged_batch
    monkeypatch.setenv("EXPHIL_HOME", str(tmp_path / "home"))
    BatchRegistry(DataLayout.from_env()).register(BATCH, folder)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(replay_batches.name, [BATCH])
    job = build_definitions().resolve_job_def(INGEST_JOB_NAME)
    # A fuzz batch is mostly damaged on purpose: the (non-blocking) share warning is not the
    # subject here, so its threshold is lifted.
    config = {"workers": 2, "max_quarantine_share": 1.0}
    result = job.execute_in_process(
        instance=instance,
        partition_key=BATCH,
        run_config={"ops": {"ingest_replay_batch": {"config": config}}},
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {**dict.fromkeys(BLOCKING_CHECKS, True), "quarantined_share": True}
    metadata = {
        tuple(e.asset_key.path): e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    games = metadata[("games",)]
    counted = sum(games[f"games_{s}"].value for s in ("ok", "repaired", "quarantined"))
    assert counted == games["games"].value == len(kinds) - 1  # the clean copy is a duplicate


# --- The repair path, property-based --------------------------------------------------------

# A replay before Slippi 3.0 (no frame bookends) and one after.
HYPOTHESIS_SOURCES = ("js-nametags.slp", "peppi-short_game_tbh10.slp")


@dataclass(frozen=True)
class Truncate:
    at: float  # share of the file kept


@dataclass(frozen=True)
class Flip:
    bits: tuple[int, ...]  # bit positions, wrapped onto the file


@dataclass(frozen=True)
class Overwrite:
    at: int
    junk: bytes


@dataclass(frozen=True)
class Resize:
    entry: int  # which entry of the Event Payloads table, wrapped onto the table
    size: int  # the payload size it declares instead


_operations = st.one_of(
    st.builds(Truncate, st.floats(0.0, 1.0)),
    st.builds(Resize, st.integers(0, 15), st.integers(0, 8) | st.integers(0, 0xFFFF)),
    st.builds(Flip, st.lists(st.integers(0, 2**24), min_size=1, max_size=16).map(tuple)),
    st.builds(Overwrite, st.integers(0, 2**20), st.binary(min_size=1, max_size=256)),
)


def _apply(data: bytes, operation: Truncate | Flip | Overwrite | Resize) -> bytes:
    if not data:
        return data
    if isinstance(operation, Truncate):
        return data[: int(len(data) * operation.at)]
    out = bytearray(data)
    if isinstance(operation, Resize):
        # The table's entries (command, uint16 size) start 2 bytes into the stream.
        entries = (out[STREAM_START + 1] - 1) // 3 if len(out) > STREAM_START + 1 else 0
        at = STREAM_START + 2 + 3 * (operation.entry % max(entries, 1)) + 1
        if entries and at + 2 <= len(out):
            out[at : at + 2] = struct.pack(">H", operation.size)
        return bytes(out)
    if isinstance(operation, Flip):
        for bit in operation.bits:
            out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
        return bytes(out)
    at = operation.at % len(out)
    out[at : at + len(operation.junk)] = operation.junk
    return bytes(out)


@pytest.fixture(scope="module")
def hypothesis_sources(real_replays: Path) -> list[bytes]:
    return [(real_replays / name).read_bytes() for name in HYPOTHESIS_SOURCES]


@pytest.mark.timeout(300)
def test_repair_and_read_accept_or_reject_damaged_bytes_cleanly(
    hypothesis_sources: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever the damage, the repair path either reads a replay or refuses it with its own
    error type; a replay it reads either validates or raises :class:`InvalidGame`."""
    scratch = tmp_path_factory.mktemp("hypothesis")

    @settings(
        max_examples=100,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        source=st.sampled_from(range(len(hypothesis_sources))),
        operations=st.lists(_operations, min_size=1, max_size=3),
    )
    def check(source: int, operations: list[Truncate | Flip | Overwrite | Resize]) -> None:
        data = hypothesis_sources[source]
        for operation in operations:
            data = _apply(data, operation)
        with contextlib.suppress(NotAReplayError):
            repair_replay_bytes(data)
        with tempfile.NamedTemporaryFile(suffix=".slp", dir=scratch, delete=False) as f:
            f.write(data)
        path = Path(f.name)
        try:
            parsed = read_replay(path)
        except ReplayRejectedError:
            return
        finally:
            path.unlink()
        # What ingest_file does with a replay that reads: none of it may raise but InvalidGame.
        record = GameRecord("g", str(path), len(data), status="ok")
        describe_start(record, parsed.start, parsed.metadata)
        describe_end(record, parsed.end, parsed.end_method_code)
        frames = frames_table("g", parsed.frames, parsed.slot_updates)
        items_table("g", parsed.frames)
        with contextlib.suppress(InvalidGame):
            validate_game(frames, record.stage)

    check()


# --- Damage the fuzzing above rarely reaches, pinned down ------------------------------------


def _stream(raw: bytes) -> bytes:
    return RAW_HEADER + struct.pack(">i", len(raw)) + raw


# Event Payloads tables declaring fewer bytes than an event always holds, with the stream
# ending right after such an event (each once made the stream walker read past the end).
TOO_SHORT_PAYLOADS = {
    "game start of 0 bytes": b"\x35\x04\x36\x00\x00" + b"\x36",
    "game end of 0 bytes": b"\x35\x07\x36\x00\x03\x39\x00\x00" + b"\x36\x03\x00\x00" + b"\x39",
    "pre-frame of 1 byte": b"\x35\x07\x36\x00\x03\x37\x00\x01" + b"\x36\x01\x07\x01" + b"\x37\x00",
}


@pytest.mark.parametrize("raw", TOO_SHORT_PAYLOADS.values(), ids=TOO_SHORT_PAYLOADS.keys())
def test_a_payload_table_too_short_for_its_events_is_refused(raw: bytes, tmp_path: Path) -> None:
    with pytest.raises(NotAReplayError, match="Event Payloads event is malformed"):
        repair_replay_bytes(_stream(raw))
    path = tmp_path / "short.slp"
    path.write_bytes(_stream(raw))
    with pytest.raises(ReplayRejectedError, match="Event Payloads event is malformed"):
        read_replay(path)


def test_a_flipped_bit_in_the_metadata_start_time_costs_at_most_its_game(
    real_replays: Path, tmp_path: Path
) -> None:
    """The metadata block sits after the event stream; a flipped bit in its ``startAt`` string
    (here '2019-...' -> ':019-...') leaves a replay peppi still reads."""
    data = bytearray((real_replays / "js-nametags.slp").read_bytes())
    value = data.index(b"startAtSU") + len(b"startAtSU") + 1  # past the string's length byte
    data[value] ^= 1 << 3
    folder = tmp_path / "metadata"
    folder.mkdir()
    (folder / "start-time-flipped.slp").write_bytes(bytes(data))
    (folder / "clean.slp").write_bytes((real_replays / "js-ntsc.slp").read_bytes())
    layout = DataLayout(tmp_path / "home")
    result = ingest_batch(ReplayBatch("metadata", folder), layout, IngestSettings(workers=1))
    status = {Path(g.source_path).name: g.status for g in result.games}
    assert status["clean.slp"] == "ok"
    assert status["start-time-flipped.slp"] in {"ok", "repaired", "quarantined"}
