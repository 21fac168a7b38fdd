"""School as a deep multi-task dataset: 139 regression tasks (one per school), multi-input form."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ..._utils import split_groups
from ...tasks import Regression
from .._dataset import DATASETS, MultiTaskData, data_root
from .._source import TensorSource
from ._files import DataFile, dataset_dir, locate_all, standardize_columns
from ._school import load_school

__all__ = ["school", "school_files"]

FOLDER = "school"
_PYMTL = (
    "https://raw.githubusercontent.com/tjanez/PyMTL/97dfc15be3769240f2099d036ce2b55b30a56f5f/"
    "data/school/"
)
_ZHANG_LI = (
    "https://raw.githubusercontent.com/squall1988/multi-task-gradient-boosting/"
    "4f75588884b587ea3e70639cd08708f6df2c5d76/data/school/"
)
# name: SHA-256 (Argyriou splits, byte-for-byte copies of the PyMTL files)
_ARGYRIOU_SHA256 = {
    "school_b.mat": "973f1ca99d0d41a838ec6ae86001a48e7b69391eb74646b9e4fc54f62866a146",
    "school_1_indexes.mat": "030c9ca0a73d6264aa1eeac49aba1d760a1b5692cd3124667e74a7a2b7751bc5",
    "school_2_indexes.mat": "63d3a076a4cdd3de81825d3cf0c030b93bdc60e912eaed4763ee224efab163f8",
    "school_3_indexes.mat": "f7f68e3adb50db8094e230c2b83d548790379cd93ad98fadb35ff2999762dbe6",
    "school_4_indexes.mat": "02643928224056a61e25dec8d4841dba5195ed9affdc76fdc697854a2506d142",
    "school_5_indexes.mat": "6ed00a453d582dce4397f6f49120cff803c22f53cfb2dd63a3826c359c24bcdf",
    "school_6_indexes.mat": "ca853babe5b7f0f5812e7f4261f8b5e5728f1b3b06711e56a76b27b7f959f379",
    "school_7_indexes.mat": "b72105509c70f94f48c7c8b0e1359c6c0ea630c7ac588337b412f946ede62283",
    "school_8_indexes.mat": "8ad60073b135220f1a6f49fdd79b4430b6a0c8ce9925a22dcc5a09141f5b1c04",
    "school_9_indexes.mat": "0de74247d93c413b690ebb65e2e7beb1c55f05b2a2d5db46469e673a552cccf2",
    "school_10_indexes.mat": "b408742eab66cd124563493057b080fd39e5075f48b4c391c53e5f6a1a4c8df1",
}
# name: (SHA-256 of the .csv as published, SHA-256 of the `gzip -9 -n` copy in the shared data)
_ZHANG_LI_SHA256 = {
    "school_train_re1.csv": (
        "054d7994c6709726cfb14a57ecbf5d55ba5109dc8ea3965480bffec12e89d942",
        "d3cb326b4b9fbe8ecdd48dc77bb3e90a88ce100e730206c943ace37d635733f5",
    ),
    "school_train_re2.csv": (
        "72b6968e07dc036aebc712c229ce245eef494f4e6e9ac6a46519f1aa3d6159dc",
        "35fde9a1a9301438c24dc2fb6a181c52a649a2376eda8c72e1bebf35ba0b36fe",
    ),
    "school_train_re3.csv": (
        "902719a299b51632f8ef83a45d0fbe61b7c31b1d7eb0a261c74c55f008195572",
        "c56e5fc75040f424d5966e60533ae97a9615324729f2f2af59362762f02a2184",
    ),
    "school_train_re4.csv": (
        "c5fab89f86805bec92332f5fb9e4d1641dbcf20ff4c284f608be65a574dfab08",
        "f3749ebb3569995c889ed408a6474244984c128fd27243ba608173e8298cc97b",
    ),
    "school_train_re5.csv": (
        "0d913964159c740feb3d9d2e00b89ce716737260aefef71dfbf3560c220dde45",
        "59f0289ac5c313489d6620209f5bdb661708c0e504732a1aef66a726ef7b2251",
    ),
    "school_train_re6.csv": (
        "432ba56c3a1411a5e2726666ba67351e21e7223d7383bcb1f60efc6490842d6d",
        "e7446c8ff8925293111eea97c6fa1446c9395db7c9fa792c98bbb24f87a1af41",
    ),
    "school_train_re7.csv": (
        "08bbd6cb801f0ace98118e57e9132135feed86b34e1dcccfa9c6a24ee20c087d",
        "88eba0f18f8560c9c49c6afa91c6349c135e59df5ba3ca03a138dac7d79057de",
    ),
    "school_train_re8.csv": (
        "f657f6d0d02347339e81b3258a10c4dd3a1973e5bfc7f384b8c39d96e1705238",
        "7fd140856ad3227d7429b4a567a20f09739c560a3d517cd2030cc5543a851886",
    ),
    "school_train_re9.csv": (
        "21a5c8107b24cdce2a8dc92dcc4a8fa0fa1ecef2581233b37f61bb442c6fd16d",
        "5b27818a52ff688a0508b3a91be1a6724343da08aa4d5caaa4dd83dac9d7cf60",
    ),
    "school_train_re10.csv": (
        "6dbe5e5b6f41313b468b7ab6ed75a43df13fc81b5671d4c558b2effcca3a02c1",
        "31078a030d343ef1e717329e6ed1d6dded42f98496fd5e594e5ffe16409912b3",
    ),
    "school_test_re1.csv": (
        "9ee02a7b460efa7e8024a7683d0679a429e3bcc54625d4eac680e7c10e6e8d55",
        "403146e45897516506a77078801778c3ef10d9db02f99e598ab32c74fc60b0e2",
    ),
    "school_test_re2.csv": (
        "1e78c18865912be5dac982f2a21badd2bc170f81226456f5d202aa7352eb67e5",
        "706de241408eb1ca8c2297f67537ded1ad0dac9d95931e42993ce2140125e2e0",
    ),
    "school_test_re3.csv": (
        "a79b910d97dbbdf7163cb1ab753676776dad42114788e1b63c14a1d349482f07",
        "073c00846deacbb01f5928057871a772a58f7b5a4e90d1cea1c183e99b3aa1f3",
    ),
    "school_test_re4.csv": (
        "b6ab230384f8cabeaf3c7144def671fac9362e6d455ef655e95baf0c33e9ce13",
        "04ce47d6922d4f872e03aa94c8819351c4414977773ee6a73a9780838cf8e427",
    ),
    "school_test_re5.csv": (
        "b4f5d0c0397e67fd60ab25a50a3928997962e05ec79b0c4f1ad2ee71f663f184",
        "34e6eb4373fdf2660ebb2bb1d2b83e49bae8b40e33f6b5cd0f57849c4e1ea8f9",
    ),
    "school_test_re6.csv": (
        "ce8b208c051a8996ab6fcc6bf4506ad8050c47389bbc55a8a0d7a836019b07b8",
        "0afc832b2ee73d4c36f49032f4dd465ecad00dad19a334831f7674ccea99b653",
    ),
    "school_test_re7.csv": (
        "11e38d8a3fd93b52b2edab3e4530e916d3fa4e84a3de366ea40945a6b2f8c349",
        "411da32456b88b27dc9737f03daa934fc3023ff3f5916dd405ee47fbbe4533e0",
    ),
    "school_test_re8.csv": (
        "56f5740fc35cb45f4c84f52769b7b6fa01bcbef2da17d25c6265f1bd93c12927",
        "4d8c75bc2fb545c4d5b8f8513d8ad6f4369a1e9dcc0d6166e298811c260fc6e8",
    ),
    "school_test_re9.csv": (
        "e564253a4f81ff3b7e7aa63f667bd764af1bdfeddd9c4de4183a5fc8b4b9212e",
        "4ccd9f015736a504cda168baecf8bc456707db1d1f26b0001f0908cc8d19955c",
    ),
    "school_test_re10.csv": (
        "fec1878222edd2736c867ac6c91883e38c8ecbad5716097f777c2ef53f479163",
        "244b31b54ac951e7820ab270694c36d999ae54e6534bab43885b7eaa389b7b6c",
    ),
}


def school_files(protocol: str, split: int) -> list[DataFile]:
    """The files split ``split`` of ``protocol`` reads, with checksums and URLs."""
    if protocol == "argyriou":
        names = ["school_b.mat", f"school_{split}_indexes.mat"]
        return [
            DataFile(f"argyriou_splits/{n}", sha256=_ARGYRIOU_SHA256[n], url=_PYMTL + n)
            for n in names
        ]
    files = []
    for part in ("train", "test"):
        name = f"school_{part}_re{split}.csv"
        plain, gz = _ZHANG_LI_SHA256[name]
        files.append(
            DataFile(
                f"zhang_li_cikm2019_splits/{name}",
                sha256=plain,
                url=_ZHANG_LI + name,
                alternatives=(DataFile(f"zhang_li_cikm2019_splits/{name}.gz", sha256=gz),),
            )
        )
    return files



@DATASETS.register("school")
def school(
    root: str | None = None,
    protocol: Literal["argyriou", "zhang_li"] = "argyriou",
    split: int = 1,
    val_fraction: float = 0.1,
    seed: int = 0,
    standardize: bool = True,
    per_task_sources: bool = False,
    schools: list[int] | None = None,
    download: bool = False,
    verify: bool = True,
) -> MultiTaskData:
    """School (ILEA exam scores): 139 regression tasks, one per school, on a published split.

    Multi-input form: each student (row) belongs to one school, and has a label only for that
    school's task ``school_<k>`` (``k`` = 1..139, the files' task ids): the mask of task
    ``school_<k>`` is True exactly on that school's rows. By default the training data are ONE
    source holding every school (so a batch mixes schools and each task's loss is averaged over
    its own rows in the batch); ``per_task_sources=True`` gives one source per school instead,
    for a task sampler to mix. Targets are the raw exam scores, so RMSE is on the published
    scale. Inputs: the 28 columns of SOURCE.md (bias column last), standardised with the
    training rows' statistics unless ``standardize=False``.

    Splits: the published split ``split`` (1..10) of ``protocol`` gives train and test
    (``"argyriou"``: the splits of Argyriou et al. 2008, used by Jeong & Jun 2018;
    ``"zhang_li"``: those of Zhang & Li 2019). The validation set is carved from the training
    part (``val_fraction`` of each school's training rows, seeded); the published protocols have
    no validation set, so training on the remaining rows only is a (small) difference from them.

    Args:
        root: Folder holding ``school/`` (default ``$MANYTASK_DATA``, else ``./data``).
        protocol: ``"argyriou"`` or ``"zhang_li"``.
        split: Which of the 10 published splits (1..10).
        val_fraction: Fraction of each school's training rows held out for validation.
        seed: Seed of the validation split.
        standardize: Standardise the inputs with training statistics.
        per_task_sources: One training source per school instead of one for all.
        schools: Keep only these schools (ids 1..139) and their students: a smaller problem
            (e.g. the first 10 schools to relate every pair); inputs standardised on their rows.
        download: Fetch missing files (with checksums) instead of raising.
        verify: Check the files' SHA-256.
    """
    if protocol not in ("argyriou", "zhang_li"):
        raise ValueError(
            "The 'protocol' parameter of school must be 'argyriou' or 'zhang_li'. "
            f"Got {protocol!r}."
        )
    if not 1 <= split <= 10:
        raise ValueError(f"The 'split' parameter of school must be in 1..10. Got {split}.")
    locate_all(
        dataset_dir(root, FOLDER),
        school_files(protocol, split),
        "school",
        download_missing=download,
        verify=verify,
    )
    arrays = load_school(data_root(root), protocol, split)
    n_train, n_tasks = len(arrays.y_train), arrays.n_tasks
    x = np.concatenate([arrays.X_train, arrays.X_test]).astype(np.float64)
    y = torch.as_tensor(np.concatenate([arrays.y_train, arrays.y_test]), dtype=torch.float32)
    task = np.concatenate([arrays.task_train, arrays.task_test]).astype(np.int64)
    kept = list(range(n_tasks)) if schools is None else [k - 1 for k in schools]
    if schools is not None and (len(set(schools)) != len(schools) or not all(1 <= k <= n_tasks for k in schools)):
        raise ValueError(f"The 'schools' parameter of school must hold distinct ids in 1..{n_tasks}. Got {schools}.")
    train_idx, val_idx, _ = split_groups(arrays.task_train, val_fraction, 0.0, seed)
    train_idx, val_idx = (torch.from_numpy(i.numpy()[np.isin(task[i.numpy()], kept)]) for i in (train_idx, val_idx))
    if standardize:
        x = standardize_columns(x, train_idx.numpy())
    names = [f"school_{k + 1}" for k in kept]

    def part(rows: np.ndarray, name: str) -> TensorSource:
        # Every task shares the score vector; a row is labelled only for its own school.
        score = y[torch.from_numpy(rows)]
        school_of_row = torch.from_numpy(task[rows])
        return TensorSource(
            torch.as_tensor(x[rows], dtype=torch.float32),
            {task_name: score for task_name in names},
            {task_name: school_of_row == k for k, task_name in zip(kept, names)},
            name=name,
        )

    train = part(train_idx.numpy(), "school/train")
    if per_task_sources:
        sources = {name: train.only([name], f"school/train/{name}") for name in names}
    else:
        sources = {"school": train}
    test_idx = torch.arange(n_train, len(y))
    test_idx = test_idx[torch.from_numpy(np.isin(task[test_idx.numpy()], kept))]
    return MultiTaskData(
        tasks=tuple(Regression(name) for name in names),
        train=sources,
        val=part(val_idx.numpy(), "school/val") if len(val_idx) else None,
        test=part(test_idx.numpy(), "school/test"),
        input_info={"in_features": x.shape[1]},
        description=(
            f"School ({protocol} split {split}): {len(names)} schools, {len(train_idx)} train / "
            f"{len(val_idx)} val (seed {seed}) / {len(test_idx)} test students"
        ),
    )
