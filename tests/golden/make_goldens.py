"""Writes the golden fixtures of tests/golden/ from the original code, which stays outside the repo.

    python -m tests.golden.make_goldens --original_dir=PATH_TO_google-research/bert \
        [--squad_scripts_dir=PATH_WITH_evaluate-v1.1.py_AND_evaluate-v2.0.py] [--golden_dir=DIR]

--original_dir: a checkout of github.com/google-research/bert at commit
eedf5716ce1268e56f0a50264a88cafad334ac61 (its tokenization.py, create_pretraining_data.py,
run_classifier.py, run_squad.py and optimization.py are checked against the SHA-256 sums
below). Its TF1 modules are imported by benchmarks/original_bert.py with tensorflow.compat.v1
standing in for tensorflow; optimization.py runs in a TF1 graph and session.

--squad_scripts_dir: the official SQuAD evaluation scripts evaluate-v1.1.py and evaluate-v2.0.py
(from the SQuAD site, rajpurkar.github.io/SQuAD-explorer), run as subprocesses on stored datasets
and predictions. Without it, squad_scores.json is left as it is.

Inputs live in the golden files themselves and are reused on every run: only the outputs are
recomputed. When a golden file does not exist yet, its inputs are drawn once from this Python's
standard-library docstrings (tokenization lines, the pretraining corpus) and from seeded numpy
generators (random SQuAD answers), then stored.
"""

from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

if __package__ in (None, ""):  # Run as a file path: make the repository importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from benchmarks import original_bert  # noqa: E402
from data_pipelines import corpora, glue, storage, tokenization  # noqa: E402
from tests import golden  # noqa: E402
from tests.golden import golden_inputs  # noqa: E402

ORIGINAL_COMMIT = "eedf5716ce1268e56f0a50264a88cafad334ac61"
ORIGINAL_SHA256 = {
    "tokenization.py": "576f8e709eaa59c999a8aed3f32c581487d59ab47079fe64b3d3fa457bc7fb34",
    "create_pretraining_data.py":
        "7c3df7749e6327f85fdd00adaf6ed55d6399ee58d3d844d2281db60b36129b21",
    "run_classifier.py": "53e9aaa27864cb89cc15328d4a337d83b2451bc6f9c904ddf8a59d4df8ccecdb",
    "run_squad.py": "163fd48c7f6b5135a29e25f2cbdae65dbff9697cbff41ce3ebd7d16fdf2ea230",
    "optimization.py": "5b0943f0f068320f2902e3ba103289737389e6103de4bc24afe3baa6e486268f",
}

flags.DEFINE_string("original_dir", None, f"google-research/bert checkout at {ORIGINAL_COMMIT}.")
flags.DEFINE_string("squad_scripts_dir", None, "Folder with evaluate-v1.1.py and evaluate-v2.0.py.")
flags.DEFINE_string("golden_dir", golden.GOLDEN_DIR, "Where the golden JSON files are written.")
FLAGS = flags.FLAGS


def _existing(name: str) -> dict | None:
    file_name = os.path.join(FLAGS.golden_dir, f"{name}.json")
    if not os.path.isfile(file_name):
        return None
    with open(file_name, encoding="utf-8") as golden_file:
        return json.load(golden_file)


def _write(name: str, contents: dict) -> None:
    """One JSON file, one top-level key per line, atomically (a kill never leaves half a file)."""
    body = ",\n".join(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=True)}"
                      for key, value in contents.items())
    file_name = os.path.join(FLAGS.golden_dir, f"{name}.json")
    storage.write_text(file_name, "{\n" + body + "\n}\n")
    logging.info("wrote %s (%d bytes)", file_name, os.path.getsize(file_name))


