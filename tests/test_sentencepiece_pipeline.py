"""SentencePiece end to end: one tokenizer setting for offline pretraining data, dynamic masking,
pretraining and fine-tuning, with a model trained on the default corpus."""

import math

import pytest

from bertjax import finetune, metric_logging, train
from data_pipelines import (corpora, create_pretraining_data, dynamic_masking, pretraining_input,
                            sentencepiece_tokenizer, tokenizers)
from experiments import pretrain_tiny
from experiments.finetune import docstring_topics

VOCAB_SIZE = 2000


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spm")
    corpus = str(folder / "stdlib_docstrings.txt")
    corpora.write_documents(corpora.stdlib_docstring_documents(), corpus)
    model_file = sentencepiece_tokenizer.train_sentencepiece(
        corpus, str(folder / "sp"), vocab_size=VOCAB_SIZE, input_sentence_size=200_000)
    return corpus, model_file


def test_factory_gives_either_kind_and_refuses_bad_settings(spm_model):
    _, model_file = spm_model
    tokenizer = tokenizers.make_tokenizer("sentencepiece", spm_model_file=model_file)
    assert tokenizer.vocab["[CLS]"] == 2 and len(tokenizer.vocab) == VOCAB_SIZE
    arrays = tokenizers.masking_arrays(tokenizer)
    pieces = tokenizer.tokenize("Return the underlying unparsed arguments")
    # A word's later pieces continue it; its first piece (with the word-start mark) does not.
    assert [bool(arrays.continuation[i]) for i in tokenizer.convert_tokens_to_ids(pieces)] == [
        not piece.startswith("\u2581") for piece in pieces]
    assert not arrays.continuation[[0, 1, 2, 3, 4]].any()
    with pytest.raises(ValueError, match="needs spm_model_file"):
        tokenizers.make_tokenizer("sentencepiece")
    with pytest.raises(ValueError, match="expected one of"):
        tokenizers.make_tokenizer("bpe")
    with pytest.raises(ValueError, match="vocab_size to at least 2000"):
        tokenizers.check_vocab_size(tokenizer, 1000)


def test_offline_and_dynamic_pretraining_data_take_a_sentencepiece_model(spm_model, tmp_path):
    corpus, model_file = spm_model
    output = str(tmp_path / "sp.tfrecord")
    summary = create_pretraining_data.run(create_pretraining_data.PretrainingDataConfig(
        input_files=(corpus,), output_files=(output,), vocab_file="", max_seq_length=64,
        max_predictions_per_seq=10, dupe_factor=1, num_workers=1, progress=False,
        do_whole_word_mask=True, tokenizer="sentencepiece", spm_model_file=model_file))
    assert summary["instances"] > 500
    assert abs(summary["replaced_by_mask_share"] - 0.8) < 0.03
    batch = next(iter(pretraining_input.make_pretraining_dataset(
        [output], 16, 64, 10, is_training=False, seed=0)))
    input_ids = batch["input_ids"].numpy()
    assert input_ids.max() < VOCAB_SIZE and (input_ids[:, 0] == 2).all()  # [CLS] is id 2
    tokenizer = tokenizers.make_tokenizer("sentencepiece", spm_model_file=model_file)
    config = dynamic_masking.DynamicMaskingConfig(max_seq_length=64, max_predictions_per_seq=10,
                                                  do_whole_word_mask=True)
    dynamic = next(dynamic_masking.host_batches([corpus], tokenizer, config, global_batch_size=16))
    assert dynamic["input_ids"].max() < VOCAB_SIZE and (dynamic["input_ids"][:, 0] == 2).all()
    assert (dynamic["input_ids"] == tokenizer.mask_id).sum() > 0


def test_tiny_model_pretrains_and_finetunes_with_sentencepiece(spm_model, tmp_path):
    _, model_file = spm_model
    config = pretrain_tiny.get_config("runlocal")
    config.data.update(source="dynamic", tokenizer="sentencepiece", spm_model_file=model_file,
                       max_seq_length=64, max_predictions_per_seq=10)
    config.model.vocab_size = 1000  # smaller than the SentencePiece model: refused up front
    with pytest.raises(ValueError, match="vocab_size to at least 2000"):
        train.build_program(config, str(tmp_path / "refused"))
    config.model.vocab_size = VOCAB_SIZE
    config.num_train_steps = 4
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000
    config.async_checkpoints = False
    config.tensorboard = False
    train.train_and_evaluate(config, str(tmp_path / "pretrain"))
    records = [r for r in metric_logging.read_jsonl(str(tmp_path / "pretrain" / "metrics.jsonl"))
               if r["split"] == "train"]
    # The MLM head starts about uniform over the SentencePiece vocabulary: ln(2000) = 7.6.
    assert abs(records[0]["mlm_loss"] - math.log(VOCAB_SIZE)) < 0.15

    finetune_config = docstring_topics.get_config("runlocal")
    finetune_config.init_checkpoint = str(tmp_path / "pretrain" / "export")
    finetune_config.data.update(tokenizer="sentencepiece", spm_model_file=model_file,
                                max_train_per_topic=8, max_dev_per_topic=4)
    finetune_config.mesh.data = 1
    finetune_config.tensorboard = False
    # The export's vocab_size is 2000: WordPiece ids (up to 30521) would be refused, so this
    # runs only on SentencePiece features.
    results = finetune.run(finetune_config, str(tmp_path / "finetune"))
    assert 0.0 <= results["validation"]["accuracy"] <= 1.0
