"""CoNLL-2003 NER fine-tuning (paper section 5.3): cased model, first sub-token labelled.

    --config=experiments/finetune/ner.py --config.data.train_file=train.txt \
        --config.data.eval_file=valid.txt --config.init_checkpoint=PATH
"""

from experiments import config_args
from experiments.finetune import defaults


def get_config(arg: str = ""):
    args = config_args.parse(arg, runlocal=False)
    config = defaults.get_config()
    config.task = "ner"
    config.data.do_lower_case = False
    config.optimizer.learning_rate = 5e-5
    config.num_train_epochs = 4.0
    config.data.train_file = ""
    config.data.eval_file = ""
    if args["runlocal"]:
        config.batch_size = 4
        config.eval_batch_size = 4
        config.data.max_seq_length = 32
        config.log_every_steps = 1
    return config
