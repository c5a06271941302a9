"""Defaults shared by every pretraining config; each experiment file states only what differs.

Values are the paper's recipe (Devlin et al. 2018, appendix A.2) and the original
run_pretraining.py flags, unless an experiment says otherwise.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "pretrain"
    config.seed = 0

    config.model = ml_collections.ConfigDict(dict(
        preset="base", vocab_size=30522, dtype="float32", param_dtype="float32",
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, remat=False, scan_layers=False))

    config.data = ml_collections.ConfigDict(dict(
        # "tfrecord": original-format files; "default_corpus": the embedded stdlib docstrings
        # written as TFRecords on first use; "dynamic": pairs and masks made on the fly from
        # documents (input_files in the original text format, or the stdlib docstrings).
        source="tfrecord",
        input_files="",             # comma list or globs; gs:// works through tf.io.gfile
        do_lower_case=True,
        eval_input_files="",        # default: the training files, as the original
        vocab_file="",
        max_seq_length=128,
        max_predictions_per_seq=20,
        dupe_factor=5,              # default_corpus only
        seed=12345,
        cache_dir="",               # default_corpus only: where its TFRecords are kept
    ))

    config.optimizer = ml_collections.ConfigDict(dict(
        name="bert_adam",           # the original AdamWeightDecayOptimizer; "adamw"; "lamb"
        schedule="bert",            # the original: warmup then linear decay counted from step 0
        learning_rate=1e-4, warmup_steps=10_000, weight_decay_rate=0.01, clip_norm=1.0,
        b1=0.9, b2=0.999, eps=1e-6, layerwise_lr_decay=None))

    config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))

    config.batch_size = 256         # global, over all hosts
    config.grad_accum_steps = 1
    config.num_train_steps = 1_000_000
    config.log_every_steps = 100
    config.eval_every_steps = 10_000
    config.num_eval_steps = 100
    config.checkpoint_every_steps = 10_000
    config.keep_checkpoints = 3
    config.async_checkpoints = True
    config.nan_policy = "stop"      # or "skip": drop non-finite steps and carry on
    config.init_checkpoint = ""     # HF folder, original TF prefix or bertjax checkpoint
    return config