class OriginalModule:
    """A checkout module imported for the duration of a `with`; the absl flags it defines are
    removed afterwards, so run_classifier and run_squad (which define the same names) can follow."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.flags_before = set(FLAGS)
        return original_bert.load_module(FLAGS.original_dir, self.name)

    def __exit__(self, *exc_info):
        for flag_name in set(FLAGS) - self.flags_before:
            delattr(FLAGS, flag_name)


def _check_checkout(original_dir: str) -> None:
    for file_name, expected in ORIGINAL_SHA256.items():
        file_path = os.path.join(original_dir, file_name)
        if not os.path.isfile(file_path):
            raise FileNotFoundError(f"original_dir={original_dir}: no {file_name}; pass a checkout "
                                    f"of github.com/google-research/bert at {ORIGINAL_COMMIT}")
        if golden.file_sha256(file_path) != expected:
            raise ValueError(f"{file_path}: SHA-256 differs from google-research/bert at "
                             f"{ORIGINAL_COMMIT}; check out that commit")


def _source() -> dict:
    return {"google-research/bert": ORIGINAL_COMMIT, "python": sys.version.split()[0],
            "unidata_version": unicodedata.unidata_version}


def _vocab_file() -> str:
    return str(tokenization.bundled_uncased_vocab_file())


# --------------------------------------------------------------------------------------------
# tokenization.py
# --------------------------------------------------------------------------------------------


def make_tokenization() -> dict:
    stored = _existing("tokenization")
    inputs = stored["inputs"] if stored else dict(lines=golden_inputs.docstring_lines(),
                                                  edge_cases=golden_inputs.UNICODE_EDGE_CASES)
    lines = inputs["lines"]
    edge_cases = [golden.decode_text(text) for text in inputs["edge_cases"]]
    vocab_file = _vocab_file()
    with OriginalModule("tokenization") as original:
        vocab = original.load_vocab(vocab_file)
        outputs = dict(vocab=dict(size=len(vocab), digest=golden.digest(list(vocab.items()))))
        for casing, do_lower_case in (("uncased", True), ("cased", False)):
            full = original.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
            basic = original.BasicTokenizer(do_lower_case=do_lower_case)
            outputs[casing] = dict(
                lines=[golden.join_tokens(full.tokenize(line)) for line in lines],
                edge_cases=[full.tokenize(text) for text in edge_cases],
                edge_cases_basic=[full.basic_tokenizer.tokenize(text) for text in edge_cases],
                code_point_blocks=[
                    [block[0], block[-1],
                     golden.digest(basic.tokenize(golden.code_point_text(block)))]
                    for block in golden.code_point_blocks()
                ],
            )
    return dict(source=_source(), vocab_sha256=golden.file_sha256(vocab_file),
                inputs=dict(lines=lines, edge_cases=[golden.encode_text(t) for t in edge_cases]),
                outputs=outputs)


# --------------------------------------------------------------------------------------------
# create_pretraining_data.py
# --------------------------------------------------------------------------------------------

STATISTICS = ("instances", "length", "short", "random_next", "masked")


def make_create_pretraining_data() -> dict:
    stored = _existing("create_pretraining_data")
    inputs = stored["inputs"] if stored else golden_inputs.pretraining_inputs()
    settings = inputs["settings"]
    with OriginalModule("create_pretraining_data") as original:
        tokenizer = original.tokenization.FullTokenizer(_vocab_file(), do_lower_case=True)
        vocab_words = list(tokenizer.vocab.keys())
        documents = []  # As the original reads them: documents of tokenised lines, none empty.
        for lines in inputs["corpus"]:
            document = [tokens for tokens in map(tokenizer.tokenize, lines) if tokens]
            if document:
                documents.append(document)

        # One cluster per (repeat, document): its instances share a target length, so the tests
        # compute standard errors over clusters. Stored as [sum, instance count] per cluster.
        clusters = {name: [] for name in STATISTICS}
        kinds = collections.Counter()
        original.FLAGS.do_whole_word_mask = False
        for repeat in range(settings["repeats"]):
            rng = random.Random(repeat)
            for index in range(len(documents)):
                produced = original.create_instances_from_document(
                    documents, index, settings["max_seq_length"], settings["short_seq_prob"],
                    settings["masked_lm_prob"], settings["max_predictions_per_seq"], vocab_words,
                    rng)
                count = len(produced)
                clusters["instances"].append([count, 1])
                clusters["length"].append([sum(len(x.tokens) for x in produced), count])
                clusters["short"].append([sum(len(x.tokens) < settings["short_length"]
                                              for x in produced), count])
                clusters["random_next"].append([sum(x.is_random_next for x in produced), count])
                clusters["masked"].append([sum(len(x.masked_lm_positions) for x in produced),
                                           count])
                for instance in produced:
                    for position, label in zip(instance.masked_lm_positions,
                                               instance.masked_lm_labels):
                        token = instance.tokens[position]
                        kinds["mask" if token == "[MASK]" else
                              "keep" if token == label else "random"] += 1

        truncated = []
        for a_length, b_length, limit in inputs["truncation_cases"]:
            tokens_a, tokens_b = list(range(a_length)), list(range(1000, 1000 + b_length))
            original.truncate_seq_pair(tokens_a, tokens_b, limit, random.Random(1))
            truncated.append([len(tokens_a), len(tokens_b)])

        whole_word = inputs["whole_word"]
        tokens = (["[CLS]"] + tokenizer.tokenize(whole_word["text_a"]) + ["[SEP]"]
                  + tokenizer.tokenize(whole_word["text_b"]) + ["[SEP]"])
        original.FLAGS.do_whole_word_mask = True
        counts, rng = collections.Counter(), random.Random(0)
        for _ in range(whole_word["draws"]):
            _, positions, _ = original.create_masked_lm_predictions(
                tokens, settings["masked_lm_prob"], whole_word["max_predictions_per_seq"],
                vocab_words, rng)
            counts[len(positions)] += 1
        original.FLAGS.do_whole_word_mask = False

        one_sentence = inputs["one_sentence"]
        short_documents = [[tokenizer.tokenize(line) for line in document]
                           for document in one_sentence["documents"]]
        first_document = []
        for seed in range(one_sentence["seeds"]):
            produced = original.create_instances_from_document(
                short_documents, 0, 128, 0.1, 0.15, 20, vocab_words, random.Random(seed))
            first_document.append([len(produced), all(x.is_random_next for x in produced)])
    return dict(
        source=_source(), inputs=inputs,
        outputs=dict(
            documents=len(documents), clusters=clusters, replacement_kinds=dict(kinds),
            truncated_lengths=truncated, whole_word_tokens=tokens,
            whole_word_masked_counts={str(k): v for k, v in sorted(counts.items())},
            one_sentence_instances=first_document))


# --------------------------------------------------------------------------------------------
# run_classifier.py
# --------------------------------------------------------------------------------------------


def make_glue_features() -> dict:
    stored = _existing("glue_features")
    inputs = stored["inputs"] if stored else golden_inputs.glue_inputs()
    outputs = {}
    with OriginalModule("run_classifier") as original:
        tokenizer = original.tokenization.FullTokenizer(_vocab_file(), do_lower_case=True)
        for task_name, examples in inputs["examples"].items():
            label_list = glue.TASKS[task_name].label_list
            outputs[task_name] = {}
            for max_seq_length in inputs["max_seq_lengths"]:
                rows = []
                for index, (guid, text_a, text_b, label) in enumerate(examples):
                    # The original maps labels through label_list; regression gets a stand-in.
                    feature = original.convert_single_example(
                        index, original.InputExample(guid, text_a, text_b, label),
                        list(label_list) if label_list else [label], max_seq_length, tokenizer)
                    rows.append(dict(input_ids=golden.unpadded(feature.input_ids),
                                     input_mask=golden.unpadded(feature.input_mask),
                                     segment_ids=golden.unpadded(feature.segment_ids),
                                     label_id=feature.label_id))
                outputs[task_name][str(max_seq_length)] = rows
    return dict(source=_source(), inputs=inputs, outputs=outputs)


# --------------------------------------------------------------------------------------------
# run_squad.py
# --------------------------------------------------------------------------------------------


def _squad_file(data: list, directory: str, name: str) -> str:
    file_name = os.path.join(directory, name)
    with open(file_name, "w", encoding="utf-8") as json_file:
        json.dump({"version": "golden", "data": data}, json_file)
    return file_name


def _squad_features(original, examples, tokenizer, max_seq_length, doc_stride, max_query_length,
                    is_training):
    features = []
    original.convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                          max_query_length, is_training, features.append)
    return features


def _runs_map(mapping) -> list:
    first, values = golden.position_map(mapping)
    return [first, golden.run_lengths(values)]


def _compact_feature(feature, tokenizer) -> dict:
    """A run_squad InputFeatures, losslessly compacted: tokens are the vocab entries of input_ids,
    masks and segment ids run lengths, position maps [first position, values]."""
    if tokenizer.convert_ids_to_tokens(feature.input_ids[:len(feature.tokens)]) != feature.tokens:
        raise ValueError(f"feature {feature.unique_id}: tokens are not the vocab entries of "
                         "its ids")
    return dict(
        unique_id=feature.unique_id, example_index=feature.example_index,
        doc_span_index=feature.doc_span_index, num_tokens=len(feature.tokens),
        token_to_orig_map=golden.position_map(feature.token_to_orig_map),
        token_is_max_context=_runs_map(feature.token_is_max_context),
        input_ids=golden.unpadded(feature.input_ids),
        input_mask=golden.run_lengths(feature.input_mask),
        segment_ids=golden.run_lengths(feature.segment_ids),
        start_position=feature.start_position, end_position=feature.end_position,
        is_impossible=bool(feature.is_impossible))


def make_squad_features() -> dict:
    stored = _existing("squad_features")
    inputs = stored["inputs"] if stored else golden_inputs.squad_feature_inputs()
    outputs = dict(examples={}, features={})
    with OriginalModule("run_squad") as original, tempfile.TemporaryDirectory() as directory:
        tokenizer = original.tokenization.FullTokenizer(_vocab_file(), do_lower_case=True)
        for version, data in inputs["datasets"].items():
            original.FLAGS.version_2_with_negative = version == "v2.0"
            path = _squad_file(data, directory, f"{version}.json")
            for is_training in (True, False):
                examples = original.read_squad_examples(path, is_training)
                key = f"{version}/{'train' if is_training else 'predict'}"
                outputs["examples"][key] = [
                    [e.qas_id, e.question_text, e.doc_tokens, e.orig_answer_text, e.start_position,
                     e.end_position, e.is_impossible] for e in examples]
                for max_seq_length, doc_stride, max_query_length in inputs["windows"]:
                    features = _squad_features(original, examples, tokenizer, max_seq_length,
                                               doc_stride, max_query_length, is_training)
                    window = f"{max_seq_length}-{doc_stride}-{max_query_length}"
                    outputs["features"][f"{key}/{window}"] = [
                        _compact_feature(f, tokenizer) for f in features]
        # An answer whose text is not at its offset: the original skips the question.
        unrecoverable = inputs["unrecoverable"]
        data = json.loads(json.dumps(inputs["datasets"]["v1.1"]))
        for article in data:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    if qa["id"] == unrecoverable["qas_id"]:
                        qa["answers"][0]["text"] = unrecoverable["answer_text"]
        original.FLAGS.version_2_with_negative = False
        outputs["unrecoverable_qas_ids"] = [
            e.qas_id for e in original.read_squad_examples(
                _squad_file(data, directory, "unrecoverable.json"), True)]
        outputs["final_text"] = [original.get_final_text(pred_text, orig_text, True)
                                 for pred_text, orig_text in inputs["final_text"]]
    return dict(source=_source(), inputs=inputs, outputs=outputs)


def make_squad_predictions() -> dict:
    """write_predictions on seeded logits (numpy's PCG64 normals; their sums are stored so a
    change of generator shows as such, not as a post-processing difference)."""
    stored = _existing("squad_predictions")
    inputs = stored["inputs"] if stored else golden_inputs.squad_prediction_inputs()
    datasets = _existing("squad_features")["inputs"]["datasets"]
    outputs = []
    with OriginalModule("run_squad") as original, tempfile.TemporaryDirectory() as directory:
        tokenizer = original.tokenization.FullTokenizer(_vocab_file(), do_lower_case=True)
        for case in inputs["cases"]:
            version_2 = case["version"] == "v2.0"
            original.FLAGS.version_2_with_negative = version_2
            original.FLAGS.null_score_diff_threshold = inputs["null_score_diff_threshold"]
            examples = original.read_squad_examples(
                _squad_file(datasets[case["version"]], directory, "data.json"), False)
            features = _squad_features(original, examples, tokenizer, case["max_seq_length"],
                                       case["doc_stride"], inputs["max_query_length"], False)
            start_logits, end_logits = golden_inputs.seeded_logits(
                case["seed"], np.array([f.input_mask for f in features]))
            results = [original.RawResult(f.unique_id, [float(x) for x in start],
                                          [float(x) for x in end])
                       for f, start, end in zip(features, start_logits, end_logits)]
            files = [os.path.join(directory, name)
                     for name in ("predictions.json", "nbest.json", "null_odds.json")]
            original.write_predictions(examples, features, results, case["n_best_size"],
                                       case["max_answer_length"], True, *files)
            loaded = []
            for file_name in files[:2] + files[2:] * version_2:
                with open(file_name, encoding="utf-8") as json_file:
                    loaded.append(json.load(json_file))
            outputs.append(dict(
                logits_shape=list(start_logits.shape),
                logits_sums=[float(start_logits.astype(np.float64).sum()),
                             float(end_logits.astype(np.float64).sum())],
                predictions=loaded[0], nbest=loaded[1],
                null_odds=loaded[2] if version_2 else None))
    return dict(source=_source(), inputs=inputs, outputs=outputs)


# --------------------------------------------------------------------------------------------
# optimization.py (TF1 graph mode, under tensorflow.compat.v1)
# --------------------------------------------------------------------------------------------


class _OptimizerRun:
    """One graph: the params as variables, their gradients fed (d loss / d var = the fed value)."""

    def __init__(self, original, params: list, build):
        import tensorflow as tf
        tf1 = tf.compat.v1
        self.graph = tf.Graph()
        learning_rates = []
        init = original.AdamWeightDecayOptimizer.__init__

        def capturing_init(optimizer, learning_rate, *args, **kwargs):
            learning_rates.append(learning_rate)  # The schedule's tensor, for the goldens.
            init(optimizer, learning_rate, *args, **kwargs)

        with self.graph.as_default():
            self.variables = {name: tf1.get_variable(name, initializer=value)
                              for name, value in golden_inputs.named_arrays(params).items()}
            self.feeds = {name: tf1.placeholder(tf.float32, variable.shape)
                          for name, variable in self.variables.items()}
            loss = tf.add_n([tf.reduce_sum(self.variables[name] * self.feeds[name])
                             for name in self.variables])
            self.global_norm = tf.linalg.global_norm(list(self.feeds.values()))
            original.AdamWeightDecayOptimizer.__init__ = capturing_init
            try:
                self.train_op = build(loss, self.variables)
            finally:
                original.AdamWeightDecayOptimizer.__init__ = init
            self.learning_rate = tf.convert_to_tensor(learning_rates[0])
            self.session = tf1.Session(graph=self.graph)
            self.session.run(tf1.global_variables_initializer())

    def step(self, gradients: dict) -> tuple[float, float]:
        """Learning rate used, gradients' global norm; then one update."""
        feed = {self.feeds[name]: value for name, value in gradients.items()}
        learning_rate, norm = self.session.run([self.learning_rate, self.global_norm], feed)
        self.session.run(self.train_op, feed)
        return float(learning_rate), float(norm)

    def params(self) -> dict:
        return {name: golden_inputs.shortest_float32(value)
                for name, value in self.session.run(self.variables).items()}


