"""Defaults shared by every fine-tuning config: the paper's recipe (Devlin et al. 2018, 4.1 and
A.3: batch 32, lr in {5e-5, 3e-5, 2e-5}, 3 epochs, 10% warmup) with the original optimizer."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "glue"
    config.seed = 0
    config.init_checkpoint = ""     # HF folder, original TF checkpoint or bertjax checkpoint
    config.vocab_file = ""          # default: vocab.txt beside the checkpoint
    config.do_lower_case = True
    config.max_seq_length = 128
    config.batch_size = 32
    config.eval_batch_size = 64
    config.num_train_epochs = 3.0
    config.log_every_steps = 50
    config.reinit_layers = 0        # re-initialise the pooler and top k layers (Zhang et al.)
    config.save_checkpoint = False

    # Runtime options only: the architecture comes from init_checkpoint.
    config.model = ml_collections.ConfigDict(dict(
        preset="base", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        dtype="float32", remat=False, scan_layers=False))

    config.optimizer = ml_collections.ConfigDict(dict(
        name="bert_adam", schedule="bert", learning_rate=2e-5, warmup_proportion=0.1,
        weight_decay_rate=0.01, clip_norm=1.0, eps=1e-6, layerwise_lr_decay=None))

    config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    config.data = ml_collections.ConfigDict()
    return config


def parse_arg(arg: str) -> dict[str, str]:
    """big_vision-style config arguments: `key=value,key=value,flag` (a bare flag means True)."""
    args = {}
    for item in filter(None, arg.split(",")):
        key, _, value = item.partition("=")
        args[key.strip()] = value.strip() if _ else "True"
    return args
