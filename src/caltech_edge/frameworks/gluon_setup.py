"""Everything the Gluon trainer does before its first epoch.

Checks the call, writes the run's inputs (split.json, config.json, classes.txt), builds the
network, its strategy plan and trainer, and loads the resume checkpoint when there is one.
:func:`caltech_edge.frameworks.gluon.train` then runs the epochs on what this returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..card import write_class_names
from ..config import Framework, TrainConfig
from ..data.splits import Split
from ..data.transforms import PreprocessSpec
from ..errors import ConfigError
from ..rundir import RunDir
from ..train.common import FitState, resolve_split
from . import gluon_loop as loop
from .gluon_models import create_gluon_model, gluon_arch

if TYPE_CHECKING:  # imported when training starts (the module stays cheap to import)
    from ..data.augment import AugmentSpec

_NOTES_PRECISION = "Gluon trains in fp32 on this CPU; precision={} was not applied"


@dataclass
class Setup:
    """The run's fixed inputs, decided (and written to the run) before the first epoch.

    Bundled so the training steps take one argument instead of a dozen.
    """

    config: TrainConfig
    arch: str
    run: RunDir
    ckpt: Path
    ds: Any
    split: Split
    spec: PreprocessSpec
    augment: AugmentSpec
    notes: list[str]


@dataclass
class Model:
    """The network with its strategy plan (what is frozen) and its trainer (optimizer)."""

    net: Any
    plan: loop.Plan
    trainer: Any


@dataclass
class Fit:
    """What the epochs change and the resume checkpoint carries over a restart."""

    state: FitState
    seconds: float = 0.0
    best: Any = None  # the best epoch's weights (loop.snapshot), None until there is one


def open_data(data: str | Path, config: TrainConfig) -> Any:
    from ..data.datasets import open_dataset

    return open_dataset(data, drop_clutter=config.drop_clutter)


def gluon_config(config: TrainConfig, unsupported: dict[str, Any]) -> TrainConfig:
    """``config`` with framework=gluon, after refusing the torch trainer's extra arguments.

    Checked first, so a call meant for the torch trainer fails before anything is written.
    """
    if unsupported:
        raise ConfigError(
            f"the Gluon trainer does not accept {', '.join(sorted(unsupported))} "
            "(injecting a built model is a torch-trainer feature)"
        )
    if config.framework != Framework.GLUON:
        config = config.replace(framework="gluon")
    return config


def prepare(config: TrainConfig, data: str | Path, out: str | Path, resume: bool) -> Setup:
    """Open the dataset, fix the split and write split.json, config.json and classes.txt.

    They are written before training so a resumed run (``resume_marker``: the checkpoint)
    reads back the very split it trained on.
    """
    from ..data.augment import AugmentSpec

    arch = gluon_arch(config.arch)
    run = RunDir(out)
    run.root.mkdir(parents=True, exist_ok=True)
    ds = open_data(data, config)
    num_classes = len(ds.classes)
    if config.num_classes is not None and config.num_classes != num_classes:
        raise ConfigError(
            f"num_classes={config.num_classes} but {data} has {num_classes} classes; "
            "drop num_classes to take it from the data"
        )
    ckpt = run.checkpoints / loop.CHECKPOINT_NAME
    split = resolve_split(config, ds, run, resume=resume, resume_marker=ckpt)
    split.save(run.split)
    config.save(run.config)
    write_class_names(run.classes, ds.classes)
    spec = PreprocessSpec(image_size=config.image_size, resize_size=config.resize_size)
    augment = AugmentSpec.from_sagemaker(config.augmentation.value, config.min_crop_area)
    return Setup(config, arch, run, ckpt, ds, split, spec, augment, _notes(config))


def _notes(config: TrainConfig) -> list[str]:
    """The config's notes, plus one saying a requested precision was not applied."""
    notes = list(config.notes)
    if config.precision.value not in ("fp32", "auto"):
        notes.append(_NOTES_PRECISION.format(config.precision.value))
    return notes


def build_model(setup: Setup) -> Model:
    """The network, its strategy plan and trainer, built right after seeding the RNGs.

    Seeding (epoch -1) makes the new head's initial weights the same on every run.
    """
    config = setup.config
    loop.seed_epoch(config.seed, -1)
    net = create_gluon_model(
        setup.arch, len(setup.ds.classes), weights=config.weights, image_size=setup.spec.image_size
    )
    net.hybridize()
    plan = loop.plan_strategy(net, config)
    return Model(net, plan, loop.make_trainer(net, plan, config))


def start_fit(setup: Setup, model: Model, resume: bool) -> Fit:
    """A fresh fit, or (``resume`` and a checkpoint exists) the checkpoint's.

    Loading the checkpoint also restores the network's weights and the trainer's state.
    """
    if not (resume and setup.ckpt.is_file()):
        return Fit(FitState())
    saved, best = loop.load_checkpoint(setup.ckpt, net=model.net, trainer=model.trainer)
    return Fit(FitState.from_dict(saved), float(saved.get("train_seconds", 0.0)), best)
