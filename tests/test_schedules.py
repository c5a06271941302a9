"""Learning-rate schedules, every step against the original's (tests/golden) and HF's scheduler."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertjax import schedules
from tests import golden


SCHEDULES = golden.load("optimization")


@pytest.mark.parametrize("config_index", range(4))
def test_bert_schedule_matches_original_at_every_step(config_index):
    """create_optimizer's learning rate, read from the original's graph at every step (golden)."""
    inputs = SCHEDULES["inputs"]["schedules"]
    num_train_steps, num_warmup_steps = inputs["configs"][config_index]
    expected_rates = SCHEDULES["outputs"]["schedules"][config_index]
    assert len(expected_rates) == num_train_steps + inputs["extra_steps"]
    init_lr = inputs["init_lr"]
    lr_fn = jax.jit(schedules.bert_schedule(init_lr, num_train_steps, num_warmup_steps))
    for step, expected in enumerate(expected_rates):
        got = float(lr_fn(jnp.int32(step)))
        # atol relative to init_lr: XLA may divide by T as a multiply by 1/T, and 1 - t/T cancels
        # near the end of the decay, so the last steps agree to float32 eps of init_lr.
        np.testing.assert_allclose(
            got, expected, rtol=1e-6, atol=1e-6 * init_lr, err_msg=f"step {step}"
        )


def test_bert_schedule_drops_to_point_nine_after_ten_percent_warmup():
    lr_fn = schedules.bert_schedule(2e-5, num_train_steps=1000, num_warmup_steps=100)
    assert float(lr_fn(0)) == 0.0  # The first update of a warmed-up run has lr 0, as the original.
    np.testing.assert_allclose(float(lr_fn(50)), 1e-5, rtol=1e-6)
    np.testing.assert_allclose(float(lr_fn(99)), 0.99 * 2e-5, rtol=1e-6)
    np.testing.assert_allclose(float(lr_fn(100)), 0.9 * 2e-5, rtol=1e-6)  # Peak never reached.
    np.testing.assert_allclose(float(lr_fn(500)), 0.5 * 2e-5, rtol=1e-6)
    assert float(lr_fn(1000)) == 0.0
    assert float(lr_fn(5000)) == 0.0


@pytest.mark.parametrize("num_train_steps,num_warmup_steps", [(100, 10), (37, 5), (20, 0), (8, 8)])
def test_hf_schedule_matches_transformers_at_every_step(num_train_steps, num_warmup_steps):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    init_lr = 3e-5
    weight = torch.nn.Parameter(torch.zeros(1))
    torch_optimizer = torch.optim.SGD([weight], lr=init_lr)
    hf_scheduler = transformers.get_linear_schedule_with_warmup(
        torch_optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_train_steps
    )
    lr_fn = jax.jit(
        schedules.linear_warmup_linear_decay(init_lr, num_train_steps, num_warmup_steps)
    )
    for step in range(num_train_steps + 5):
        expected = init_lr * hf_scheduler.lr_lambdas[0](step)
        got = float(lr_fn(jnp.int32(step)))
        np.testing.assert_allclose(
            got, expected, rtol=1e-6, atol=1e-6 * init_lr, err_msg=f"step {step}"
        )


def test_hf_schedule_peaks_at_exactly_init_lr():
    lr_fn = schedules.linear_warmup_linear_decay(2e-5, num_train_steps=1000, num_warmup_steps=100)
    np.testing.assert_allclose(float(lr_fn(100)), 2e-5, rtol=1e-7)
    np.testing.assert_allclose(float(lr_fn(550)), 1e-5, rtol=1e-6)
    assert float(lr_fn(1000)) == 0.0


def test_make_schedule_by_name_and_errors():
    bert_lr, hf_lr = (schedules.make_schedule(name, 1.0, 10, 2) for name in ("bert", "hf"))
    np.testing.assert_allclose(float(bert_lr(2)), 0.8, rtol=1e-6)
    np.testing.assert_allclose(float(hf_lr(2)), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'cosine'"):
        schedules.make_schedule("cosine", 1.0, 10, 2)
    with pytest.raises(ValueError, match="num_warmup_steps"):
        schedules.bert_schedule(1.0, num_train_steps=10, num_warmup_steps=11)
    with pytest.raises(ValueError, match="num_train_steps"):
        schedules.linear_warmup_linear_decay(1.0, num_train_steps=0, num_warmup_steps=0)
