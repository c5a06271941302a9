"""Golden sharding table: the partition spec of every BERT-large param and optimizer-state leaf.

The table (tests/fixtures/sharding/bert_large_partition_specs.json) lists, for each mesh layout
(dp, fsdp, tp, fsdp+tp over 8 devices), each leaf of the train state that
experiments/bert_large_pretrain.py builds (scanned layers, the original BERT Adam) with its
global shape and the mesh axes that split each dimension. A change to the logical-axis rules, to a
layer's axis names or to how the optimizer state follows the params shows here as a readable
diff, before it shows as an all-gathered embedding on a pod. When a change is intended,
regenerate the table and review the diff:

    PYTHONPATH=. python -m tests.test_sharding_golden --update
"""

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import json  # noqa: E402
import pathlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from bertjax import train  # noqa: E402
from experiments import bert_large_pretrain  # noqa: E402

GOLDEN = pathlib.Path(__file__).parent / "fixtures" / "sharding" / "bert_large_partition_specs.json"
LAYOUTS = {
    "dp": {"data": 8, "fsdp": 1, "tensor": 1},
    "fsdp": {"data": 1, "fsdp": 8, "tensor": 1},
    "tp": {"data": 1, "fsdp": 1, "tensor": 8},
    "fsdp_tp": {"data": 1, "fsdp": 4, "tensor": 2},
}


def _path(key_path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                    for k in key_path)


def _spec(sharding, ndim: int) -> str:
    """The mesh axes that split each dimension, "+"-joined; axes of size 1 split nothing and
    are left out, so the table shows where each shard really lives."""
    entries = tuple(sharding.spec) + (None,) * (ndim - len(sharding.spec))
    dims = []
    for entry in entries:
        names = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
        names = [name for name in names if sharding.mesh.shape[name] > 1]
        dims.append("+".join(names) if names else "None")
    return "(" + ", ".join(dims) + ")"


def partition_table(layout: str) -> dict[str, str]:
    """{"params/...": "[shape] -> (mesh axes per dim)", "opt_state/...": ...} of BERT-large."""
    config = bert_large_pretrain.get_config("phase=1")
    config.mesh.update(LAYOUTS[layout])
    parts = train.build_step(config, jax.devices()[:8])
    table = {}
    for group in ("params", "opt_state"):
        tree = getattr(parts.abstract_state, group)
        for key_path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            shape = ",".join(str(d) for d in leaf.shape)
            table[f"{group}/{_path(key_path)}"] = (f"[{shape}] -> "
                                                   f"{_spec(leaf.sharding, len(leaf.shape))}")
    return table


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_partition_specs_match_the_golden_table(golden, layout):
    assert len(jax.devices()) >= 8, "needs the 8 fake CPU devices of tests/conftest.py"
    actual, expected = partition_table(layout), golden[layout]
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = [f"{key}: golden {expected[key]}, now {actual[key]}"
               for key in sorted(set(actual) & set(expected)) if actual[key] != expected[key]]
    assert not (missing or extra or changed), (
        f"{layout}: {len(missing)} leaves missing, {len(extra)} new, {len(changed)} changed "
        f"(regenerate with `python -m tests.test_sharding_golden --update` if intended):\n"
        + "\n".join(missing[:10] + extra[:10] + changed[:20]))


def test_golden_table_shards_what_each_layout_promises(golden):
    """The committed table itself states the strategies: fsdp splits every large weight and
    its Adam moments, tp splits heads and mlp, dp replicates everything."""
    embeddings = "params/bert/embeddings/word_embeddings/embedding"
    assert golden["dp"][embeddings] == "[30522,1024] -> (None, None)"
    assert golden["fsdp"][embeddings] == "[30522,1024] -> (None, fsdp)"
    # 30,522 rows do not divide over 8 tensor shards: replicated rather than failing.
    assert golden["tp"][embeddings] == "[30522,1024] -> (None, None)"
    for layout in ("dp", "fsdp", "tp", "fsdp_tp"):
        table = golden[layout]
        params = {k[len("params/"):]: v for k, v in table.items() if k.startswith("params/")}
        moments = [k for k in table if k.startswith("opt_state/")
                   and any(k.endswith("/" + name) for name in params)]
        assert len(moments) >= 2 * len(params)  # mu and nu of every param
        for key in moments:
            name = next(n for n in sorted(params, key=len, reverse=True)
                        if key.endswith("/" + n))
            assert table[key] == params[name], (layout, key)
        if layout == "dp":
            assert all("fsdp" not in v and "tensor" not in v for v in table.values())
        if layout in ("fsdp", "fsdp_tp"):
            big = [k for k, v in params.items() if "1024,4096" in v or "4096,1024" in v]
            assert big and all("fsdp" in params[k] for k in big), layout
        if layout in ("tp", "fsdp_tp"):
            mlp = [k for k in params if k.endswith("intermediate/dense/kernel")]
            assert mlp and all("tensor" in params[k] for k in mlp), layout


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit("usage: python -m tests.test_sharding_golden --update")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({layout: partition_table(layout) for layout in sorted(LAYOUTS)},
                      indent=1, sort_keys=True) + "\n"
    tmp = GOLDEN.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(GOLDEN)
    print(f"wrote {GOLDEN}")
