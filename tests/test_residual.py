"""aslnb.course.residual: plain/residual builders, the residual block, gradient norms, ResNet50 stages."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from aslnb.course import residual, residual_figures
from aslnb.errors import ParameterError


@pytest.mark.parametrize("depth", [2, 6])
@pytest.mark.parametrize("is_residual", [False, True])
def test_builders_have_requested_depth(depth, is_residual):
    model = residual.build_conv_net(depth, residual=is_residual, input_size=16, num_classes=5, width=4)
    assert residual.body_depth(model) == depth
    assert model.output_shape == (None, 5)
    assert model.name == f"{'residual' if is_residual else 'plain'}_{depth}"


def test_plain_and_residual_have_same_parameter_count():
    plain = residual.build_conv_net(4, residual=False, input_size=16, num_classes=5, width=4)
    res = residual.build_conv_net(4, residual=True, input_size=16, num_classes=5, width=4)
    assert plain.count_params() == res.count_params()


def test_odd_residual_depth_refused():
    with pytest.raises(ParameterError, match="even"):
        residual.build_conv_net(3, residual=True)


def test_residual_block_shape_and_identity_at_zero_init():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    block = keras.Model(inputs, residual.residual_block(inputs, 4, "b", zero_init=True))
    x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 4)).astype("float32")  # >= 0: relu(x) == x
    y = keras.ops.convert_to_numpy(block(x))
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_residual_block_not_identity_without_zero_init():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    block = keras.Model(inputs, residual.residual_block(inputs, 4, "b"))
    x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 4)).astype("float32")
    assert not np.allclose(keras.ops.convert_to_numpy(block(x)), x, atol=1e-3)


def test_gradient_norms_one_value_per_layer_and_vanish_in_plain_nets():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 5, 16)
    plain = residual.build_conv_net(16, residual=False, input_size=16, num_classes=5, width=8)
    norms = residual.gradient_norms(plain, x, y)  # Keras defaults: Glorot, no BN
    assert list(norms) == [layer.name for layer in residual.weighted_layers(plain)]
    assert len(norms) == 16 + 2  # stem + body + dense
    assert all(np.isfinite(v) and v >= 0 for v in norms.values())
    res = residual.build_conv_net(16, residual=True, input_size=16, num_classes=5, width=8)
    rnorms = residual.gradient_norms(res, x, y)
    # the first layer of the plain net gets far less gradient than in the residual net
    assert norms["stem_conv"] < 0.1 * rnorms["stem_conv"]


def test_resnet50_stage_params_sum_to_total():
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))
    counts = residual.resnet50_stage_params(model)
    assert list(counts)[:5] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert sum(counts.values()) == model.count_params()
    assert counts["conv1"] == 7 * 7 * 3 * 64 + 64 + 4 * 64  # conv + bias, BN (gamma, beta, mean, var)
    table = residual.resnet50_stage_table(model)
    assert [r["blocks"] for r in table[:5]] == [0, 3, 4, 6, 3]
    assert table[4]["output_shape"] == (2, 2, 2048)


@pytest.mark.slow
def test_depth_study_smoke():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 8, 8, 3)).astype("uint8")
    y = rng.integers(0, 3, 24)
    runs = residual.train_depth_study([2], (x, y), (x, y), epochs=2, num_classes=3, width=4, batch_size=8)
    assert [r.name for r in runs] == ["plain_2", "residual_2"]
    assert all(len(r.loss) == 2 and len(r.val_accuracy) == 2 for r in runs)
    rows = residual.degradation_table(runs)
    assert rows[0]["net"] == "plain_2" and rows[0]["params"] == runs[0].params


def test_draw_residual_block():
    import matplotlib

    matplotlib.use("Agg")
    fig = residual_figures.draw_residual_block()
    assert fig.axes[0].get_title()


def test_zero_init_with_batch_norm_starts_as_identity_and_can_learn():
    """With BN, zero_init zeroes the last gamma only: the block starts as relu(x) and its branch gets gradient."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    block = keras.Model(inputs, residual.residual_block(inputs, 4, "b", batch_norm=True, zero_init=True,
                                                        kernel_initializer="he_normal"))
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(block(x, training=True)), x, atol=1e-5)
    gamma = block.get_layer("b_bn2").gamma
    kernel = block.get_layer("b_conv2").kernel
    assert np.abs(keras.ops.convert_to_numpy(kernel)).max() > 0  # the conv keeps its initialisation
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(block(x, training=True) * np.linspace(-1, 1, x.size).reshape(x.shape))
    g_gamma, g_kernel = tape.gradient(loss, [gamma.value, kernel.value])
    assert float(tf.norm(g_gamma)) > 0  # the zero scale can grow: the branch learns


def test_training_curves_every_net_visible():
    import matplotlib

    matplotlib.use("Agg")
    runs = [residual.DepthRun(f"{k}_{d}", d, k == "residual", 10, [3.3, 3.3, 3.3])
            for k in ("plain", "residual") for d in (4, 12, 24)]
    fig = residual_figures.plot_training_curves(runs, chance=np.log(29))
    plain_ax, res_ax = fig.axes
    assert plain_ax.get_title().startswith("plain") and res_ax.get_title().startswith("residual")
    for ax in (plain_ax, res_ax):
        lines = [ln for ln in ax.get_lines() if ln.get_label().endswith("layers")]
        assert [ln.get_label() for ln in lines] == ["4 layers", "12 layers", "24 layers"]
        # identical curves stay distinguishable: every line differs in marker and line style
        assert len({ln.get_marker() for ln in lines}) == 3
        assert len({str(ln.get_linestyle()) for ln in lines}) == 3
        assert ax.get_xlabel() == "epoch"
    assert plain_ax.get_ylabel()
