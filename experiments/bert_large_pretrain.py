"""BERT-large pretraining: the same recipe as experiments/bert_base_pretrain.py (see there for
the phases and the LAMB variant) with L=24, H=1024, A=16. FSDP shards the 340M params and the
Adam moments over the data-parallel devices; scan compiles the 24 layers once.

  python -m bertjax.main --config=experiments/bert_large_pretrain.py:phase=1 --workdir=W1 \
      --config.data.input_files='gs://BUCKET/seq128/*.tfrecord'
"""

from experiments import bert_base_pretrain


def get_config(arg: str = "phase=1"):
    config = bert_base_pretrain.get_config(arg, preset="large")
    config.model.scan_layers = True
    config.model.remat = True
    config.model.dtype = "bfloat16"
    config.mesh.fsdp = -1
    config.mesh.data = 1
    if config.optimizer.name != "lamb":
        config.tpu_topology = "v4-128"  # the paper's 64 TPU chips for BERT-large
    return config
