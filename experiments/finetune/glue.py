"""GLUE fine-tuning: `--config=experiments/finetune/glue.py:task=rte[,source=tsv,runlocal]`.

Data from TFDS `glue/<task>` (prepared beforehand with `tfds build glue/<task>` where there is
network) or, with `source=tsv`, from the GLUE download folder given by --config.data.glue_dir.
"""

from experiments.finetune import defaults

_EVAL_SPLITS = {"mnli": ("validation_matched", "validation_mismatched")}


def get_config(arg: str = "task=rte"):
    args = defaults.parse_arg(arg)
    config = defaults.get_config()
    config.task = "glue"
    task = args.get("task", "rte")
    config.data.glue_task = task
    config.data.source = args.get("source", "tfds")
    config.data.glue_dir = args.get("glue_dir", "")
    config.data.tfds_data_dir = ""
    config.data.eval_splits = _EVAL_SPLITS.get(task, ("validation",))
    if task == "stsb":
        config.optimizer.learning_rate = 3e-5
    if "runlocal" in args:
        config.batch_size = 8
        config.eval_batch_size = 8
        config.num_train_epochs = 1.0
        config.log_every_steps = 1
        config.max_seq_length = 64
    return config
