"""The daily-factors demo: its task functions run in sequence, its manifest, its report CLI."""

from __future__ import annotations

import csv
import importlib
import inspect
import json
import math
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples import quant, synthetic
from tideflow.errors import PermanentError
from tideflow.model import Workflow

REPO = Path(__file__).resolve().parents[2]
DATE = "2026-11-30"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every step once on the default 60-symbol universe, as the engine would call them."""
    root = tmp_path_factory.mktemp("demo")
    data = str(root / "data")
    symbols = quant.list_symbols(date=DATE)
    fetched = [quant.fetch_bars(symbol=s, date=DATE, data_dir=data, latency_ms=0) for s in symbols]
    cleaned = quant.clean_bars(fetched=fetched, data_dir=data, date=DATE)
    factors = quant.compute_factors(cleaned=cleaned, date=DATE)
    written = quant.write_results(factors=factors, db_path=str(root / "factors.db"), date=DATE)
    return {
        "root": root,
        "symbols": symbols,
        "fetched": fetched,
        "cleaned": cleaned,
        "factors": factors,
        "written": written,
    }


def _read(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_manifest_is_a_valid_workflow_calling_existing_functions() -> None:
    doc = yaml.safe_load((REPO / "examples" / "daily-factors.yaml").read_text())
    workflow = Workflow.model_validate(doc)
    assert workflow.metadata.name == "daily-factors"
    assert {p.name: p.default for p in workflow.spec.params} == {
        "trade_date": "2026-11-30",
        "universe_size": 60,
        "data_dir": ".tideflow/demo/data",
        "results_db": ".tideflow/demo/factors.db",
    }
    for task in workflow.spec.tasks:
        assert task.function is not None
        module, attr = task.function.split(":")
        fn = getattr(importlib.import_module(module), attr)
        # The engine calls fn(**args): every argument must be accepted and every required one given.
        inspect.signature(fn).bind(**(task.args or {}))
    fetch = workflow.task("fetch-bars")
    assert fetch.pool == "vendor-api"
    assert fetch.retry is not None and fetch.retry.limit == 2
    assert fetch.timeout_seconds == 30


def test_the_universe_is_deterministic_and_nests() -> None:
    symbols = quant.list_symbols(date=DATE, universe_size=60)
    assert len(set(symbols)) == 60
    assert symbols == sorted(symbols) == quant.list_symbols(date=DATE, universe_size="60")  # type: ignore[arg-type]
    assert set(symbols) < set(quant.list_symbols(date=DATE, universe_size=100))


@pytest.mark.parametrize("bad", ["2026-11-29", "30/11/2026", "2001-01-02"])
def test_a_date_outside_the_calendar_is_a_permanent_error(bad: str) -> None:
    with pytest.raises(PermanentError):
        quant.list_symbols(date=bad)


def test_a_symbol_that_is_not_a_ticker_never_reaches_the_disk(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="suspicious"):
        quant.fetch_bars(symbol="../etc", date=DATE, data_dir=str(tmp_path), latency_ms=0)
    assert not any(tmp_path.iterdir())


def test_downloads_are_deterministic(tmp_path: Path, pipeline: dict[str, Any]) -> None:
    first = pipeline["fetched"][0]
    again = quant.fetch_bars(
        symbol=first["symbol"], date=DATE, data_dir=str(tmp_path), latency_ms=0
    )
    assert Path(again["path"]).read_bytes() == Path(first["path"]).read_bytes()
    assert again["path"] == str(tmp_path / "raw" / DATE / f"{first['symbol']}.csv")


def test_history_is_consistent_across_download_dates() -> None:
    friday = synthetic.bars("SOLA", date(2026, 11, 27), 250)
    monday = synthetic.bars("SOLA", date(2026, 11, 30), 250)
    assert friday[1:] == monday[:-1]


def test_outputs_are_plain_json(pipeline: dict[str, Any]) -> None:
    for key in ("symbols", "fetched", "cleaned", "factors", "written"):
        assert json.loads(json.dumps(pipeline[key])) == pipeline[key]


def test_every_injected_problem_is_cleaned(pipeline: dict[str, Any]) -> None:
    injected = [p.split(" ")[0] for f in pipeline["fetched"] for p in f["injected"]]
    bad, duplicate, missing = (injected.count(k) for k in ("bad", "duplicate", "missing"))
    assert bad and duplicate and missing, "the demo should show every kind of problem"
    cleaned = pipeline["cleaned"]
    assert cleaned["dropped"] == {"malformed": 0, "bad_price": bad, "duplicate": duplicate}
    # A dropped bad print leaves a hole, filled like a missing day.
    assert cleaned["filled"] == missing + bad
    assert cleaned["rows_in"] == sum(f["rows"] for f in pipeline["fetched"])
    assert cleaned["rows_out"] == cleaned["symbols"] * 250 == 60 * 250

    calendar = synthetic.sessions(date(2025, 1, 1), date(2026, 11, 30))
    expected_days = [d.isoformat() for d in calendar]
    for path in cleaned["paths"]:
        rows = _read(path)
        assert [r["date"] for r in rows] == expected_days[-250:]
        assert all(0 < float(r["low"]) <= float(r["close"]) <= float(r["high"]) for r in rows)


def test_a_missing_day_is_forward_filled_from_the_previous_close(pipeline: dict[str, Any]) -> None:
    fetched = next(f for f in pipeline["fetched"] if any("missing" in p for p in f["injected"]))
    day = next(p for p in fetched["injected"] if "missing" in p).split()[-1]
    rows = _read(Path(pipeline["cleaned"]["paths"][0]).with_name(f"{fetched['symbol']}.csv"))
    i = next(i for i, r in enumerate(rows) if r["date"] == day)
    assert rows[i]["filled"] == "1" and rows[i]["volume"] == "0"
    assert rows[i]["close"] == rows[i]["open"] == rows[i - 1]["close"]


def _write_clean(path: Path, closes: list[float], volume: int = 1000) -> None:
    days = synthetic.sessions(date(2026, 1, 1), date.fromisoformat(DATE))[-len(closes) :]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(quant.CLEAN_FIELDS)
        for day, close in zip(days, closes, strict=True):
            writer.writerow((day.isoformat(), close, close, close, close, volume, 0))


def test_factors_of_hand_checkable_series(tmp_path: Path) -> None:
    # GROW gains exactly 1% a day; FLAT does nothing until a 2% jump on the last day.
    grow = [100 * 1.01**i for i in range(70)]
    flat = [50.0] * 69 + [51.0]
    _write_clean(tmp_path / "GROW.csv", grow)
    _write_clean(tmp_path / "FLAT.csv", flat)
    rows = quant.compute_factors(
        cleaned={"paths": [str(tmp_path / "GROW.csv"), str(tmp_path / "FLAT.csv")]}, date=DATE
    )
    by = {r["symbol"]: r for r in rows}
    assert [r["symbol"] for r in rows] == ["FLAT", "GROW"]
    g, f = by["GROW"], by["FLAT"]
    assert g["ret_1d"] == pytest.approx(0.01)
    assert g["ret_5d"] == pytest.approx(1.01**5 - 1)
    assert g["ret_20d"] == pytest.approx(1.01**20 - 1)
    assert g["mom_60_5"] == pytest.approx(1.01**55 - 1)
    assert g["vol_20d"] == pytest.approx(0, abs=1e-12)
    assert g["adv_20d"] == pytest.approx(sum(grow[-20:]) / 20 * 1000)
    assert f["ret_1d"] == f["ret_5d"] == f["ret_20d"] == pytest.approx(0.02)
    assert f["mom_60_5"] == 0
    # 19 zero returns and one of 2%: sample stdev 0.02/sqrt(20), annualised.
    assert f["vol_20d"] == pytest.approx(0.02 / math.sqrt(20) * math.sqrt(252))
    # With two names every z-score is +/-1. GROW wins momentum and low volatility,
    # loses reversal (it rose more over 5 days): (1 - 1 + 1) / 3.
    assert g["composite"] == pytest.approx(1 / 3)
    assert f["composite"] == pytest.approx(-1 / 3)


def test_short_histories_are_skipped_and_stale_ones_refused(tmp_path: Path) -> None:
    _write_clean(tmp_path / "NEW.csv", [10.0] * 30)
    assert quant.compute_factors(cleaned={"paths": [str(tmp_path / "NEW.csv")]}, date=DATE) == []
    with pytest.raises(PermanentError, match="expected 2026-12-01"):
        quant.compute_factors(cleaned={"paths": [str(tmp_path / "NEW.csv")]}, date="2026-12-01")


def _db_rows(db: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT * FROM factor_values ORDER BY date, symbol, factor").fetchall()
    finally:
        conn.close()


def test_write_results_replaces_a_date_and_keeps_the_others(
    tmp_path: Path, pipeline: dict[str, Any]
) -> None:
    db = str(tmp_path / "sub" / "f.db")
    factors = pipeline["factors"]
    assert quant.write_results(factors=factors, db_path=db, date=DATE) == {
        "db": db,
        "date": DATE,
        "symbols": 60,
        "rows": 60 * len(quant.FACTORS),
    }
    first = _db_rows(db)
    quant.write_results(factors=factors, db_path=db, date=DATE)
    assert _db_rows(db) == first

    changed = [{**factors[0], "composite": 9.0}]
    other_day = [{**row, "date": "2026-11-27"} for row in factors[:2]]
    quant.write_results(factors=other_day, db_path=db, date="2026-11-27")
    quant.write_results(factors=changed, db_path=db, date=DATE)
    rows = _db_rows(db)
    assert sum(r[0] == "2026-11-27" for r in rows) == 2 * len(quant.FACTORS)
    symbol = factors[0]["symbol"]
    assert [r for r in rows if r[0] == DATE] == [
        (DATE, symbol, name, float(changed[0][name])) for name in sorted(quant.FACTORS)
    ]


def test_write_results_refuses_rows_of_another_date(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="2026-11-27"):
        quant.write_results(
            factors=[{"symbol": "A", "date": "2026-11-27"}],
            db_path=str(tmp_path / "f.db"),
            date=DATE,
        )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples.quant", "report", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_report_cli_prints_the_best_and_worst_symbols(pipeline: dict[str, Any]) -> None:
    ranked = sorted(pipeline["factors"], key=lambda r: -r["composite"])
    done = _cli("--db", pipeline["written"]["db"], "--top", "5")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"Daily factors for {DATE}  (60 symbols" in out
    assert "Top 5 by composite" in out and "Bottom 5 by composite" in out
    lines = out.splitlines()
    top_line = lines.index(next(line for line in lines if line.startswith("Top 5"))) + 2
    assert lines[top_line].split()[:2] == ["1", ranked[0]["symbol"]]
    assert ranked[-1]["symbol"] in out
    # The task function renders the same report.
    assert quant.report(written=pipeline["written"], date=DATE, top=5) == out.rstrip("\n")


def test_report_cli_without_a_database_says_so_and_exits_1(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    done = _cli("--db", str(missing))
    assert done.returncode == 1
    assert f"no results database at {missing}" in done.stderr
    assert not missing.exists()


def test_report_of_a_date_without_results_is_an_error(pipeline: dict[str, Any]) -> None:
    done = _cli("--db", pipeline["written"]["db"], "--date", "2026-11-27")
    assert done.returncode == 1
    assert "no factor values for 2026-11-27" in done.stderr
