r"""Learns a BERT vocab.txt (WordPiece) or a SentencePiece model from a text corpus.

  python -m data_pipelines.build_vocab --input_file='corpus/*.txt' --output_file=vocab.txt \
      --vocab_size=30522 --do_lower_case

WordPiece: words are split exactly as data_pipelines.tokenization.BasicTokenizer (hence FullTokenizer)
will split them, counted, and handed to tensorflow_text's WordPiece learner
(`tensorflow_text.tools.wordpiece_vocab.wordpiece_tokenizer_learner_lib.learn`, the learner
behind `bert_vocab_from_dataset`, which would split words with tf_text.BertTokenizer: NFKC
folding, not the original's rules). The learner binary-searches a count threshold so that the
vocab holds between (1 - slack_ratio) * vocab_size and vocab_size tokens.

vocab.txt layout (one token per line, id = line number):

  0-4      [PAD] [UNK] [CLS] [SEP] [MASK]
  5...     [unused0] ... [unused{N-1}] when --num_unused_tokens=N (room for task tokens)
  then     every single character c (sorted), then every continuation "##c"
  then     learned words and ##pieces, most frequent first, up to --vocab_size

The released BERT vocabs differ only in the special ids ([PAD]=0, [unused0-98], [UNK]=100,
[CLS]=101, [SEP]=102, [MASK]=103); nothing in bertjax assumes those numbers.

Corpora beyond one machine: count the words with Apache Beam
(`python -m data_pipelines.beam_word_counts --input_file=... --output_file=counts.tsv`), then
learn from the counts with `--word_counts_file=counts.tsv` instead of --input_file.

SentencePiece (--algorithm=sentencepiece): see data_pipelines.sentencepiece_tokenizer; --output_file
names the `.model` file (its `.vocab` listing is written beside it).
"""

from __future__ import annotations

import collections
import json
from typing import Iterable, Iterator

from absl import app, flags, logging

from data_pipelines import sentencepiece_tokenizer, storage, tokenization

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ALGORITHMS = ("wordpiece", "sentencepiece")


def read_lines(input_files: str | Iterable[str]) -> Iterator[str]:
    """Lines of every input file (comma-separated string or list of paths/globs), in order."""
    for path in sentencepiece_tokenizer.expand_input_files(input_files):
        # Invalid UTF-8 is replaced, not fatal: a vocabulary is statistics over the text.
        yield from storage.read_bytes(path).decode("utf-8", errors="replace").splitlines(True)


def count_words(lines: Iterable[str], do_lower_case: bool) -> collections.Counter:
    """Word -> count, words being what BasicTokenizer yields (before WordPiece)."""
    basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    counts: collections.Counter = collections.Counter()
    for line in lines:
        counts.update(basic_tokenizer.tokenize(line))
    return counts


def write_word_counts(counts, output_file: str) -> int:
    """word<TAB>count lines (from a Counter or (word, count) pairs), most frequent first, ties
    by word, written atomically (any storage scheme); returns the number of words."""
    items = sorted(dict(counts).items(), key=lambda item: (-item[1], item[0]))
    with storage.atomic_write(output_file, "w") as writer:
        writer.write("".join(f"{word}\t{count}\n" for word, count in items))
    return len(items)


def read_word_counts(path: str) -> collections.Counter:
    """Counts written by write_word_counts (e.g. by data_pipelines.beam_word_counts); a
    malformed line is an error naming the file and line."""
    counts: collections.Counter = collections.Counter()
    with storage.open(path, "r") as reader:
        for line_number, line in enumerate(reader, start=1):
            word, tab, count = line.rstrip("\n").rpartition("\t")
            if not tab or not word or not count.isdigit():
                raise ValueError(f"{path}:{line_number}: expected 'word<TAB>count', got {line!r}")
            counts[word] += int(count)
    return counts


def learn_wordpiece_vocab(
    word_counts: collections.Counter,
    vocab_size: int,
    min_frequency: int = 2,
    num_unused_tokens: int = 0,
    max_token_length: int = 50,
    max_unique_chars: int = 1000,
    slack_ratio: float = 0.05,
) -> list[str]:
    """WordPiece vocab (layout in the module docstring) learned from word counts.

    Args:
      word_counts: word -> count.
      vocab_size: the maximum vocab size, special and unused tokens included.
      min_frequency: the lowest count threshold the learner may settle on (pieces rarer than
        the chosen threshold are left out).
      num_unused_tokens: "[unusedN]" placeholders after the special tokens.
      max_token_length: longer words are not learned from.
      max_unique_chars: the most frequent characters kept; words with other characters are
        not learned from (they will tokenize to [UNK]).
      slack_ratio: accept any size in [(1 - slack_ratio) * vocab_size, vocab_size].
    """
    # Imported here: it pulls in TensorFlow, which the SentencePiece path does not need.
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib

    if not word_counts:
        raise ValueError("no words to learn a vocab from (empty corpus?)")
    reserved_tokens = [*SPECIAL_TOKENS, *(f"[unused{i}]" for i in range(num_unused_tokens))]
    if vocab_size <= len(reserved_tokens):
        raise ValueError(f"vocab_size {vocab_size} leaves no room after {len(reserved_tokens)} reserved tokens")
    # A fixed order makes the learner's stable sorts, hence the vocab, deterministic.
    ordered_counts = sorted(word_counts.items(), key=lambda item: (-item[1], item[0]))
    vocab = wordpiece_tokenizer_learner_lib.learn(
        ordered_counts,
        vocab_size=vocab_size,
        reserved_tokens=reserved_tokens,
        lower_thresh=min_frequency,
        max_token_length=max_token_length,
        max_unique_chars=max_unique_chars,
        slack_ratio=slack_ratio,
        include_joiner_token=True,
        joiner="##",
    )
    return _fit_to_size(list(vocab), len(reserved_tokens), vocab_size)


