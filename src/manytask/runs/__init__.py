"""Runs from configs: build, train, and compare against single-task baselines."""

from ._bench import Suite, load_suite, run_suite, suite_tables
from ._build import Experiment, build_experiment, check_config, load_data, save_config, select_tasks
from ._compare import Comparison, ComparisonRow, compare
from ._export import ExportError, export_model, export_run
from ._linear import LinearRun, fit_linear_run
from ._predict import encode_rows, evaluate_file, predict, predict_frame
from ._relate import Relation, relate
from ._run_dir import RESUMABLE_KEYS, RunDirError
from ._saved import LoadedRun, load_run
from ._train import RunResult, train

__all__ = [
    "RESUMABLE_KEYS",
    "RunDirError",
    "Comparison",
    "Suite",
    "load_suite",
    "run_suite",
    "suite_tables",
    "ComparisonRow",
    "Experiment",
    "ExportError",
    "LinearRun",
    "LoadedRun",
    "Relation",
    "RunResult",
    "build_experiment",
    "check_config",
    "compare",
    "encode_rows",
    "evaluate_file",
    "export_model",
    "export_run",
    "fit_linear_run",
    "load_data",
    "load_run",
    "predict",
    "predict_frame",
    "relate",
    "save_config",
    "select_tasks",
    "train",
]
