"""Fine-tuning on the offline sentence-pair task docstring_pairs (binary, RTE-like, real text).

    python -m bertjax.main --config=experiments/finetune/docstring_pairs.py --workdir=W \
        --config.init_checkpoint=PATH

data_pipelines/docstring_pairs.py: does sentence B follow sentence A in a standard-library
docstring (negatives from other docstrings of the same package)? 320 training pairs and 200 dev,
each class exactly half, split by module; the examples go through the GLUE pair features
([CLS] A [SEP] B [SEP], segment ids 0 then 1). Length in word pieces (bert-base-uncased vocab,
Python 3.11.7, `python -m data_pipelines.docstring_pairs`): median 43, 90th percentile 66 (train)
/ 68 (dev), max 108; at max_seq_length 64, 11% / 15.5% of the pairs lose the tail of their longer
sentence, which keeps the sweeps' cost at the docstring_topics configs' scale.
"""

from experiments import config_args
from experiments.finetune import docstring_topics


def get_config(arg: str = ""):
    args = config_args.parse(arg, runlocal=False)
    config = docstring_topics.offline_config("docstring_pairs", args["runlocal"])
    config.data.max_train_examples = 320
    config.data.max_dev_examples = 200
    if args["runlocal"]:
        config.data.max_train_examples = 32
        config.data.max_dev_examples = 32
    return config
