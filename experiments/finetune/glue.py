"""GLUE fine-tuning: `--config=experiments/finetune/glue.py:task=rte[,source=tsv,runlocal]`.

Data from TFDS `glue/<task>` (prepared beforehand with `tfds build glue/<task>` where there is
network) or, with `source=tsv`, from the GLUE download folder given by `glue_dir=` (or
--config.data.glue_dir).
"""

from experiments import config_args
from experiments.finetune import defaults

_EVAL_SPLITS = {"mnli": ("validation_matched", "validation_mismatched")}
TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")


def get_config(arg: str = "task=rte"):
    args = config_args.parse(arg, task="rte", source="tfds", glue_dir="", runlocal=False)
    if args["task"] not in TASKS:
        raise config_args.ConfigArgumentError(
            f"config argument task={args['task']!r}: expected one of {TASKS}")
    if args["source"] not in ("tfds", "tsv"):
        raise config_args.ConfigArgumentError(
            f"config argument source={args['source']!r}: expected tfds or tsv")
    config = defaults.get_config()
    config.task = "glue"
    config.data.glue_task = args["task"]
    config.data.source = args["source"]
    config.data.glue_dir = args["glue_dir"]
    config.data.tfds_data_dir = ""
    config.data.eval_splits = _EVAL_SPLITS.get(args["task"], ("validation",))
    if args["task"] == "stsb":
        config.optimizer.learning_rate = 3e-5
    if args["runlocal"]:
        config.batch_size = 8
        config.eval_batch_size = 8
        config.num_train_epochs = 1.0
        config.log_every_steps = 1
        config.data.max_seq_length = 64
    return config