def make_optimization() -> dict:
    stored = _existing("optimization")
    inputs = stored["inputs"] if stored else golden_inputs.optimization_inputs()
    outputs = {}
    with OriginalModule("optimization") as original:
        recipe = inputs["recipe"]
        run = _OptimizerRun(original, recipe["params"], lambda loss, _: original.create_optimizer(
            loss, recipe["init_lr"], recipe["num_train_steps"], recipe["num_warmup_steps"], False))
        gradients = golden_inputs.seeded_gradients(recipe["params"], recipe["gradient_seed"],
                                                   recipe["gradient_scales"],
                                                   recipe["num_train_steps"])
        learning_rates, clipped, checkpoints = [], 0, {}
        for t, step_gradients in enumerate(gradients):
            learning_rate, norm = run.step(step_gradients)
            learning_rates.append(learning_rate)
            clipped += norm > 1.0
            if t + 1 in recipe["checkpoints"]:
                checkpoints[str(t + 1)] = run.params()
        outputs["recipe"] = dict(learning_rates=learning_rates, clipped_steps=clipped,
                                 params=checkpoints)

        constant = inputs["constant"]

        def adam_only(loss, variables):
            optimizer = original.AdamWeightDecayOptimizer(
                learning_rate=constant["learning_rate"], weight_decay_rate=0.0)
            names = list(variables)
            import tensorflow as tf
            grads = tf.gradients(loss, [variables[name] for name in names])
            return optimizer.apply_gradients(zip(grads, [variables[n] for n in names]))

        run = _OptimizerRun(original, constant["params"], adam_only)
        checkpoints = {}
        gradients = golden_inputs.seeded_gradients(constant["params"], constant["gradient_seed"],
                                                   constant["gradient_scales"], constant["steps"])
        for t, step_gradients in enumerate(gradients):
            run.step(step_gradients)
            if t + 1 in constant["checkpoints"]:
                checkpoints[str(t + 1)] = run.params()
        outputs["constant"] = dict(params=checkpoints)

        schedules = inputs["schedules"]
        outputs["schedules"] = []
        for num_train_steps, num_warmup_steps in schedules["configs"]:
            params = [["w", [1], [0.0]]]
            run = _OptimizerRun(original, params, lambda loss, _: original.create_optimizer(
                loss, schedules["init_lr"], num_train_steps, num_warmup_steps, False))
            zero = {"w": np.zeros(1, np.float32)}
            outputs["schedules"].append(
                [run.step(zero)[0] for _ in range(num_train_steps + schedules["extra_steps"])])
    return dict(source=_source(), inputs=inputs, outputs=outputs)