def _fit_to_size(vocab: list[str], num_reserved: int, vocab_size: int) -> list[str]:
    """Reserved tokens, then every character and ##character, then learned pieces up to size.

    The learner searches an integer count threshold, so on small corpora its vocab can overshoot
    vocab_size by a few percent; the least frequent learned pieces are then dropped. Characters
    are never dropped: they guarantee that any word of known characters avoids [UNK].
    """
    reserved, learned_vocab = vocab[:num_reserved], vocab[num_reserved:]
    is_character = [len(t) == 1 or (t.startswith("##") and len(t) == 3) for t in learned_vocab]
    characters = [t for t, keep in zip(learned_vocab, is_character) if keep]
    learned = [t for t, keep in zip(learned_vocab, is_character) if not keep]  # most frequent first
    room = vocab_size - num_reserved - len(characters)
    if room < 0:
        raise ValueError(
            f"vocab_size {vocab_size} cannot hold {num_reserved} reserved tokens and "
            f"{len(characters)} characters/##characters; raise it or lower max_unique_chars"
        )
    return reserved + characters + learned[:room]


def write_vocab(tokens: Iterable[str], output_file: str) -> int:
    """Writes one token per line; returns the number written."""
    tokens = list(tokens)
    bad = [token for token in tokens if not token or token != token.strip() or "\n" in token]
    if bad:
        raise ValueError(f"tokens with surrounding whitespace cannot round-trip through {output_file}: {bad[:5]}")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"duplicate tokens would break ids in {output_file}")
    # All or nothing: a failed run never leaves a truncated vocab where a good one was.
    storage.write_text(output_file, "".join(f"{token}\n" for token in tokens))
    return len(tokens)


def build_vocab(
    input_files: str | Iterable[str],
    output_file: str,
    vocab_size: int,
    do_lower_case: bool = True,
    algorithm: str = "wordpiece",
    min_frequency: int = 2,
    num_unused_tokens: int = 0,
    sentencepiece_model_type: str = "unigram",
    word_counts_file: str | None = None,
) -> dict:
    """Learns and writes the vocab; returns a summary (algorithm, sizes, output path).

    WordPiece learns from word_counts_file (write_word_counts' format, e.g. counted by
    data_pipelines.beam_word_counts) instead of input_files when it is given."""
    if algorithm == "wordpiece":
        if word_counts_file:
            word_counts = read_word_counts(word_counts_file)
        else:
            word_counts = count_words(read_lines(input_files), do_lower_case)
        vocab = learn_wordpiece_vocab(
            word_counts, vocab_size, min_frequency=min_frequency, num_unused_tokens=num_unused_tokens
        )
        written = write_vocab(vocab, output_file)
        return dict(algorithm=algorithm, output_file=output_file, vocab_size=written,
                    requested_vocab_size=vocab_size, distinct_words=len(word_counts),
                    total_words=sum(word_counts.values()))
    if algorithm == "sentencepiece":
        model_prefix = output_file[: -len(".model")] if output_file.endswith(".model") else output_file
        model_file = sentencepiece_tokenizer.train_sentencepiece(
            input_files, model_prefix, vocab_size, model_type=sentencepiece_model_type,
            do_lower_case=do_lower_case,
        )
        return dict(algorithm=algorithm, output_file=model_file, vocab_size=vocab_size,
                    model_type=sentencepiece_model_type)
    raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")


FLAGS = flags.FLAGS


def _define_flags() -> None:
    """Defined only when run as a command, so importing this module claims no absl flags."""
    flags.DEFINE_string("input_file", None, "Comma-separated text files or globs, one sentence per line.")
    flags.DEFINE_string("output_file", None, "vocab.txt to write (or the .model for sentencepiece).")
    flags.DEFINE_integer("vocab_size", 30522, "Maximum vocab size, special tokens included.")
    flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents (uncased model).")
    flags.DEFINE_enum("algorithm", "wordpiece", list(ALGORITHMS), "Vocab learner.")
    flags.DEFINE_integer("min_frequency", 2, "WordPiece: lowest count threshold the learner may use.")
    flags.DEFINE_integer("num_unused_tokens", 0, "WordPiece: [unusedN] placeholders after the specials.")
    flags.DEFINE_string("word_counts_file", None,
                        "WordPiece: learn from these word<TAB>count lines (data_pipelines.beam_word_counts) "
                        "instead of counting --input_file.")
    flags.DEFINE_enum("sentencepiece_model_type", "unigram", list(sentencepiece_tokenizer.MODEL_TYPES),
                      "SentencePiece segmentation model.")


def main(argv):
    del argv
    summary = build_vocab(
        FLAGS.input_file, FLAGS.output_file, FLAGS.vocab_size, FLAGS.do_lower_case, FLAGS.algorithm,
        FLAGS.min_frequency, FLAGS.num_unused_tokens, FLAGS.sentencepiece_model_type,
        FLAGS.word_counts_file,
    )
    logging.info("vocab written: %s", summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    _define_flags()
    flags.mark_flags_as_required(["output_file"])
    flags.register_multi_flags_validator(
        ["input_file", "word_counts_file"],
        lambda values: bool(values["input_file"] or values["word_counts_file"]),
        message="give --input_file (or, for wordpiece, --word_counts_file)",
    )
    app.run(main)
