"""Learning-rate schedules, every step against the original's formula and HF's scheduler."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertjax import schedules


def original_bert_learning_rate(init_lr, num_train_steps, num_warmup_steps, global_step):
    """Literal NumPy (float32) transcription of google-research/bert create_optimizer's schedule."""
    f32 = np.float32
    learning_rate = f32(init_lr)
    # tf.train.polynomial_decay(lr, global_step, num_train_steps, end_learning_rate=0.0,
    #                           power=1.0, cycle=False)
    step = min(global_step, num_train_steps)
    learning_rate = (learning_rate - f32(0.0)) * (f32(1) - f32(step) / f32(num_train_steps)) ** f32(
        1.0
    ) + f32(0.0)
    if num_warmup_steps:
        global_steps_float = f32(global_step)
        warmup_steps_float = f32(num_warmup_steps)
        warmup_percent_done = global_steps_float / warmup_steps_float
        warmup_learning_rate = f32(init_lr) * warmup_percent_done
        is_warmup = f32(global_step < num_warmup_steps)
        learning_rate = (f32(1.0) - is_warmup) * learning_rate + is_warmup * warmup_learning_rate
    return learning_rate


@pytest.mark.parametrize("num_train_steps,num_warmup_steps", [(100, 10), (37, 5), (20, 0), (8, 8)])
def test_bert_schedule_matches_original_at_every_step(num_train_steps, num_warmup_steps):
    init_lr = 1e-4
    lr_fn = jax.jit(schedules.bert_schedule(init_lr, num_train_steps, num_warmup_steps))
    for step in range(num_train_steps + 5):
        expected = original_bert_learning_rate(init_lr, num_train_steps, num_warmup_steps, step)
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