# --------------------------------------------------------------------------------------------
# Official SQuAD evaluation scripts.
# --------------------------------------------------------------------------------------------


def _official_scores(scripts_dir: str, case: dict, directory: str) -> dict:
    dataset = golden.squad_dataset(case["questions"])
    data_file = os.path.join(directory, "data.json")
    with open(data_file, "w", encoding="utf-8") as json_file:
        json.dump({"version": "1.1" if case["version"] == "v1.1" else "v2.0", "data": dataset},
                  json_file)
    prediction_file = os.path.join(directory, "predictions.json")
    with open(prediction_file, "w", encoding="utf-8") as json_file:
        json.dump(case["predictions"], json_file)
    script = os.path.join(scripts_dir, f"evaluate-{case['version']}.py")
    command = [sys.executable, script, data_file, prediction_file]
    out_file = os.path.join(directory, "scores.json")
    if case["version"] == "v2.0":
        command += ["--out-file", out_file]
        if case.get("na_probs") is not None:
            na_file = os.path.join(directory, "na_probs.json")
            with open(na_file, "w", encoding="utf-8") as json_file:
                json.dump(case["na_probs"], json_file)
            command += ["--na-prob-file", na_file, "--na-prob-thresh", str(case["na_prob_thresh"])]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    if case["version"] == "v1.1":
        return json.loads(result.stdout)
    with open(out_file, encoding="utf-8") as json_file:
        return json.load(json_file)


