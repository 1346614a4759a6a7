"""Schedules against hand-computed values; optimizer construction and state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flan_jax.optim import OptimizerConfig, make_optimizer, make_schedule


def _values(cfg, total_steps, steps):
    schedule = make_schedule(cfg, total_steps)
    return [float(schedule(s)) for s in steps]


def test_constant_defaults_match_t5x_finetuning():
    cfg = OptimizerConfig()
    assert (cfg.name, cfg.learning_rate, cfg.schedule) == ("adafactor", 1e-3, "constant")
    assert (cfg.decay_rate, cfg.clipping_threshold, cfg.momentum) == (0.8, 1.0, None)
    assert cfg.multiply_by_parameter_scale
    np.testing.assert_allclose(_values(cfg, 100, [0, 1, 50, 1000]), [1e-3] * 4, rtol=1e-6)


def test_constant_with_linear_warmup():
    cfg = OptimizerConfig(warmup_steps=10)
    np.testing.assert_allclose(
        _values(cfg, 100, [0, 5, 10, 20]), [0.0, 5e-4, 1e-3, 1e-3], rtol=1e-6
    )


def test_rsqrt():
    # lr * min(1, step/W) * sqrt(W / max(step, W)), W = 10000, lr = 0.01.
    cfg = OptimizerConfig(schedule="rsqrt", learning_rate=0.01, warmup_steps=10_000)
    np.testing.assert_allclose(
        _values(cfg, 10**6, [0, 2_500, 10_000, 40_000, 90_000]),
        [0.0, 0.0025, 0.01, 0.005, 0.01 / 3],
        rtol=1e-6,
    )
    # After warmup it equals T5X's constant * rsqrt_decay with base = lr * sqrt(W) = 1.0.
    assert _values(cfg, 10**6, [250_000])[0] == pytest.approx(1.0 / np.sqrt(250_000))


def test_cosine():
    cfg = OptimizerConfig(schedule="cosine", warmup_steps=10)
    np.testing.assert_allclose(
        _values(cfg, 110, [0, 5, 10, 35, 60, 110, 200]),
        [0.0, 5e-4, 1e-3, 1e-3 * (0.5 + 0.5 * np.cos(np.pi / 4)), 5e-4, 0.0, 0.0],
        rtol=1e-6,
        atol=1e-12,
    )
    with_floor = OptimizerConfig(schedule="cosine", warmup_steps=10, final_lr_fraction=0.1)
    np.testing.assert_allclose(_values(with_floor, 110, [60, 110]), [5.5e-4, 1e-4], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "sgd"}, r"OptimizerConfig.name='sgd' is invalid; use one of"),
        ({"schedule": "linear"}, r"OptimizerConfig.schedule='linear' is invalid"),
        ({"learning_rate": 0.0}, r"OptimizerConfig.learning_rate=0.0 is invalid"),
        ({"schedule": "rsqrt"}, r"OptimizerConfig.warmup_steps=0 is invalid; schedule='rsqrt'"),
        ({"decay_rate": 1.5}, r"OptimizerConfig.decay_rate=1.5 is invalid"),
        ({"momentum": 1.0}, r"OptimizerConfig.momentum=1.0 is invalid"),
        ({"grad_clip_norm": -1.0}, r"OptimizerConfig.grad_clip_norm=-1.0 is invalid"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        OptimizerConfig(**kwargs)
    assert "\n" not in str(e.value)


def test_cosine_needs_total_steps_beyond_warmup():
    with pytest.raises(ValueError, match=r"total_steps=10 and warmup_steps=10"):
        make_schedule(OptimizerConfig(schedule="cosine", warmup_steps=10), total_steps=10)


PARAMS = {"w": jnp.ones((256, 128)), "small": jnp.ones((4, 3)), "b": jnp.ones((128,))}


def test_adafactor_factors_2d_params():
    opt = make_optimizer(OptimizerConfig(), total_steps=10)
    (state, *_) = jax.eval_shape(opt.init, PARAMS)
    assert isinstance(state, optax.FactoredState)
    # Factored: rank-1 second moments (optax's v_row drops the largest dim, v_col the
    # second largest); the full-size v is a stub.
    assert state.v_row["w"].shape == (128,) and state.v_col["w"].shape == (256,)
    assert state.v["w"].shape == (1,)
    # Too small to factor (dims < 128) and vectors keep a full second moment.
    assert state.v["small"].shape == (4, 3) and state.v["b"].shape == (128,)


def test_adamw_first_step_and_decay_mask():
    # First AdamW step: bias-corrected m/sqrt(v) = sign(g), so update = -lr * (sign(g) + wd * p)
    # with decay on matrices only.
    cfg = OptimizerConfig(name="adamw", learning_rate=0.1, weight_decay=0.5, eps=1e-12)
    opt = make_optimizer(cfg, total_steps=10)
    params = {"w": jnp.full((2, 2), 2.0), "b": jnp.full((2,), 2.0)}
    grads = {"w": jnp.array([[1.0, -3.0], [0.5, -0.1]]), "b": jnp.array([4.0, -4.0])}
    updates, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * (np.sign(grads["w"]) + 0.5 * 2.0), atol=1e-5)
    np.testing.assert_allclose(updates["b"], -0.1 * np.sign(grads["b"]), atol=1e-5)


def test_global_norm_clipping_is_applied_first():
    # Adam's first step is scale-free, so feed two steps of very different norms: clipping
    # changes their relative weight in the moments.
    base = OptimizerConfig(name="adamw", learning_rate=0.1)
    clipped = make_optimizer(OptimizerConfig(**{**base.__dict__, "grad_clip_norm": 1.0}), 10)
    plain = make_optimizer(base, 10)
    params = {"w": jnp.ones((2, 2))}
    big = {"w": jnp.array([[30.0, 0.0], [0.0, 40.0]])}  # global norm 50 -> clipped to 1
    small = {"w": jnp.array([[0.1, 0.3], [0.3, 0.1]])}  # global norm < 1 -> untouched

    def two_steps(opt, g1, g2):
        state = opt.init(params)
        _, state = opt.update(g1, state, params)
        return opt.update(g2, state, params)[0]["w"]

    assert isinstance(clipped.init(params), tuple) and len(clipped.init(params)) == 2
    got = two_steps(clipped, big, small)
    np.testing.assert_allclose(got, two_steps(plain, {"w": big["w"] / 50.0}, small), rtol=1e-5)
    assert not np.allclose(got, two_steps(plain, big, small), rtol=1e-3)


def test_adafactor_step_reduces_a_quadratic():
    opt = make_optimizer(OptimizerConfig(learning_rate=0.1), total_steps=10)
    target = jax.random.normal(jax.random.key(0, impl="rbg"), (8, 8))
    params = {"w": jnp.zeros((8, 8)) + 0.5}
    loss = lambda p: jnp.sum((p["w"] - target) ** 2)  # noqa: E731
    state = opt.init(params)
    before = loss(params)

    @jax.jit
    def step(params, state):
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(5):
        params, state = step(params, state)
    assert loss(params) < before


@pytest.mark.parametrize(
    "overrides",
    [{}, {"momentum": 0.9}, {"weight_decay": 1e-2}, {"clipping_threshold": None}],
)
def test_adafactor_equals_optax_bit_for_bit(overrides):
    """Our chain (optax's transforms, with the cheaper parameter scaling) has optax.adafactor's
    state structure (checkpoints) and gives the same bits over three steps, including a
    parameter below the 1e-3 scale floor, an all-zero one and an unfactored one."""
    cfg = OptimizerConfig(**overrides)
    schedule = make_schedule(cfg, 100)
    ref = optax.adafactor(
        learning_rate=schedule,
        decay_rate=cfg.decay_rate,
        clipping_threshold=cfg.clipping_threshold,
        momentum=cfg.momentum,
        weight_decay_rate=cfg.weight_decay or None,
        weight_decay_mask=lambda ps: jax.tree.map(lambda p: p.ndim >= 2, ps),
    )
    ours = make_optimizer(cfg, 100)
    rng = np.random.default_rng(0)
    params = {
        "w": jnp.asarray(rng.normal(size=(256, 384)), jnp.float32),
        "tiny": jnp.asarray(rng.normal(size=(384,)) * 1e-5, jnp.float32),
        "zero": jnp.zeros((130, 140), jnp.float32),
        "heads": jnp.asarray(rng.normal(size=(64, 3, 16)), jnp.float32),
    }
    state_ours, state_ref = ours.init(params), ref.init(params)
    assert jax.tree.structure(state_ours) == jax.tree.structure(state_ref)
    p_ours = p_ref = params
    for _ in range(3):
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        u_ours, state_ours = jax.jit(ours.update)(grads, state_ours, p_ours)
        u_ref, state_ref = jax.jit(ref.update)(grads, state_ref, p_ref)
        p_ours, p_ref = optax.apply_updates(p_ours, u_ours), optax.apply_updates(p_ref, u_ref)
    for a, b in zip(jax.tree.leaves((p_ours, state_ours)), jax.tree.leaves((p_ref, state_ref))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
