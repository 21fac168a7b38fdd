"""The benchmark harness: cells run in child processes, resume, and write tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from manytask.config import ConfigError
from manytask.runs import load_suite, run_suite, suite_tables
from manytask.runs._bench import Suite

SMOKE = Path(__file__).resolve().parents[2] / "benchmarks" / "smoke.yaml"


def test_smoke_suite_runs_resumes_and_writes_tables(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Results\n\n<!-- section:other start -->\nkeep me\n<!-- section:other end -->\n")
    log: list[str] = []
    ballast = np.ones(100_000_000)  # 800 MB in the bench's process: no cell may report it as its own
    other = tmp_path / "runs"  # a directory that already holds another run: bench must not touch it
    (other / "checkpoints").mkdir(parents=True)
    for name, text in (("config.yaml", "seed: 3\n"), ("metrics.csv", "step\n1\n"), ("results.json", "{}"),
                       ("checkpoints/step-000000001.safetensors", "x")):
        (other / name).write_text(text)
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    csv_path = run_suite(SMOKE, tmp_path / "results", other, docs, log=log.append)
    assert {p: p.read_bytes() for p in before} == before  # bench writes only below runs/<suite>/
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    # 1 seed x (3 single-task baselines + 2 methods)
    assert len(rows) == 5
    assert {r["method"] for r in rows} == {"single-task", "EW", "MGDA (rep.)"}
    del ballast
    # each cell's own peak (it reported the bench's, 800 MB above, through the rusage kept across exec)
    assert all(50 < float(r["peak_rss_mb"]) < 750 and r["peak_rss_of"] == "cell" for r in rows)
    assert all(float(r["seconds_per_step"]) > 0 for r in rows)
    single_score = [r for r in rows if r["method"] == "single-task" and r["task"] == "score"]
    assert single_score and all(r["category/accuracy"] == "" for r in single_score)

    text = docs.read_text()
    assert "keep me" in text and "## Harness smoke test" in text and "| Oracle (published) |" in text
    kept = other / load_suite(SMOKE).name  # what `manytask report` reads again: the suite and its rows
    assert (kept / "results.csv").read_text() == csv_path.read_text()
    assert load_suite(SMOKE) == Suite.model_validate_json((kept / "suite.json").read_text())
    assert "| EW |" in text and "Δm %" in text

    log.clear()
    run_suite(SMOKE, tmp_path / "results", tmp_path / "runs", docs, log=log.append)
    assert "5 already done, 0 to run" in log[0]


def test_tables_from_hand_made_rows() -> None:
    suite = load_suite(SMOKE)
    def row(method: str, seed: int, task: str, acc: str, rmse: str, sec: float) -> dict[str, str]:
        return {"dataset": "default", "method": method, "seed": str(seed), "task": task, "steps": "20",
                "seconds_per_step": str(sec), "peak_rss_mb": "100", "peak_rss_of": "cell",
                "primary": "category/accuracy+score/rmse+flag/accuracy", "category/accuracy": acc,
                "category/loss": "1", "score/rmse": rmse, "score/mae": "1", "flag/accuracy": "0.5",
                "flag/auroc": "0.5"}
    rows = []
    for seed in (0, 1):
        rows += [row("single-task", seed, "category", "0.5", "", 1.0), row("single-task", seed, "score", "", "2.0", 1.0),
                 row("single-task", seed, "flag", "", "", 1.0), row("EW", seed, "all", "0.6", "1.0", 1.0),
                 row("MGDA (rep.)", seed, "all", "0.5", "2.0", 3.0)]
    text = suite_tables(suite, rows)
    # EW: category +20 %, score +50 %, flag 0 %  -> Δm = 23.33 %; MGDA: 0 %
    assert "| EW | 0.6000 ± 0.0000 | 1.0000 ± 0.0000 | 23.33 ± 0.00 | 1.00 | 100 |" in text
    assert "| MGDA (rep.) | 0.5000 ± 0.0000 | 2.0000 ± 0.0000 | 0.00 ± 0.00 | 3.00 | 100 |" in text


def test_joint_single_task_baseline_table() -> None:
    suite = load_suite(SMOKE).model_copy(update={"single_task": "joint"})
    base = {"dataset": "default", "seed": "0", "task": "all", "steps": "20", "peak_rss_mb": "100",
            "peak_rss_of": "cell", "primary": "category/accuracy+score/rmse", "category/loss": "1", "score/mae": "1"}
    rows = [dict(base, method="single-task", seconds_per_step="2", **{"category/accuracy": "0.5", "score/rmse": "2.0"}),
            dict(base, method="EW", seconds_per_step="1", **{"category/accuracy": "0.55", "score/rmse": "1.0"}),
            dict(base, method="MGDA (rep.)", seconds_per_step="2", **{"category/accuracy": "0.5", "score/rmse": "2.0"})]
    text = suite_tables(suite, rows)
    assert "| single-task | 0.5000 | 2.0000 | – | – | 100 |" in text
    assert "| EW | 0.5500 | 1.0000 | 30.00 | 1.00 | 100 |" in text  # (10 % + 50 %) / 2


def test_bad_suite_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("name: ew}", "name: eww}"))
    with pytest.raises(ConfigError, match="Unknown balancer 'eww'"):
        load_suite(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite(tmp_path / "none.yaml")


def _hand_row(method: str, seed: int, task: str, acc: str, rmse: str, flag: str = "0.5") -> dict[str, str]:
    return {"dataset": "default", "method": method, "seed": str(seed), "task": task, "steps": "20",
            "seconds_per_step": "1.0", "peak_rss_mb": "100", "peak_rss_of": "cell",
            "primary": "category/accuracy+score/rmse+flag/accuracy",
            "category/accuracy": acc, "category/loss": "1", "score/rmse": rmse, "score/mae": "1",
            "flag/accuracy": flag, "flag/auroc": "0.5"}


def test_an_undefined_delta_m_is_marked_and_its_runs_named() -> None:
    """The defect: a replicate whose Δm raised ZeroDivisionError was skipped with no mark."""
    suite = load_suite(SMOKE)
    rows = []
    for seed, score_baseline in ((0, "2.0"), (1, "0.0")):  # seed 1: the score baseline is 0, so Δm is undefined
        rows += [_hand_row("single-task", seed, "category", "0.5", ""),
                 _hand_row("single-task", seed, "score", "", score_baseline),
                 _hand_row("single-task", seed, "flag", "", ""), _hand_row("EW", seed, "all", "0.6", "1.0"),
                 _hand_row("MGDA (rep.)", seed, "all", "0.5", "2.0", flag="" if seed == 0 else "0.5")]
    text = suite_tables(suite, rows)
    # EW seed 0: category +20 %, score +50 %, flag 0 % -> 23.33 %; seed 1 undefined -> mean over 1 of 2 runs
    assert "| EW | 0.6000 ± 0.0000 | 1.0000 ± 0.0000 | 23.33 (1 of 2) | 1.00 | 100 |" in text
    # MGDA: seed 0 has no flag/accuracy, seed 1 a baseline of 0 -> no run defines Δm
    assert "| MGDA (rep.) | 0.5000 ± 0.0000 | 2.0000 ± 0.0000 | – (0 of 2) | 1.00 | 100 |" in text
    assert ("- Δm % of EW is undefined on 1 of 2 runs, left out of its mean: default seed 1 "
            "(score/rmse: single-task baseline is 0).") in text
    assert ("- Δm % of MGDA (rep.) is undefined on 2 of 2 runs, left out of its mean: default seed 0 "
            "(flag/accuracy: no multi-task value), default seed 1 (score/rmse: single-task baseline is 0).") in text


def test_a_missing_step_time_is_counted_in_its_cell() -> None:
    suite = load_suite(SMOKE)
    rows = [_hand_row("single-task", 0, "category", "0.5", ""), _hand_row("single-task", 0, "score", "", "2.0"),
            _hand_row("single-task", 0, "flag", "", ""), _hand_row("EW", 0, "all", "0.6", "1.0"),
            _hand_row("MGDA (rep.)", 0, "all", "0.5", "2.0"), _hand_row("single-task", 1, "category", "0.5", ""),
            _hand_row("single-task", 1, "score", "", "2.0"), _hand_row("single-task", 1, "flag", "", ""),
            dict(_hand_row("EW", 1, "all", "0.6", "1.0"), seconds_per_step=""),
            dict(_hand_row("MGDA (rep.)", 1, "all", "0.5", "2.0"), seconds_per_step="3.0")]
    text = suite_tables(suite, rows)
    # MGDA's step time / EW: 1.0 on seed 0, undefined on seed 1 (EW's time is missing)
    assert "| MGDA (rep.) | 0.5000 ± 0.0000 | 2.0000 ± 0.0000 | 0.00 ± 0.00 | 1.00 (1 of 2) | 100 |" in text


def test_a_key_error_in_delta_m_is_a_bug_not_a_skipped_replicate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect: a KeyError (a programming error) was caught and the replicate skipped."""
    import manytask.runs._bench as bench

    def broken(*args: object) -> float:
        raise KeyError("an internal key")

    monkeypatch.setattr(bench, "delta_m", broken)
    rows = [_hand_row("single-task", 0, "category", "0.5", ""), _hand_row("single-task", 0, "score", "", "2.0"),
            _hand_row("single-task", 0, "flag", "", ""), _hand_row("EW", 0, "all", "0.6", "1.0"),
            _hand_row("MGDA (rep.)", 0, "all", "0.5", "2.0")]
    with pytest.raises(KeyError, match="an internal key"):
        suite_tables(load_suite(SMOKE), rows)


