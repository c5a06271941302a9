"""BERT-base pretraining, the paper's recipe (Devlin et al. 2018, appendix A.2).

Batch 256, 1M steps, Adam (the original AdamWeightDecayOptimizer) lr 1e-4 with 10k warmup and
linear decay, weight decay 0.01, dropout 0.1; sequence length 128 for 90% of the steps, then 512
for the last 10% (max predictions 20 / 80), run as two phases:

  python -m bertjax.main --config=experiments/bert_base_pretrain.py:phase=1 --workdir=W1 \
      --config.data.input_files='gs://BUCKET/seq128/*.tfrecord'
  python -m bertjax.main --config=experiments/bert_base_pretrain.py:phase=2 --workdir=W2 \
      --config.data.input_files='gs://BUCKET/seq512/*.tfrecord' \
      --config.init_checkpoint=W1/export

Phase 2 starts from phase 1's params with a fresh optimizer and schedule over its 100k steps
(10k warmup), as the original run_pretraining.py does with --init_checkpoint (global_step is not
restored from it).

`:phase=lamb` is the large-batch variant (You et al. 2019): LAMB, batch 65,536 at seq 128 then
32,768 at seq 512, 8,599 steps in all (7,038 + 1,561), lr 6e-3 / 4e-3 warmup 2,000 / 200 steps.
"""

from experiments import pretrain_defaults
from experiments import config_args

PHASE1_STEPS = 900_000
PHASE2_STEPS = 100_000


def get_config(arg: str = "phase=1", preset: str = "base"):
    phase = config_args.parse(arg, phase="1")["phase"]
    config = pretrain_defaults.get_config()
    config.model.preset = preset
    # The paper's 16 TPU chips (BERT-base); `make tpu-check` compiles each phase for it.
    config.tpu_topology = "v4-32"
    if phase == "1":
        config.num_train_steps = PHASE1_STEPS
    elif phase == "2":
        config.data.max_seq_length = 512
        config.data.max_predictions_per_seq = 80
        config.num_train_steps = PHASE2_STEPS
    elif phase in ("lamb", "lamb1", "lamb2"):
        config.optimizer.name = "lamb"
        second = phase == "lamb2"
        config.batch_size = 32_768 if second else 65_536
        config.num_train_steps = 1_561 if second else 7_038
        config.optimizer.learning_rate = 4e-3 if second else 6e-3
        config.optimizer.warmup_steps = 200 if second else 2_000
        config.data.max_seq_length = 512 if second else 128
        config.data.max_predictions_per_seq = 80 if second else 20
        # 64k sequences do not fit one step's memory: accumulate gradients over microbatches.
        config.grad_accum_steps = 32
        config.mesh.fsdp = -1
        config.mesh.data = 1
        config.tpu_topology = "v4-256"
    else:
        raise ValueError(f"phase={phase!r}; expected 1, 2, lamb or lamb2")
    return config
