"""SQuAD fine-tuning: `--config=experiments/finetune/squad.py:version=v1.1`.

The paper's settings (section 4.2/4.3): batch 32, lr 5e-5 (v1.1) / 5e-5 (v2.0), 2-3 epochs,
max_seq_length 384, doc_stride 128, max_query_length 64, n-best 20, max answer length 30.
Data: the official JSON files (--config.data.train_file/eval_file) or TFDS `squad`.
"""

from experiments import config_args
from experiments.finetune import defaults


def get_config(arg: str = "version=v1.1"):
    args = config_args.parse(arg, version="v1.1", runlocal=False)
    if args["version"] not in ("v1.1", "v2.0"):
        raise config_args.ConfigArgumentError(
            f"config argument version={args['version']!r}: expected v1.1 or v2.0")
    config = defaults.get_config()
    config.task = "squad"
    config.data.max_seq_length = 384
    config.batch_size = 32
    config.num_train_epochs = 2.0
    config.optimizer.learning_rate = 5e-5
    config.data.version = args["version"]
    config.data.train_file = ""
    config.data.eval_file = ""
    config.data.tfds_data_dir = ""
    config.data.doc_stride = 128
    config.data.max_query_length = 64
    config.data.n_best_size = 20
    config.data.max_answer_length = 30
    config.data.null_score_diff_threshold = 0.0
    if args["runlocal"]:
        config.data.max_seq_length = 64
        config.data.doc_stride = 16
        config.data.max_query_length = 16
        config.batch_size = 4
        config.eval_batch_size = 4
        config.log_every_steps = 1
    return config