@pytest.mark.parametrize("path", sorted(SMOKE.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_suite_loads_and_names_registered_balancers(path: Path) -> None:
    from manytask.balancing import BALANCERS
    from manytask.config import parse_config
    from manytask.runs._bench import _cell_config
    from manytask.runs._build import check_config

    suite = load_suite(path)
    names = {m.balancer["name"] if isinstance(m.balancer, dict) else m.balancer.name for m in suite.methods}
    assert names <= set(BALANCERS.names()), names - set(BALANCERS.names())
    for dataset in suite.datasets:  # every run's config names registered components with valid options
        for method in suite.methods:
            check_config(parse_config(_cell_config(suite, dataset, method, suite.seeds[0])))


def test_a_method_can_override_tasks(tmp_path: Path) -> None:
    """A row such as low supervision sets per-task options (attach_at) that the others must not."""
    import yaml

    from manytask.runs._bench import _cells

    suite = yaml.safe_load(SMOKE.read_text())
    suite["methods"] = [{"label": "hps", "balancer": {"name": "ew"}},
                        {"label": "low", "model": {"name": "low_supervision"}, "tasks": {"flag": {"attach_at": 1}}}]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    configs = {c.method: c.config for c in _cells(load_suite(path)) if c.task == "all"}
    assert configs["low"]["tasks"]["flag"]["attach_at"] == 1 and configs["low"]["model"]["name"] == "low_supervision"
    assert "flag" not in configs["hps"].get("tasks", {})


def test_a_method_can_leave_tasks_out(tmp_path: Path) -> None:
    """A row such as 'the main task alone' trains only the tasks it names."""
    import yaml

    from manytask.runs._bench import _cell_config

    suite = yaml.safe_load(SMOKE.read_text())
    suite["methods"] = [{"label": "all", "balancer": {"name": "ew"}},
                        {"label": "without flag", "include_tasks": ["category", "score"]}]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    loaded = load_suite(path)
    configs = {m.label: _cell_config(loaded, loaded.datasets[0], m, 0) for m in loaded.methods}
    assert configs["without flag"]["include_tasks"] == ["category", "score"] and "include_tasks" not in configs["all"]


def test_a_method_can_pretrain_then_fine_tune(tmp_path: Path) -> None:
    """A 'pretrain, then fine-tune' row: a first run on the view task alone, the row's run starting
    from its best checkpoint (with the trunk frozen, its encoder is the pretrained one)."""
    import yaml

    from manytask.training import CheckpointManager

    suite = yaml.safe_load(SMOKE.read_text())
    suite["single_task"] = "none"
    view = {"autoencode": {"view": "reconstruct", "kind": "regression", "num_outputs": 20, "role": "auxiliary"}}
    suite["methods"] = [{"label": "pretrained", "tasks": view, "include_tasks": ["category", "score", "flag"],
                         "training": {"freeze": "shared"},
                         "pretrain": {"include_tasks": ["autoencode"], "training": {"freeze": "none"}}}]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    run_suite(path, tmp_path / "results", tmp_path / "runs", None, log=lambda _: None)
    seed = tmp_path / "runs" / "smoke" / "default" / "pretrained" / "seed-0"
    first = CheckpointManager.load(seed / "pretrain" / "checkpoints" / "best.safetensors")["model"]
    then = CheckpointManager.load(seed / "all" / "checkpoints" / "best.safetensors")["model"]
    assert any("autoencode" in k for k in first) and not any("autoencode" in k for k in then)
    encoder = [k for k in then if k.startswith("encoder.")]
    assert encoder and all(bool((first[k] == then[k]).all()) for k in encoder)
    assert yaml.safe_load((seed / "all" / "config.yaml").read_text())["training"]["init_from"] == str(seed / "pretrain")
    suite["methods"][0]["pretrain"] = {"training": {"stepz": 3}}
    path.write_text(yaml.safe_dump(suite))
    with pytest.raises(ConfigError, match="stepz"):
        load_suite(path)


def test_a_method_can_change_the_data(tmp_path: Path) -> None:
    """A row such as 'an input predicted instead of read' adds a table task or excludes a column."""
    import yaml

    from manytask.runs._bench import _cell_config

    suite = yaml.safe_load(SMOKE.read_text())
    suite["methods"] = [{"label": "plain"}, {"label": "more", "data": {"n_train": 100}}]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    loaded = load_suite(path)
    configs = {m.label: _cell_config(loaded, loaded.datasets[0], m, 0) for m in loaded.methods}
    assert configs["more"]["data"]["n_train"] == 100 and configs["plain"]["data"]["n_train"] == 200
    assert configs["more"]["data"]["n_val"] == 50  # merged over the base, key by key


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the cell process")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_a_cell_does_not_train_on_when_its_bench_is_stopped(tmp_path: Path, how: str) -> None:
    """The defect: a bench ended by a signal to its own process (a scheduler's kill, ``kill``,
    ``pkill``) left its cell training on, an orphan holding a core. SIGKILL gives the bench no
    say: the kernel ends the cell (``PR_SET_PDEATHSIG``); SIGINT to the bench alone: it ends it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    suite = tmp_path / "long.yaml"
    suite.write_text("name: long\ntitle: t\nbudget: b\nnotes: n\nseeds: [0]\n"
                     "base: {data: {name: demo}, model: {encoder: {name: mlp, hidden: [8]}},"
                     " training: {steps: 10000000, eval_every: 1000000, progress: false}}\n"
                     "methods: [{label: EW, balancer: {name: ew}}]\n"
                     "columns: [{label: acc, metric: category/accuracy}]\n")
    bench = subprocess.Popen([sys.executable, "-m", "manytask", "bench", str(suite), "--results-dir",
                              str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"), "--no-docs"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             # a shell without job control starts background jobs with SIGINT ignored,
                             # and Python keeps it so: give the bench the default, as a terminal does
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        cells: list[int] = []
        while not cells and time.monotonic() < deadline:
            time.sleep(0.5)
            cells = [p for p in _children(bench.pid) if b"manytask.runs._cell" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert cells, "the bench started no cell"
        time.sleep(3)  # the cell is past its start-up
        os.kill(bench.pid, getattr(signal, how))
        bench.wait(timeout=60)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{cells[0]}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
            if Path(f"/proc/{cells[0]}/stat").exists() and Path(f"/proc/{cells[0]}/stat").read_text().split()[2] == "Z":
                break  # a zombie: it has exited
        alive = Path(f"/proc/{cells[0]}").exists() and Path(f"/proc/{cells[0]}/stat").read_text().split()[2] != "Z"
        if alive:
            os.kill(cells[0], signal.SIGKILL)
        assert not alive, f"the cell trained on after its bench got {how}"
    finally:
        if bench.poll() is None:
            bench.kill()


def test_a_mean_column_averages_the_tasks_that_measure_its_metric_in_every_row() -> None:
    """Before the fix the single-task row of mean/accuracy was '– (0 of 4)' (the regression task's
    missing accuracy made it NaN) while multi-task rows dropped a missing value silently."""
    from manytask.runs._bench import ColumnSpec

    suite = load_suite(SMOKE).model_copy(update={"columns": [ColumnSpec(label="mean acc", metric="mean/accuracy")]})
    rows = []
    for seed in (0, 1):
        rows += [_hand_row("single-task", seed, "category", "0.5", ""), _hand_row("single-task", seed, "score", "", "2.0"),
                 _hand_row("single-task", seed, "flag", "", "", flag="0.7"), _hand_row("EW", seed, "all", "0.6", "1.0"),
                 _hand_row("MGDA (rep.)", seed, "all", "0.5", "2.0", flag="" if seed == 0 else "0.7")]
    text = suite_tables(suite, rows)
    assert "| single-task | 0.6000 ± 0.0000 |" in text  # (0.5 + 0.7) / 2: category and flag, not score
    assert "| EW | 0.5500 ± 0.0000 |" in text
    assert "| MGDA (rep.) | 0.6000 (1 of 2) |" in text  # seed 0 has no flag accuracy: counted, not dropped


def test_a_missing_cell_and_a_peak_that_is_not_the_runs_own_are_marked() -> None:
    """A multi-task cell missing from the CSV left its method's means over fewer runs with no
    mark; rows measured before each cell read its own peak RSS (the bench's: 1,009 MB in every
    census-income row) were averaged as if they were the runs'. The step-time ratio names its row."""
    suite = load_suite(SMOKE)
    rows = []
    for seed in (0, 1):
        rows += [_hand_row("single-task", seed, "category", "0.5", ""), _hand_row("single-task", seed, "score", "", "2.0"),
                 _hand_row("single-task", seed, "flag", "", ""), _hand_row("EW", seed, "all", "0.6", "1.0")]
    rows.append(dict(_hand_row("MGDA (rep.)", 0, "all", "0.5", "2.0"), peak_rss_of="", peak_rss_mb="1009"))
    text = suite_tables(suite, rows)
    assert "| MGDA (rep.) | 0.5000 (1 of 2) | 2.0000 (1 of 2) | 0.00 (1 of 2) | 1.00 | – |" in text
    assert "- Δm % of MGDA (rep.) is undefined on 1 of 2 runs, left out of its mean: default seed 1 (not run yet)." in text
    assert "- Peak RSS: 1 run(s) were measured before each cell read its own peak" in text
    assert "step time relative to 'EW' on the same data and seed; peak RSS of the run's own process" in text
