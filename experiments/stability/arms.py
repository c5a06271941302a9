"""The arms of the fine-tuning stability experiments, and the defaults they all share.

Every arm starts from `base_config()` (BERT's fine-tuning recipe as Mosbach et al. 2021 ran it:
lr 2e-5, 10% linear warmup then linear decay, batch 16, weight decay 0.01, clipping at 1.0) and
changes only what defines it, with the reason:

  devlin     the original google-research/bert optimizer: Adam WITHOUT bias correction, 3 epochs.
             Its early steps are 3-6.5x larger than Adam's (bias correction scales step t by
             sqrt(1 - b2^t) / (1 - b1^t)); Mosbach et al. and Zhang et al. trace the failed runs
             to this plus too few iterations.
  adamw_3ep  bias-corrected AdamW, 3 epochs: isolates the bias correction.
  mosbach    bias-corrected AdamW, 20 epochs (Mosbach et al. 2021): more iterations remove the
             failures.
  reinit     bias-corrected AdamW, 3 epochs, the pooler and the top k layers re-initialised
             (Zhang et al. 2021; k = 5 for BERT-large, set per model by `reinit_layers`).
  llrd       bias-corrected AdamW, 3 epochs, layer-wise lr decay (each layer down gets the rate
             times `layerwise_lr_decay`, 0.95 by default; Howard & Ruder 2018, used by Zhang et
             al.).
  mixout     bias-corrected AdamW, 3 epochs, mixout (Lee et al. 2020): during training each
             encoder weight is swapped for its pretrained value with probability
             `mixout_rate` (0.7 by default, within the 0.7-0.9 Lee et al. report), an
             L2-towards-the-pretrained-weights regulariser in expectation.

reinit, llrd and mixout each differ from adamw_3ep in one thing only. All arms keep the original
schedule (decay counted from step 0, `schedules.bert_schedule`), so the optimizer rule, the
number of epochs, re-initialisation, LLRD or mixout is the only difference between any arm and
adamw_3ep.

Configs take big_vision-style arguments, parsed strictly by experiments/config_args.py:
`--config=experiments/stability/<file>.py:task=rte,arm=devlin+mosbach,seeds=25` (several arms
joined by "+"; `arm=all` for every arm).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import ml_collections

from experiments import base_config as base_config_lib


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by every arm and task (the one schema of experiments/base_config.py plus
    `config.sweep`); a task config fills in the task and checkpoint."""
    config = base_config_lib.get_config()
    # The task: "docstring_topics" (offline, data_pipelines/docstring_topics.py) or "glue" with
    # data.glue_task read from the GLUE TSV folder data.glue_dir, or from TFDS when it is "".
    # ("docstring_pairs" configs add their own size keys: minilm_pairs.py.)
    config.task = "glue"
    config.data.update(dict(glue_task="rte", glue_dir="", tfds_data_dir="",
                            max_train_per_topic=60, max_dev_per_topic=40))  # docstring_topics
    # An HF folder, an original TF checkpoint prefix or a bertjax checkpoint (bertjax.pretrained).
    config.init_checkpoint = ""
    config.optimizer.update(name="adamw", schedule="bert", learning_rate=2e-5,
                            warmup_proportion=0.1, weight_decay_rate=0.01, clip_norm=1.0)
    config.num_train_epochs = 3.0
    config.batch_size = 16
    config.eval_batch_size = 64
    # The loop: every step's loss and per-layer gradient norms are logged (the records need
    # them); a checkpoint every 100 steps lets a preempted chunk resume mid-way.
    config.log_every_steps = 1
    config.checkpoint_every_steps = 100
    config.keep_checkpoints = 1
    config.tensorboard = False
    config.export = False

    config.sweep = ml_collections.ConfigDict(dict(
        arms=("adamw_3ep",),
        primary_metric="accuracy",  # the score of a run, compared with the majority baseline
        # Drop the word-embedding rows no example uses (exact; see sweep.restrict_vocabulary):
        # worth it for small models on CPUs, pointless for BERT-large on TPUs.
        restrict_vocabulary=False,
        # Runs first_seed .. first_seed + seeds - 1. A component >= 0 is held fixed across runs
        # (Dodge et al. 2020); -1 follows the run seed.
        seeds=25, first_seed=0, init_seed=-1, data_seed=-1, dropout_seed=-1,
        seeds_per_program=8,  # K seeds per compiled program; a multiple of the devices
        grad_norm_first_steps=50, grad_norm_every=10,
        # Dev scores of every seed this many times per epoch (the last-versus-best checkpoint
        # comparison); 0: only at the end.
        dev_evals_per_epoch=1,
        # What the reinit, llrd and mixout arms switch on, per model size.
        reinit_layers=5, layerwise_lr_decay=0.95, mixout_rate=0.7))
    return config


@dataclasses.dataclass(frozen=True)
class Arm:
    why: str
    apply: Callable[[ml_collections.ConfigDict], None]


def _devlin(config):
    config.optimizer.name = "bert_adam"


def _adamw_3ep(config):
    config.optimizer.name = "adamw"


def _mosbach(config):
    config.optimizer.name = "adamw"
    config.num_train_epochs = 20.0


def _reinit(config):
    config.optimizer.name = "adamw"
    config.reinit_layers = config.sweep.reinit_layers


def _llrd(config):
    config.optimizer.name = "adamw"
    config.optimizer.layerwise_lr_decay = config.sweep.layerwise_lr_decay


def _mixout(config):
    config.optimizer.name = "adamw"
    config.mixout_rate = config.sweep.mixout_rate


ARMS: dict[str, Arm] = {
    "devlin": Arm("original BERT Adam without bias correction, 3 epochs (Devlin et al. 2018)",
                  _devlin),
    "adamw_3ep": Arm("bias-corrected AdamW, 3 epochs: the bias correction alone", _adamw_3ep),
    "mosbach": Arm("bias-corrected AdamW, 20 epochs (Mosbach et al. 2021)", _mosbach),
    "reinit": Arm("adamw_3ep with the pooler and top-k layers re-initialised "
                  "(Zhang et al. 2021)", _reinit),
    "llrd": Arm("adamw_3ep with layer-wise lr decay (Zhang et al. 2021)", _llrd),
    "mixout": Arm("adamw_3ep with mixout towards the pretrained weights (Lee et al. 2020)",
                  _mixout),
}


def arm_config(config: ml_collections.ConfigDict, arm: str) -> ml_collections.ConfigDict:
    """A copy of `config` with `arm`'s changes applied (config.arm names it)."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; expected one of {sorted(ARMS)}")
    config = ml_collections.ConfigDict(config.to_dict())
    config.arm = arm
    ARMS[arm].apply(config)
    return config


def parse_arms(value: str) -> tuple[str, ...]:
    """"devlin+mosbach" -> ("devlin", "mosbach"); "all" -> every arm."""
    names = tuple(ARMS) if value == "all" else tuple(v for v in value.split("+") if v)
    unknown = [name for name in names if name not in ARMS]
    if unknown or not names:
        raise ValueError(f"arm={value!r}: unknown arms {unknown}; expected names from "
                         f"{sorted(ARMS)} joined by '+', or 'all'")
    return names
