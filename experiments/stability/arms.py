"""The arms of the fine-tuning stability experiments, and the defaults they all share.

Every arm starts from `base_config()` (BERT's fine-tuning recipe as Mosbach et al. 2021 ran it:
lr 2e-5, 10% linear warmup then linear decay, batch 16, weight decay 0.01, clipping at 1.0) and
changes only what defines it, with the reason:

  devlin     the original google-research/bert optimizer: Adam WITHOUT bias correction, 3 epochs.
             Its early steps are 3-6.5x larger than Adam's (REFERENCES.md section 4); Mosbach et
             al. and Zhang et al. trace the failed runs to this plus too few iterations.
  adamw_3ep  bias-corrected AdamW, 3 epochs: isolates the bias correction.
  mosbach    bias-corrected AdamW, 20 epochs (Mosbach et al. 2021): more iterations remove the
             failures.
  reinit     bias-corrected AdamW, 3 epochs, the pooler and the top k layers re-initialised
             (Zhang et al. 2021; k = 5 for BERT-large, set per model by `reinit_layers`).
  llrd       bias-corrected AdamW, 3 epochs, layer-wise lr decay (each layer down gets the rate
             times `layerwise_lr_decay`, 0.95 by default; Howard & Ruder 2018, used by Zhang et
             al.).

reinit and llrd each differ from adamw_3ep in one thing only. All arms keep the original
schedule (decay counted from step 0, `schedules.bert_schedule`), so the optimizer rule, the
number of epochs, re-initialisation or LLRD is the only difference between any arm and adamw_3ep.

Configs take big_vision-style arguments: `--config=experiments/stability/<file>.py:task=rte,
arm=devlin+mosbach,seeds=25` (several arms joined by "+"; `arm=all` for every arm).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by every arm and task; a task config fills in the task and checkpoint."""
    config = ml_collections.ConfigDict()
    config.arms = ("adamw_3ep",)
    # The task: "docstring_topics" (offline, data_pipelines/docstring_topics.py) or a GLUE
    # task name read from the GLUE TSV folder `data_dir`, or from TFDS when data_dir is "".
    config.task = ml_collections.ConfigDict(dict(
        name="rte", data_dir="", tfds_data_dir="", max_seq_length=128,
        primary_metric="accuracy",  # the score of a run, compared with the majority baseline
        max_train_per_topic=60, max_dev_per_topic=40))  # docstring_topics only
    # An HF folder, an original TF checkpoint prefix or a bertjax checkpoint (convert.load_any).
    config.init_checkpoint = ""
    config.vocab_file = ""  # default: vocab.txt beside init_checkpoint
    config.do_lower_case = True
    # Drop the word-embedding rows no example uses (exact; see sweep.restrict_vocabulary):
    # worth it for small models on CPUs, pointless for BERT-large on TPUs.
    config.restrict_vocabulary = False

    config.optimizer = ml_collections.ConfigDict(dict(
        name="adamw", schedule="bert", learning_rate=2e-5, warmup_proportion=0.1,
        weight_decay_rate=0.01, clip_norm=1.0, layerwise_lr_decay=0.0))  # 0: no LLRD
    config.num_epochs = 3
    config.batch_size = 16
    config.eval_batch_size = 64
    config.reinit_layers = 0
    # What the reinit and llrd arms switch on, per model size.
    config.arm_settings = ml_collections.ConfigDict(dict(reinit_layers=5,
                                                         layerwise_lr_decay=0.95))

    # Runs first_seed .. first_seed + seeds - 1. A component >= 0 is held fixed across runs
    # (Dodge et al. 2020); -1 follows the run seed.
    config.seeds = 25
    config.first_seed = 0
    config.init_seed = -1
    config.data_seed = -1
    config.dropout_seed = -1
    config.seeds_per_program = 8  # K seeds per compiled program; a multiple of the devices

    config.grad_norm_first_steps = 50
    config.grad_norm_every = 10
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
    config.num_epochs = 20


def _reinit(config):
    config.optimizer.name = "adamw"
    config.reinit_layers = config.arm_settings.reinit_layers


def _llrd(config):
    config.optimizer.name = "adamw"
    config.optimizer.layerwise_lr_decay = config.arm_settings.layerwise_lr_decay


ARMS: dict[str, Arm] = {
    "devlin": Arm("original BERT Adam without bias correction, 3 epochs (Devlin et al. 2018)",
                  _devlin),
    "adamw_3ep": Arm("bias-corrected AdamW, 3 epochs: the bias correction alone", _adamw_3ep),
    "mosbach": Arm("bias-corrected AdamW, 20 epochs (Mosbach et al. 2021)", _mosbach),
    "reinit": Arm("adamw_3ep with the pooler and top-k layers re-initialised "
                  "(Zhang et al. 2021)", _reinit),
    "llrd": Arm("adamw_3ep with layer-wise lr decay (Zhang et al. 2021)", _llrd),
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


def parse_arg(arg: str, **defaults) -> dict:
    """big_vision-style "k=v,k=v" -> dict, each value typed like its default; unknown keys fail."""
    values = dict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, sep, raw = item.partition("=")
        if not sep or key not in defaults:
            raise ValueError(f"config argument {item!r}: expected key=value with key in "
                             f"{sorted(defaults)}")
        default = defaults[key]
        if isinstance(default, bool):
            values[key] = raw.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            values[key] = int(raw)
        elif isinstance(default, float):
            values[key] = float(raw)
        else:
            values[key] = raw
    return values
