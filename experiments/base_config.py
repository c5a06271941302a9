"""The one config schema: every key a run of bertjax reads, whatever its kind.

Pretraining (experiments/pretrain_defaults.py), fine-tuning (experiments/finetune/defaults.py)
and the stability sweeps (experiments/stability/arms.py) start from `get_config()` and change
values, never names: the same key means the same thing in every run, and the one training loop
(bertjax.trainer) reads them all the same way. An experiment file then states only what differs,
with its reason. Settings are changed from the command line with ml_collections' flags
(`--config.optimizer.learning_rate=3e-5`; an unknown key or a value of the wrong type fails at
once), and a config file's own arguments (`--config=FILE.py:task=rte,runlocal`) go through
experiments/config_args.py, which is just as strict.

    config.task                   "pretrain" | "glue" | "squad" | "ner" | "docstring_topics" |
                                  "docstring_pairs"
    config.seed                   params init, head init and dropout (data has data.seed)
    config.init_checkpoint        HF folder, original TF checkpoint or bertjax export to start from
    config.model.*                a preset (tiny ... large) plus BertConfig fields; with an
                                  init_checkpoint the architecture is the checkpoint's and only
                                  runtime fields (dropout, dtype, remat, scan) apply
    config.data.*                 the task's data: tokenizer (wordpiece | sentencepiece),
                                  spm_model_file, vocab_file, do_lower_case, max_seq_length,
                                  num_length_buckets, group_by_length,
                                  group_by_length_megabatches (fine-tuning and sweeps) and
                                  the source's own keys
    config.optimizer.*            name (bert_adam | adamw | lamb), schedule (bert | hf),
                                  learning_rate, warmup_steps OR warmup_proportion, weight_decay_rate,
                                  clip_norm, b1, b2, eps, layerwise_lr_decay (0: none)
    config.mesh.*                 data, fsdp, tensor device-mesh axes (one may be -1)
    config.batch_size             global batch, over all hosts
    config.eval_batch_size        batch of evaluation and prediction
    config.grad_accum_steps       microbatches per step (same gradient as one large batch)
    config.num_train_steps        steps of the run, OR (when 0) ...
    config.num_train_epochs       ... passes over the training set (fine-tuning)
    config.log_every_steps        metrics.jsonl / TensorBoard / progress cadence (>= 1)
    config.eval_every_steps       evaluation cadence (0: none during training)
    config.num_eval_steps         pretraining: batches per evaluation
    config.checkpoint_every_steps orbax checkpoint cadence (0: only at the end)
    config.keep_checkpoints       how many checkpoints are kept
    config.async_checkpoints      save while training goes on
    config.nan_policy             "stop" (raise, naming the step) or "skip" (drop the step)
    config.tensorboard            also write TensorBoard events
    config.export                 write WORKDIR/export at the end (bertjax format + vocab)
    config.allow_resume_changes   comma list of config keys a resumed run may change ("*": any)
    config.reinit_layers          fine-tuning: re-initialise the pooler and top k layers
    config.mixout_rate            fine-tuning: mixout towards the pretrained weights (0: off)
    config.tpu_topology           the TPU slice the config is sized for ("v4-32"; "" none):
                                  benchmarks/tpu_compile.py compiles it for that slice
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "pretrain"
    config.seed = 0
    config.init_checkpoint = ""

    config.model = ml_collections.ConfigDict(dict(
        preset="base", vocab_size=30522, dtype="float32", param_dtype="float32",
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, remat=False, scan_layers=False))

    config.data = ml_collections.ConfigDict(dict(
        tokenizer="wordpiece",     # "wordpiece" (vocab_file, do_lower_case) or "sentencepiece"
        spm_model_file="",         # the SentencePiece .model (tokenizer="sentencepiece")
        vocab_file="",             # default: vocab.txt beside init_checkpoint, else bert-base-uncased
        do_lower_case=True,
        max_seq_length=128,
        # Fine-tuning and sweeps: cut each batch to the smallest of this many static lengths
        # that holds it (data_pipelines.finetune_input); 0 pads to max_seq_length (the original).
        num_length_buckets=0,
        # Opt-in: batches of examples of similar length (each epoch's permutation sorted by
        # length within mega-batches of group_by_length_megabatches x batch_size examples,
        # then the batches shuffled). With num_length_buckets they are cut to short buckets;
        # unlike bucketing alone it changes which examples share a batch.
        group_by_length=False,
        group_by_length_megabatches=50))

    config.optimizer = ml_collections.ConfigDict(dict(
        name="bert_adam",          # the original AdamWeightDecayOptimizer; "adamw"; "lamb"
        schedule="bert",           # the original: warmup then linear decay counted from step 0
        learning_rate=1e-4, warmup_steps=0, warmup_proportion=0.0, weight_decay_rate=0.01,
        clip_norm=1.0, b1=0.9, b2=0.999, eps=1e-6, layerwise_lr_decay=0.0))

    config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))

    config.batch_size = 32
    config.eval_batch_size = 64
    config.grad_accum_steps = 1
    config.num_train_steps = 0
    config.num_train_epochs = 0.0
    config.log_every_steps = 100
    config.eval_every_steps = 0
    config.num_eval_steps = 100
    config.checkpoint_every_steps = 1000
    config.keep_checkpoints = 3
    config.async_checkpoints = True
    config.nan_policy = "stop"
    config.tensorboard = True
    config.export = True
    config.allow_resume_changes = ""
    config.reinit_layers = 0
    config.mixout_rate = 0.0
    config.tpu_topology = ""
    return config
