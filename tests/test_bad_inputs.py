"""The bad-input catalogue: what bertjax says when it is given something wrong.

Each row of CASES is one bad input: a short id, a function that lays out the input under a
temporary folder and returns the call that must fail, the exception and the text of the error
(a regex: it names the file, record, field or key, and what was expected), and the files that
must be byte for byte unchanged afterwards (a failed run never destroys what was there).
Read it as a table: `python -m pytest tests/test_bad_inputs.py -q --collect-only` lists the ids.

Below the table: the cases that are not a single raising call (the default-corpus cache, the
metrics history on resume, SIGTERM before the first step, the command-line exit status).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bertjax import checkpointing, convert, finetune, metric_logging, modeling, sweep, trainer
from bertjax.config import BertConfig
from data_pipelines import (corpora, create_pretraining_data, glue, ner, pretraining_data,
                            pretraining_input, squad, storage, tfrecord_writer, tokenization)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
S, P, V = 16, 4, 64  # the tiny records' max_seq_length, max_predictions_per_seq, vocab size
TINY = BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=32, max_position_embeddings=32)
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a",
         "dog", "ran", ".", "it", "was", "big"]
CORPUS = ("the cat sat on the mat .\nit was big .\na dog ran .\n\n"
          "the dog sat .\nthe cat ran on a mat .\nit was a big cat .\n")


# ------------------------------------------------------------------------------ input helpers
def write(path, content: str | bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as writer:
        writer.write(content.encode() if isinstance(content, str) else content)
    return str(path)


def records(path, n: int = 8, seq_len: int = S, top_id: int = V - 1) -> str:
    """n original-format pretraining records (the seven features) written to `path`."""
    rng = np.random.default_rng(0)
    ids = rng.integers(5, V, size=[n, seq_len])
    ids[0, 1] = top_id
    arrays = dict(input_ids=ids, input_mask=np.ones([n, seq_len], np.int64),
                  segment_ids=np.zeros([n, seq_len], np.int64),
                  masked_lm_positions=np.tile(np.arange(1, P + 1), [n, 1]),
                  masked_lm_ids=rng.integers(5, V, size=[n, P]),
                  masked_lm_weights=np.ones([n, P], np.float32),
                  next_sentence_labels=np.zeros([n, 1], np.int64))
    framed, _ = tfrecord_writer.encode_tfrecords(arrays)
    return write(path, framed.tobytes())


def first_batches(files: str, vocab_size: int | None = None, steps: int = 3):
    """The first batches of a training stream over `files` (S, P as the tiny records)."""
    spec = pretraining_data.PretrainingDataSpec(input_files=files, max_seq_length=S,
                                                max_predictions_per_seq=P)
    if vocab_size is not None:
        dataset = pretraining_input.make_pretraining_dataset(
            files, 4, S, P, is_training=True, seed=0, vocab_size=vocab_size)
        stream = dataset.as_numpy_iterator()
    else:
        stream = pretraining_data.pretraining_batches(spec, per_host_batch_size=4)
    return [next(stream) for _ in range(steps)]


def cpd_config(tmp, **overrides) -> create_pretraining_data.PretrainingDataConfig:
    values = dict(input_files=(write(tmp / "corpus.txt", CORPUS),),
                  output_files=(str(tmp / "out.tfrecord"),),
                  vocab_file=write(tmp / "vocab.txt", "\n".join(VOCAB) + "\n"),
                  max_seq_length=16, max_predictions_per_seq=3, dupe_factor=2, num_workers=1,
                  progress=False)
    values.update(overrides)
    return create_pretraining_data.PretrainingDataConfig(**values)


def cpd_with_previous_output(tmp, **overrides):
    """A good output from an earlier run, then the call of a run that must fail."""
    create_pretraining_data.run(cpd_config(tmp))
    return lambda: create_pretraining_data.run(cpd_config(tmp, **overrides))


def failing_record_writer(tmp):
    """Earlier outputs, then a writer that fails after writing part of the new records."""
    old = [records(tmp / "a.tfrecord"), records(tmp / "b.tfrecord")]
    framed, lengths = tfrecord_writer.encode_tfrecords({
        name: np.zeros([3, S if name in ("input_ids", "input_mask", "segment_ids") else P])
        for name in ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                     "masked_lm_ids", "masked_lm_weights")} | {
        "next_sentence_labels": np.zeros([3, 1])})

    def call():
        with tfrecord_writer.RoundRobinTFRecordWriter(old) as writer:
            writer.write(framed, lengths)
            raise OSError("No space left on device (simulated)")

    return call


def squad_file(tmp, edit: Callable[[dict], None]) -> str:
    with open(os.path.join(FIXTURES, "squad", "tiny-v1.1.json")) as reader:
        contents = json.load(reader)
    edit(contents["data"][0]["paragraphs"][0])
    return write(tmp / "squad.json", json.dumps(contents))


def squad_prepare(tmp, *, train_edit=None, eval_edit=None):
    """finetune_data.prepare for SQuAD: everything before training (reading, checks, features)."""
    from bertjax import finetune_data
    from experiments.finetune import squad as squad_experiment

    config = squad_experiment.get_config("version=v1.1,runlocal")
    fixture = os.path.join(FIXTURES, "squad", "tiny-v1.1.json")
    config.data.train_file = squad_file(tmp / "train", train_edit) if train_edit else fixture
    config.data.eval_file = squad_file(tmp / "eval", eval_edit) if eval_edit else fixture
    tokenizer = tokenization.FullTokenizer(corpora.default_vocab_file(), do_lower_case=True)
    return lambda: finetune_data.prepare(config, TINY, tokenizer)


def glue_rte(tmp, row: str) -> str:
    write(tmp / "glue" / "RTE" / "train.tsv", "index\tsentence1\tsentence2\tlabel\n" + row + "\n")
    return str(tmp / "glue")


def tiny_params(head=modeling.BertForPreTraining):
    ids = jnp.ones([1, 8], jnp.int32)
    return nn.unbox(head(TINY).init(jax.random.PRNGKey(0), ids)["params"])


def truncated(path: str, keep: float = 0.5) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as file:
        file.truncate(int(size * keep))


def hf_truncated(tmp):
    convert.save_hf(TINY, jax.device_get(tiny_params()), str(tmp / "hf"))
    truncated(str(tmp / "hf" / "model.safetensors"))
    return lambda: convert.load_hf(str(tmp / "hf"))


def tf_truncated(tmp):
    prefix = str(tmp / "tf" / "bert_model.ckpt")
    convert.save_tf_checkpoint(TINY, jax.device_get(tiny_params()), prefix)
    convert.write_config(TINY, str(tmp / "tf" / "bert_config.json"))
    data = [name for name in os.listdir(tmp / "tf") if ".data-" in name][0]
    truncated(str(tmp / "tf" / data))
    return lambda: convert.load_tf_checkpoint(prefix, str(tmp / "tf" / "bert_config.json"))


def bertjax_truncated(tmp):
    convert.save_checkpoint(TINY, jax.device_get(tiny_params()), str(tmp / "ckpt"))
    for root, _, names in os.walk(tmp / "ckpt" / "params"):
        for name in names:
            if name != "_METADATA" and os.path.getsize(os.path.join(root, name)) > 0:
                write(os.path.join(root, name), b"garbage")
    return lambda: convert.load_checkpoint(str(tmp / "ckpt"))


def loop_config(**overrides):
    config = ml_collections.ConfigDict(dict(log_every_steps=1, checkpoint_every_steps=0,
                                            eval_every_steps=0, nan_policy="stop"))
    config.update(overrides)
    return config


@dataclasses.dataclass
class NonFinite:
    nonfinite_step: np.ndarray  # the state's record: index (from 0) of the first bad step


@dataclasses.dataclass
class SavedUpTo:
    step: int

    def latest_step(self):
        return self.step

    def wait_until_finished(self):
        pass


def model_call(input_ids, token_type_ids=None, jit=False):
    model = modeling.BertModel(TINY)
    params = model.init(jax.random.PRNGKey(0), jnp.ones([2, 8], jnp.int32))["params"]

    def apply(params, ids, types):
        return model.apply({"params": params}, ids, types)

    if jit:
        return lambda: modeling.checked(jax.jit(apply))(params, input_ids, token_type_ids)
    return lambda: apply(params, input_ids, token_type_ids)


# ------------------------------------------------------------------------------ the catalogue
@dataclasses.dataclass(frozen=True)
class Case:
    """arrange(tmp) lays out the bad input and returns the call that must raise `error` with a
    message matching `message`; `untouched` are paths under tmp whose bytes must not change."""
    id: str
    arrange: Callable
    error: type | tuple
    message: str
    untouched: tuple[str, ...] = ()


IDS_OUT = np.array([[2, 5, V + 7, 3]])
CASES = [
    # Pretraining TFRecords (issue items 1 and 6): empty, garbage and truncated files are named.
    Case("tfrecord: empty (0-byte) file, used to hang", lambda t: (
        records(t / "d" / "a.tfrecord"), write(t / "d" / "b.tfrecord", b""),
        lambda: first_batches(str(t / "d" / "*.tfrecord")))[-1],
         pretraining_input.CorruptRecordError, r"b\.tfrecord: empty TFRecord file \(0 bytes",
         ("d/a.tfrecord", "d/b.tfrecord")),
    Case("tfrecord: garbage bytes", lambda t: (
        write(t / "g.tfrecord", b"this is not a TFRecord file at all" * 3),
        lambda: first_batches(str(t / "g.tfrecord")))[-1],
         pretraining_input.CorruptRecordError, r"g\.tfrecord: not a readable TFRecord file"),
    Case("tfrecord: truncated copy (damage after the first record)", lambda t: (
        records(t / "ok.tfrecord", n=16), records(t / "cut.tfrecord", n=16),
        truncated(str(t / "cut.tfrecord"), 0.7),
        lambda: first_batches(f"{t}/ok.tfrecord,{t}/cut.tfrecord", steps=20))[-1],
         pretraining_input.CorruptRecordError, r"damaged TFRecord file .*cut\.tfrecord",
         ("ok.tfrecord", "cut.tfrecord")),
    Case("tfrecord: pattern matches no file", lambda t: (
        lambda: first_batches(str(t / "missing-*.tfrecord"))),
         FileNotFoundError, r"pretraining file pattern .*missing-\*\.tfrecord.* matches no file"),
    Case("tfrecord: written with another max_seq_length", lambda t: (
        records(t / "s32.tfrecord", seq_len=32),
        lambda: first_batches(str(t / "s32.tfrecord")))[-1],
         ValueError, r"s32\.tfrecord: first record does not match max_seq_length=16"),
    Case("tfrecord: token id >= vocab_size", lambda t: (
        records(t / "big.tfrecord", top_id=V + 3),
        lambda: first_batches(str(t / "big.tfrecord"), vocab_size=V))[-1],
         Exception, r"input_ids has a value >= 64"),

    # create_pretraining_data (items 3 and 4): validated flags, atomic outputs.
    Case("create_pretraining_data: output file is the input file", lambda t: (
        cpd_config(t), lambda: create_pretraining_data.run(
            cpd_config(t, output_files=(str(t / "corpus.txt"),))))[-1],
         ValueError, r"output file .*corpus\.txt is also an input file", ("corpus.txt",)),
    Case("record writer: failing mid-write replaces nothing", failing_record_writer,
         OSError, r"No space left on device", ("a.tfrecord", "b.tfrecord")),
    Case("create_pretraining_data: dupe_factor 0", lambda t: cpd_with_previous_output(
        t, dupe_factor=0), ValueError, r"dupe_factor=0: must be >= 1", ("out.tfrecord",)),
    Case("create_pretraining_data: max_predictions_per_seq 0", lambda t: cpd_with_previous_output(
        t, max_predictions_per_seq=0), ValueError, r"max_predictions_per_seq=0: must be >= 1",
         ("out.tfrecord",)),
    Case("create_pretraining_data: max_predictions_per_seq negative", lambda t: (
        lambda: create_pretraining_data.run(cpd_config(t, max_predictions_per_seq=-3))),
         ValueError, r"max_predictions_per_seq=-3: must be >= 1"),
    Case("create_pretraining_data: masked_lm_prob 0", lambda t: (
        lambda: create_pretraining_data.run(cpd_config(t, masked_lm_prob=0.0))),
         ValueError, r"masked_lm_prob=0.0: must be in \(0, 1\]"),
    Case("create_pretraining_data: masked_lm_prob 1.5", lambda t: (
        lambda: create_pretraining_data.run(cpd_config(t, masked_lm_prob=1.5))),
         ValueError, r"masked_lm_prob=1.5: must be in \(0, 1\]"),
    Case("create_pretraining_data: masked_lm_prob negative", lambda t: (
        lambda: create_pretraining_data.run(cpd_config(t, masked_lm_prob=-0.1))),
         ValueError, r"masked_lm_prob=-0.1"),
    Case("create_pretraining_data: max_seq_length 4", lambda t: (
        lambda: create_pretraining_data.run(cpd_config(t, max_seq_length=4))),
         ValueError, r"max_seq_length=4: needs room for \[CLS\] A \[SEP\] B \[SEP\]"),
    Case("create_pretraining_data: failed run keeps the previous output", lambda t: (
        create_pretraining_data.run(cpd_config(t)),
        write(t / "bad.txt", b"the cat\n\xff\xfe sat\n"),
        lambda: create_pretraining_data.run(cpd_config(t, input_files=(str(t / "bad.txt"),))))[-1],
         create_pretraining_data.InvalidUtf8Error, r"bad\.txt:2: not valid UTF-8",
         ("out.tfrecord",)),
    Case("create_pretraining_data: blank-line corpus keeps the previous output", lambda t: (
        create_pretraining_data.run(cpd_config(t)), write(t / "blank.txt", "\n  \n\n"),
        lambda: create_pretraining_data.run(
            cpd_config(t, input_files=(str(t / "blank.txt"),))))[-1],
         ValueError, r"no documents in .*blank\.txt.\]: every line is blank", ("out.tfrecord",)),
    Case("create_pretraining_data: input pattern matches nothing", lambda t: (
        lambda: create_pretraining_data.run(cpd_config(t, input_files=(str(t / "no*.txt"),)))),
         FileNotFoundError, r"input file pattern .*no\*\.txt.* matches no file"),
    Case("create_pretraining_data: vocab without [MASK]", lambda t: (
        cpd_config(t), write(t / "v.txt", "\n".join(VOCAB[:4] + VOCAB[5:])),
        lambda: create_pretraining_data.run(cpd_config(t, vocab_file=str(t / "v.txt"))))[-1],
         ValueError, r"v\.txt lacks the special token\(s\) \['\[MASK\]'\]"),
    Case("create_pretraining_data: the same output twice", lambda t: (
        lambda: create_pretraining_data.run(cpd_config(
            t, output_files=(str(t / "o.tfrecord"), str(t / "o.tfrecord"))))),
         ValueError, r"output_file names the same file twice"),

    # Vocabularies and tokenization.
    Case("vocab: missing file", lambda t: (
        lambda: tokenization.FullTokenizer(str(t / "nope.txt"))),
         FileNotFoundError, r"vocab file not found: .*nope\.txt"),
    Case("vocab: empty file", lambda t: (
        write(t / "empty.txt", ""), lambda: tokenization.FullTokenizer(str(t / "empty.txt")))[-1],
         ValueError, r"vocab file .*empty\.txt is empty"),
    Case("vocab: not UTF-8", lambda t: (
        write(t / "latin1.txt", "[PAD]\n[UNK]\ncaf\xe9\n".encode("latin-1")),
        lambda: tokenization.FullTokenizer(str(t / "latin1.txt")))[-1],
         ValueError, r"latin1\.txt, line 3: not UTF-8 \(invalid continuation byte\)"),
    Case("vocab: no [UNK]", lambda t: (
        write(t / "nounk.txt", "[PAD]\nthe\n"),
        lambda: tokenization.FullTokenizer(str(t / "nounk.txt")))[-1],
         ValueError, r"nounk\.txt has no \[UNK\] token"),

    # SQuAD (item 5): structure checked, naming the question, before any training.
    Case("squad: training question without answers", lambda t: squad_prepare(
        t, train_edit=lambda p: p["qas"][0].pop("answers")),
         ValueError, r"train/squad\.json: question '[^']+' has no 'answers' list"),
    Case("squad: eval question without answers (was: crash after training)", lambda t:
         squad_prepare(t, eval_edit=lambda p: p["qas"][1].pop("answers")),
         ValueError, r"eval/squad\.json: question '[^']+' has no 'answers' list"),
    Case("squad: paragraph without context", lambda t: squad_prepare(
        t, train_edit=lambda p: p.pop("context")),
         ValueError, r"squad\.json: article 0, paragraph 0 has no 'context' string"),
    Case("squad: question without id", lambda t: squad_prepare(
        t, train_edit=lambda p: p["qas"][0].pop("id")),
         ValueError, r"squad\.json: article 0, paragraph 0, question 0 has no 'id'"),
    Case("squad: answer without answer_start", lambda t: (
        lambda: squad.validate_dataset(
            [{"paragraphs": [{"context": "a b", "qas": [
                {"id": "q7", "question": "?", "answers": [{"text": "a"}]}]}]}],
            "mem.json", needs_answers=True)),
         ValueError, r"mem\.json: question 'q7': each answer needs 'text' \(string\) and "
                     r"'answer_start'"),
    Case("squad: not JSON", lambda t: (
        write(t / "x.json", "{not json"), lambda: squad.load_squad_json(str(t / "x.json")))[-1],
         ValueError, r"x\.json: not a UTF-8 JSON file"),
    Case("squad: no data key", lambda t: (
        write(t / "x.json", "{}"), lambda: squad.load_squad_json(str(t / "x.json")))[-1],
         ValueError, r"x\.json: no 'data' key"),

    # GLUE TSV (item 11).
    Case("glue: a tab inside a text field (RTE)", lambda t: (
        lambda: glue.read_tsv_examples(glue_rte(t, "0\tA\tB\tpart\tentailment"), "rte", "train")),
         ValueError, r"RTE/train\.tsv, line 2: 5 tab-separated columns, the header has 4"),
    Case("glue: unknown label", lambda t: (
        lambda: glue.read_tsv_examples(glue_rte(t, "0\tA\tB\tmaybe"), "rte", "train")),
         ValueError, r"RTE/train\.tsv, line 2: label 'maybe' is not one of"),
    Case("glue: a file that is not UTF-8", lambda t: (
        write(t / "glue" / "RTE" / "train.tsv",
              "index\tsentence1\tsentence2\tlabel\n0\tA\tB\tentailment\n1\tcaf\xe9\tB\t"
              "entailment\n".encode("latin-1")),
        lambda: glue.read_tsv_examples(str(t / "glue"), "rte", "train"))[-1],
         ValueError, r"RTE/train\.tsv, line 3: not UTF-8", ("glue/RTE/train.tsv",)),
    Case("ner: a CoNLL file that is not UTF-8", lambda t: (
        write(t / "train.txt", "EU NNP B-NP B-ORG\nna\xefve JJ I-NP O\n".encode("latin-1")),
        lambda: ner.read_conll2003(str(t / "train.txt")))[-1],
         ValueError, r"train\.txt, line 2: not UTF-8"),
    Case("ner: a line without 4 columns", lambda t: (
        write(t / "train.txt", "EU NNP B-NP B-ORG\nrejects VBZ\n"),
        lambda: ner.read_conll2003(str(t / "train.txt")))[-1],
         ValueError, r"train\.txt, line 2: expected 4 columns \(word POS chunk NER\), got 2"),
    Case("glue: missing file", lambda t: (
        lambda: glue.read_tsv_examples(str(t / "glue"), "rte", "validation")),
         FileNotFoundError, r"RTE/dev\.tsv"),
    Case("glue: unknown split", lambda t: (
        lambda: glue.read_tsv_examples(str(t), "rte", "dev")),
         ValueError, r"GLUE rte has no split 'dev'"),

    # Model inputs (item 11): dtype, shape and id range, also under jit in the checked mode.
    Case("model: float input_ids", lambda t: model_call(jnp.ones([2, 8], jnp.float32)),
         ValueError, r"input_ids has dtype float32; expected integers"),
    Case("model: input_ids >= vocab_size", lambda t: model_call(jnp.asarray(IDS_OUT)),
         ValueError, r"input_ids has value 71 at index \(0, 2\); expected 0 <= input_ids < 64"),
    Case("model: input_ids >= vocab_size under jit (modeling.checked)", lambda t: model_call(
        jnp.asarray(IDS_OUT), jit=True),
         Exception, r"input_ids has a value outside \[0, 64\) \(max 71"),
    Case("model: input_ids of rank 1", lambda t: model_call(jnp.ones([8], jnp.int32)),
         ValueError, r"input_ids must be \[B, S\]; got shape \(8,\)"),
    Case("model: token_type_ids of another shape", lambda t: model_call(
        jnp.ones([2, 8], jnp.int32), jnp.zeros([2, 7], jnp.int32)),
         ValueError, r"token_type_ids has shape \(2, 7\); input_ids has \(2, 8\)"),
    Case("model: sequence longer than max_position_embeddings", lambda t: model_call(
        jnp.ones([1, 40], jnp.int32)),
         ValueError, r"sequence length 40 > max_position_embeddings 32"),

    # Checkpoints (item 6): damaged files are named.
    Case("checkpoint: truncated model.safetensors", hf_truncated,
         ValueError, r"hf/model\.safetensors: not a readable safetensors file"),
    Case("checkpoint: truncated TF .data file", tf_truncated,
         ValueError,
         r"tf/bert_model\.ckpt: cannot read variable .*the \.data file is damaged or truncated"),
    Case("checkpoint: damaged bertjax params", bertjax_truncated,
         ValueError, r"ckpt/params: not a readable bertjax checkpoint"),
    Case("checkpoint: config.json is not JSON", lambda t: (
        write(t / "c" / "config.json", "{"),
        lambda: convert.read_config(str(t / "c" / "config.json")))[-1],
         ValueError, r"c/config\.json: not valid JSON"),
    Case("checkpoint: config.json without hidden_size", lambda t: (
        write(t / "c" / "config.json", '{"vocab_size": 5}'),
        lambda: convert.read_config(str(t / "c" / "config.json")))[-1],
         ValueError, r"missing BERT config fields \['hidden_size'"),

    # The training loop (items 2, 7, 8).
    Case("resume: batch size changed", lambda t: (
        lambda: checkpointing.check_identity({"batch_size": 32, "seed": 1},
                                             {"batch_size": 16, "seed": 1}, [], "W/checkpoints")),
         ValueError, r"(?s)W/checkpoints holds a checkpoint of a different experiment.*"
                     r"batch_size: checkpoint 32, this run 16.*allow_resume_changes=batch_size"),
    Case("resume: optimizer changed", lambda t: (
        lambda: checkpointing.check_identity({"optimizer": {"name": "adamw"}},
                                             {"optimizer": {"name": "lamb"}}, [], "W")),
         ValueError, r"optimizer\.name: checkpoint 'adamw', this run 'lamb'"),
    Case("loop: log_every_steps 0", lambda t: (
        lambda: trainer.validate_loop_config(loop_config(log_every_steps=0))),
         ValueError, r"config\.log_every_steps=0: must be >= 1"),
    Case("loop: checkpoint_every_steps negative", lambda t: (
        lambda: trainer.validate_loop_config(loop_config(checkpoint_every_steps=-1))),
         ValueError, r"config\.checkpoint_every_steps=-1: must be >= 0"),
    Case("loop: unknown nan_policy", lambda t: (
        lambda: trainer.validate_loop_config(loop_config(nan_policy="ignore"))),
         ValueError, r"config\.nan_policy='ignore'; expected 'stop' or 'skip'"),
    Case("nan_policy=stop: the step is numbered from 1, as metrics and checkpoints", lambda t: (
        lambda: trainer._check_finite(  # pylint: disable=protected-access
            NonFinite(nonfinite_step=np.array(2)), SavedUpTo(2))),
         FloatingPointError, r"at step 3; stopped.*last good checkpoint is step 2"),
    Case("finetune: training set smaller than one batch", lambda t: (
        lambda: finetune.num_train_steps_of(ml_collections.ConfigDict(dict(
            batch_size=32, num_train_steps=0, num_train_epochs=3)), 20)),
         ValueError, r"20 examples, fewer than one batch \(config\.batch_size=32\)"),
    Case("finetune: epochs round to no step", lambda t: (
        lambda: finetune.num_train_steps_of(ml_collections.ConfigDict(dict(
            batch_size=8, num_train_steps=0, num_train_epochs=0.1)), 40)),
         ValueError, r"num_train_epochs=0.1 x 5 steps per epoch .* is less than one step"),
    Case("sweep: training set smaller than one batch", lambda t: (
        lambda: sweep.num_train_steps(
            {"input_ids": np.zeros([3, 8], np.int32)}, 4, 3)),
         ValueError, r"3 training examples in batches of 4 is no step"),

    # Paths: unwritable outputs and odd inputs.
    Case("output under a file", lambda t: (
        write(t / "f", "x"), lambda: storage.write_text(str(t / "f" / "out.json"), "{}"))[-1],
         storage.StorageError, r"f is a file; a folder is needed there", ("f",)),
    Case("input is a folder", lambda t: (
        os.makedirs(t / "dir"), lambda: storage.expand_patterns(str(t / "dir")))[-1],
         FileNotFoundError, r"matches no file \(it is a folder\)"),
    Case("metrics.jsonl: a bad line that is not the last", lambda t: (
        write(t / "metrics.jsonl", '{"step": 1}\n{oops\n{"step": 2}\n'),
        lambda: metric_logging.read_jsonl(str(t / "metrics.jsonl")))[-1],
         ValueError, r"metrics\.jsonl: line 2 is not JSON", ("metrics.jsonl",)),
]


def _digests(tmp, paths):
    return {p: hashlib.sha256((tmp / p).read_bytes()).hexdigest() for p in paths}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, tmp_path):
    call = case.arrange(tmp_path)
    before = _digests(tmp_path, case.untouched)
    with pytest.raises(case.error, match=case.message):
        call()
    assert _digests(tmp_path, case.untouched) == before
    leftovers = [os.path.join(root, name) for root, dirs, names in os.walk(tmp_path)
                 for name in names + dirs if ".tmp-" in name or name.startswith("bertjax_corpus_")]
    assert not leftovers, leftovers  # no temporary file or folder is left behind


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 40 and len({case.id for case in CASES}) == len(CASES)


# ------------------------------------------------------------------------------ beyond the table
def _child_env():
    return {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "",
            "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_sigterm_before_the_first_step_ends_the_run(tmp_path):
    """A run stuck reading its input (here a FIFO nobody writes) ends on SIGTERM with a
    non-zero status, and nothing is written to its workdir (no checkpoint, no metrics)."""
    os.makedirs(tmp_path / "data")
    fifo = str(tmp_path / "data" / "stuck.tfrecord")
    os.mkfifo(fifo)
    workdir = tmp_path / "work"
    child = subprocess.Popen(
        [sys.executable, "-m", "bertjax.main", "--config=experiments/pretrain_tiny.py:runlocal",
         f"--workdir={workdir}", "--config.data.source=tfrecord",
         f"--config.data.input_files={tmp_path}/data/*.tfrecord"],
        cwd=REPO, env=_child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    writer = None
    try:
        while writer is None:  # the FIFO opens for writing once the run is reading it
            assert child.poll() is None, child.stderr.read().decode()[-3000:]
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.2)
        child.send_signal(signal.SIGTERM)
        status = child.wait(timeout=120)
    finally:
        if writer is not None:
            os.close(writer)
        if child.poll() is None:
            child.kill()
    assert status != 0  # -15: the default action of SIGTERM
    # No checkpoint and no metrics: the same command starts afresh (TensorBoard's event file
    # holds only its header).
    assert not os.listdir(workdir / "checkpoints")
    assert not (workdir / "metrics.jsonl").exists()


def test_a_slow_first_batch_is_reported_naming_the_files():
    """While the stream is opened and its first batch awaited, a warning naming the files
    repeats (no silent wait): the stream below yields only once that warning was logged."""
    import logging
    import threading

    warned = threading.Event()

    class Handler(logging.Handler):
        def emit(self, record):
            if "still reading the first batch" in record.getMessage() and \
                    "slow.tfrecord" in record.getMessage():
                warned.set()

    def slow_stream():
        assert warned.wait(timeout=300), "no progress warning was logged"
        yield "batch"

    handler = Handler()
    logging.getLogger().addHandler(handler)
    try:
        stream = pretraining_input.named_read_errors(slow_stream, ["/data/slow.tfrecord"],
                                                     wait_warning_seconds=0.01)
        assert list(stream) == ["batch"]
    finally:
        logging.getLogger().removeHandler(handler)


def test_create_pretraining_data_cli_refuses_its_input_as_output(tmp_path):
    config = cpd_config(tmp_path)
    before = (tmp_path / "corpus.txt").read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "data_pipelines.create_pretraining_data",
         f"--input_file={tmp_path}/corpus.txt", f"--output_file={tmp_path}/corpus.txt",
         f"--vocab_file={config.vocab_file}", "--num_workers=1", "--noprogress"],
        cwd=REPO, env=_child_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "is also an input file" in result.stderr
    assert (tmp_path / "corpus.txt").read_bytes() == before


def test_default_corpus_cache_is_built_atomically(tmp_path, monkeypatch):
    """A killed build leaves a .tmp- folder that the next build removes; a failing build leaves
    nothing; a finished build is never rebuilt or replaced by a build with other arguments."""
    arguments = dict(max_seq_length=32, max_predictions_per_seq=4, dupe_factor=1,
                     module_names=("bisect",), num_workers=1)
    stale = tmp_path / ".tmp-killedbuild"
    write(stale / "pretraining-00000-of-00002.tfrecord", b"half")

    def fail(config):
        raise RuntimeError("killed mid-build")

    monkeypatch.setattr(create_pretraining_data, "run", fail)
    with pytest.raises(RuntimeError, match="killed mid-build"):
        corpora.prepare_default_pretraining_data(str(tmp_path), **arguments)
    assert sorted(os.listdir(tmp_path)) == [".lock"]  # the stale folder and ours are gone
    monkeypatch.undo()
    files = corpora.prepare_default_pretraining_data(str(tmp_path), **arguments)
    digests = _digests(tmp_path, [os.path.relpath(f, tmp_path) for f in files])
    other = corpora.prepare_default_pretraining_data(str(tmp_path), **{**arguments,
                                                                        "dupe_factor": 2})
    assert os.path.dirname(other[0]) != os.path.dirname(files[0])
    assert _digests(tmp_path, [os.path.relpath(f, tmp_path) for f in files]) == digests
    assert corpora.prepare_default_pretraining_data(str(tmp_path), **arguments) == files


def test_metrics_history_survives_a_torn_line_and_resume(tmp_path):
    """A kill mid-append leaves a torn last line: resume drops it (and the records of steps
    that will run again) by an atomic rewrite; TensorBoard keeps each step once."""
    logger = metric_logging.MetricLogger(str(tmp_path), 4, tensorboard=True)
    for step in (1, 2, 3):
        logger.write(step, {"loss": float(step)})
    logger.close()
    with open(tmp_path / "metrics.jsonl", "a") as file:
        file.write('{"step": 4, "split": "tr')  # torn
    logger = metric_logging.MetricLogger(str(tmp_path), 4, initial_step=2, tensorboard=True)
    logger.write(3, {"loss": 30.0})
    logger.close()
    records = metric_logging.read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert [(r["step"], r["loss"]) for r in records] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2
    steps = [event_pb2.Event.FromString(r).step
             for path in storage.glob(str(tmp_path / "tensorboard" / "events.out.tfevents*"))
             for r in tf.data.TFRecordDataset(path).as_numpy_iterator()
             if event_pb2.Event.FromString(r).HasField("summary")]
    assert sorted(steps) == [1, 2, 3]
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


def test_checkpoint_and_log_intervals_of_zero_run(tmp_path):
    """checkpoint_every_steps=0 (only at the end) and eval_every_steps=0 used to divide by zero
    after compilation; now a tiny program runs to the end and saves once."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))

    def batches(start):
        while True:
            yield {"x": np.ones([2], np.float32)}

    program = trainer.Program(
        kind="pretrain", mesh=mesh, num_train_steps=3,
        init_state=lambda: {"w": jnp.zeros([2])}, abstract_state=None,
        step=jax.jit(lambda s, b: ({"w": s["w"] + b["x"]}, {"loss": jnp.sum(s["w"])})),
        batches=batches, to_device=lambda b: b, identity={}, stop_on_nonfinite=False)
    config = ml_collections.ConfigDict(dict(
        log_every_steps=1, eval_every_steps=0, checkpoint_every_steps=0, keep_checkpoints=2,
        async_checkpoints=False, nan_policy="stop", tensorboard=False, allow_resume_changes=""))
    outcome = trainer.train(program, config, str(tmp_path))
    assert float(outcome["train"]["loss"]) == 4.0  # w = 2 before the third step: 2 + 2
    assert os.listdir(tmp_path / "checkpoints") == ["3"]
