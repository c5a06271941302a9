"""TFDS sources: a dataset that is not prepared is a clear error; a prepared one is read.

The README's GLUE command reads TFDS `glue/<task>` by default. tfds.testing.mock_data stands in
for a prepared dataset (records generated from the builder's own feature spec), so no download
is needed here.
"""

import pytest
import tensorflow_datasets as tfds

from data_pipelines import glue, squad, tfds_source


def test_an_unprepared_glue_dataset_says_how_to_prepare_it_or_use_tsv(tmp_path):
    with pytest.raises(tfds_source.DatasetNotPreparedError) as error:
        glue.load_tfds_examples("rte", "train", data_dir=str(tmp_path))
    message = str(error.value)
    assert f"TFDS dataset glue/rte is not prepared in {tmp_path}" in message
    assert f"tfds build glue/rte --data_dir={tmp_path}" in message
    assert "task=rte,source=tsv,glue_dir=GLUE_DIR" in message
    assert isinstance(error.value, FileNotFoundError)


def test_an_unprepared_squad_dataset_names_the_json_alternative(tmp_path):
    with pytest.raises(tfds_source.DatasetNotPreparedError, match="squad/v2.0 is not prepared.*"
                       "--config.data.train_file"):
        squad.load_tfds_dataset("v2.0", "train", data_dir=str(tmp_path))


def test_a_prepared_glue_dataset_is_read_as_examples():
    with tfds.testing.mock_data(num_examples=7):
        examples = glue.load_tfds_examples("rte", "validation")
    assert len(examples) == 7
    task = glue.get_task("rte")
    for example in examples:
        assert isinstance(example.text_a, str) and isinstance(example.text_b, str)
        assert example.label in task.label_list
