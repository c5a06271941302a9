"""Defaults shared by every fine-tuning config: the paper's recipe (Devlin et al. 2018, 4.1 and
A.3: batch 32, lr in {5e-5, 3e-5, 2e-5}, 3 epochs, 10% warmup) with the original optimizer.
The schema (every key, what it means) is experiments/base_config.py."""

import ml_collections

from experiments import base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config.get_config()
    config.task = "glue"
    # The architecture comes from init_checkpoint; without one, config.model's preset is
    # fine-tuned from random init.
    config.batch_size = 32
    config.eval_batch_size = 64
    config.num_train_epochs = 3.0
    config.log_every_steps = 50
    config.checkpoint_every_steps = 1000
    config.optimizer.update(learning_rate=2e-5, warmup_proportion=0.1)
    return config
