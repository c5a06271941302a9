"""Defaults shared by every pretraining config; each experiment file states only what differs.

Values are the paper's recipe (Devlin et al. 2018, appendix A.2) and the original
run_pretraining.py flags, unless an experiment says otherwise. The schema (every key, what it
means) is experiments/base_config.py.
"""

import ml_collections

from experiments import base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config.get_config()
    config.task = "pretrain"
    config.data.update(dict(
        # "tfrecord": original-format files; "default_corpus": the embedded stdlib docstrings
        # written as TFRecords on first use; "dynamic": pairs and masks made on the fly from
        # documents (input_files in the original text format, or the stdlib docstrings).
        source="tfrecord",
        input_files="",             # comma list of paths or patterns, on any scheme the path
                                    # layer (data_pipelines.storage) reads: local, gs://, ...
        eval_input_files="",        # default: the training files, as the original
        max_predictions_per_seq=20,
        dupe_factor=5,              # default_corpus only
        seed=12345,
        cache_dir="",               # default_corpus: its TFRecords; dynamic: tokenised input
                                    # files (default: WORKDIR/data)
        do_whole_word_mask=False,   # default_corpus and dynamic: as the original flags
        masked_lm_prob=0.15,
        short_seq_prob=0.1,
        window_documents=1024,      # dynamic: random next segments come from this many documents
    ))
    config.optimizer.update(learning_rate=1e-4, warmup_steps=10_000)
    config.batch_size = 256         # global, over all hosts
    config.num_train_steps = 1_000_000
    config.log_every_steps = 100
    config.eval_every_steps = 10_000
    config.num_eval_steps = 100
    config.checkpoint_every_steps = 10_000
    return config