def make_squad_scores(scripts_dir: str) -> dict:
    stored = _existing("squad_scores")
    inputs = stored["inputs"] if stored else golden_inputs.squad_score_inputs()
    scripts = {}
    for version in ("v1.1", "v2.0"):
        script = os.path.join(scripts_dir, f"evaluate-{version}.py")
        if not os.path.isfile(script):
            raise FileNotFoundError(f"squad_scripts_dir={scripts_dir}: no evaluate-{version}.py")
        scripts[f"evaluate-{version}.py"] = golden.file_sha256(script)
    with tempfile.TemporaryDirectory() as directory:
        outputs = [_official_scores(scripts_dir, case, directory) for case in inputs["cases"]]
    return dict(source=dict(scripts_sha256=scripts, python=sys.version.split()[0]),
                inputs=inputs, outputs=outputs)


def main(argv):
    del argv
    if not FLAGS.original_dir:
        raise app.UsageError(
            f"--original_dir is required (google-research/bert at {ORIGINAL_COMMIT})")
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")  # The original logs every feature it converts.
    FLAGS.original_dir = os.path.abspath(FLAGS.original_dir)
    _check_checkout(FLAGS.original_dir)
    _write("tokenization", make_tokenization())
    _write("create_pretraining_data", make_create_pretraining_data())
    _write("glue_features", make_glue_features())
    _write("squad_features", make_squad_features())
    _write("squad_predictions", make_squad_predictions())
    _write("optimization", make_optimization())
    if FLAGS.squad_scripts_dir:
        _write("squad_scores", make_squad_scores(os.path.abspath(FLAGS.squad_scripts_dir)))
    else:
        logging.info("no --squad_scripts_dir: squad_scores.json left as it is")


if __name__ == "__main__":
    app.run(main)
