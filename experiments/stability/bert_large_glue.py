"""Mosbach et al. (2021) on a TPU VM: BERT-large on RTE, MRPC or CoLA, 25 seeds per arm.

    python -m experiments.stability.sweep \
        --config=experiments/stability/bert_large_glue.py:task=rte,arm=all \
        --config.init_checkpoint=/data/bert-large-uncased \
        --workdir=/data/stability

`init_checkpoint`: an HF folder (config.json, model.safetensors or pytorch_model.bin, vocab.txt),
the original TF release (folder with bert_model.ckpt.* and bert_config.json; vocab.txt beside
it) or a bertjax checkpoint. Data: the GLUE TSV folder (`data_dir=/data/glue`, holding RTE/,
MRPC/, CoLA/) or, when data_dir is empty, TFDS `glue/<task>` (prepared in advance; pass
`tfds_data_dir=` if it is not the default).

Scores and failure thresholds as Mosbach et al.: RTE accuracy (majority 52.7%), MRPC F1 (81.2),
CoLA MCC (0). 8 seeds per program put one seed on each core of a v3-8 / v4-8 (25 seeds = 4
programs, the last padded); BERT-large with Adam at batch 16, sequence 128 fits one core's HBM.
"""

from experiments import config_args
from experiments.stability import arms

PRIMARY_METRIC = {"rte": "accuracy", "mrpc": "f1", "cola": "matthews_corrcoef"}


def get_config(arg: str = ""):
    args = config_args.parse(arg, task="rte", arm="all", seeds=25, seeds_per_program=8,
                             data_dir="", tfds_data_dir="", init_checkpoint="")
    if args["task"] not in PRIMARY_METRIC:
        raise config_args.ConfigArgumentError(
            f"config argument task={args['task']!r}: this config covers {sorted(PRIMARY_METRIC)}")
    config = arms.base_config()
    config.sweep.arms = arms.parse_arms(args["arm"])
    config.task = "glue"
    config.data.glue_task = args["task"]
    config.sweep.primary_metric = PRIMARY_METRIC[args["task"]]
    config.data.glue_dir = args["data_dir"]
    config.data.tfds_data_dir = args["tfds_data_dir"]
    config.data.max_seq_length = 128
    config.init_checkpoint = args["init_checkpoint"]
    # The checkpoint's architecture is what trains; the preset only tells the ahead-of-time
    # compile check (benchmarks/tpu_compile.py) what to build for the v4-8 it names.
    config.model.preset = "large"
    config.tpu_topology = "v4-8"
    config.sweep.seeds = args["seeds"]
    config.sweep.seeds_per_program = args["seeds_per_program"]
    config.sweep.reinit_layers = 5  # Zhang et al.'s L for BERT-large (24 layers)
    config.sweep.layerwise_lr_decay = 0.95
    # 20 epochs of RTE are ~3,100 steps: keep every step of the early phase where failures
    # show (Mosbach et al. Fig. 4), then every 10th.
    config.sweep.grad_norm_first_steps = 300
    config.sweep.grad_norm_every = 10
    return config
