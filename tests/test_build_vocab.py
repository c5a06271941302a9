"""Vocab learning (WordPiece and SentencePiece) on real text: the docstring lines stored in
tests/golden/tokenization.json."""

import collections
import json
import os
import subprocess
import sys

import pytest

from data_pipelines import sentencepiece_tokenizer, tokenization
from data_pipelines import build_vocab
from tests import golden

TRAIN_LINES = 900
WORDPIECE_VOCAB_SIZE = 600


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    lines = golden.load("tokenization")["inputs"]["lines"]
    directory = tmp_path_factory.mktemp("corpus")
    train_file = directory / "train.txt"
    train_file.write_text("\n".join(lines[:TRAIN_LINES]) + "\n", encoding="utf-8")
    return dict(train_file=str(train_file), train_lines=lines[:TRAIN_LINES], held_out=lines[TRAIN_LINES:])


@pytest.fixture(scope="module")
def wordpiece_vocab_file(corpus, tmp_path_factory):
    output_file = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
    summary = build_vocab.build_vocab(corpus["train_file"], output_file, WORDPIECE_VOCAB_SIZE, do_lower_case=True)
    assert summary["output_file"] == output_file
    return output_file


def test_wordpiece_vocab_layout_and_size(wordpiece_vocab_file, corpus):
    vocab = tokenization.load_vocab(wordpiece_vocab_file)
    tokens = list(vocab)
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert 0.9 * WORDPIECE_VOCAB_SIZE <= len(vocab) <= WORDPIECE_VOCAB_SIZE
    assert len(set(tokens)) == len(tokens)
    # Every character of the (lower-cased) training words, alone and as a continuation.
    basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
    characters = {c for line in corpus["train_lines"] for word in basic_tokenizer.tokenize(line) for c in word}
    assert all(c in vocab and f"##{c}" in vocab for c in characters)
    # Characters come before learned pieces, and real words were learned.
    first_learned = next(i for i, t in enumerate(tokens[5:], 5) if len(t.removeprefix("##")) > 1)
    assert all(len(t.removeprefix("##")) > 1 for t in tokens[first_learned:])
    assert {"the", "return", "string"} <= set(tokens)


def test_wordpiece_vocab_tokenizes_held_out_text(wordpiece_vocab_file, corpus):
    tokenizer = tokenization.FullTokenizer(wordpiece_vocab_file, do_lower_case=True)
    tokens = [token for line in corpus["held_out"] for token in tokenizer.tokenize(line)]
    assert len(tokens) > 20000
    assert tokens.count("[UNK]") / len(tokens) < 0.01
    words = [w for line in corpus["held_out"] for w in tokenizer.basic_tokenizer.tokenize(line)]
    assert len(words) < len(tokens) < 3 * len(words)  # real subwords, not mostly characters


def test_wordpiece_learning_is_deterministic(corpus):
    lines = corpus["train_lines"][:400]
    counts = build_vocab.count_words(lines, do_lower_case=True)
    reversed_counts = collections.Counter(dict(reversed(list(counts.items()))))
    first = build_vocab.learn_wordpiece_vocab(counts, 300, num_unused_tokens=3)
    assert first == build_vocab.learn_wordpiece_vocab(reversed_counts, 300, num_unused_tokens=3)
    assert first[:8] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]", "[unused2]"]


def test_wordpiece_errors(tmp_path):
    with pytest.raises(ValueError, match="empty corpus"):
        build_vocab.learn_wordpiece_vocab(collections.Counter(), 100)
    with pytest.raises(ValueError, match="cannot hold"):
        build_vocab.learn_wordpiece_vocab(collections.Counter({"abcdefghij": 5, "klmnopqrst": 5}), 30)
    with pytest.raises(FileNotFoundError, match="no_such_corpus"):
        build_vocab.build_vocab(str(tmp_path / "no_such_corpus*.txt"), str(tmp_path / "v.txt"), 100)
    with pytest.raises(ValueError, match="algorithm"):
        build_vocab.build_vocab(__file__, str(tmp_path / "v.txt"), 100, algorithm="bytes")


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_train_and_load_round_trip(corpus, tmp_path, model_type):
    model_file = sentencepiece_tokenizer.train_sentencepiece(
        corpus["train_file"], str(tmp_path / "spm"), vocab_size=600, model_type=model_type
    )
    tokenizer = sentencepiece_tokenizer.SentencePieceTokenizer(model_file)
    assert tokenizer.vocab_size == 600
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id) == (0, 1, 2, 3, 4)
    assert tokenizer.convert_ids_to_tokens(range(5)) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for line in corpus["held_out"][:200]:
        ids = tokenizer.tokenize_to_ids(line)
        assert all(i > 4 or i == tokenizer.unk_id for i in ids)  # text never yields control ids
        assert tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)) == ids
    # Lower-cased (NFKC + case folding) text survives the round trip when every character is known.
    line = "Return the number of items in the dictionary."
    assert tokenizer.decode(tokenizer.tokenize_to_ids(line)) == line.lower()
    assert tokenizer.decode([tokenizer.cls_id, *tokenizer.tokenize_to_ids("return"), tokenizer.sep_id]) == "return"
    assert tokenizer.convert_tokens_to_ids(["not_a_piece"]) == [tokenizer.unk_id]
    with pytest.raises(ValueError, match="id 600"):
        tokenizer.convert_ids_to_tokens([600])
    # Deterministic: a second training run learns the same pieces with the same scores (the
    # model files differ only in the recorded model_prefix).
    again = sentencepiece_tokenizer.SentencePieceTokenizer(sentencepiece_tokenizer.train_sentencepiece(
        corpus["train_file"], str(tmp_path / "spm_again"), vocab_size=600, model_type=model_type
    ))
    assert again.inv_vocab == tokenizer.inv_vocab
    scores = [tokenizer.processor.get_score(i) for i in range(600)]
    assert [again.processor.get_score(i) for i in range(600)] == scores


def test_command_line_sentencepiece(corpus, tmp_path):
    output_file = tmp_path / "cli" / "spm.model"
    result = subprocess.run(
        [sys.executable, "-m", "data_pipelines.build_vocab", f"--input_file={corpus['train_file']}",
         f"--output_file={output_file}", "--vocab_size=500", "--algorithm=sentencepiece",
         "--sentencepiece_model_type=bpe", "--nodo_lower_case"],
        capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == dict(algorithm="sentencepiece", output_file=str(output_file), vocab_size=500, model_type="bpe")
    tokenizer = sentencepiece_tokenizer.SentencePieceTokenizer(output_file)
    assert "Return" in tokenizer.decode(tokenizer.tokenize_to_ids("Return"))  # cased model
