"""Regenerate the Keras test files beside this script with real Keras (not needed to test).

Four small CNNs are built with Keras 3 on its torch backend (no TensorFlow), given random
weights (batch-norm statistics included), and run on fixed inputs. For each model this
writes:

* ``<name>.keras3.h5``: what Keras 3 ``model.save("x.h5")`` writes (its legacy HDF5);
* ``<name>.keras2.h5``: the same model in Keras 2's layout (as the course files, Keras 2.4:
  ``batch_input_shape``, list-style ``inbound_nodes``, ``<layer>/<layer>/kernel:0``), which
  Keras 3 itself must load back to the same outputs before it is written;
* ``<name>.npz``: ``x`` (channels last, as Keras takes it) and Keras' output ``y``.

Regenerate (a throwaway venv, none of this joins the project's dependencies)::

    python -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install keras torch h5py
    KERAS_BACKEND=torch /tmp/kvenv/bin/python tests/models/keras_files/make_keras_files.py

Pooling with ``same`` padding uses only symmetric pads here: Keras' torch backend pads
asymmetric average pools with edge copies, unlike TensorFlow (the test checks that case
against a numpy reference instead).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py
import keras
import numpy as np
from keras import layers as kl

HERE = Path(__file__).resolve().parent


def sequential_2d() -> keras.Model:
    """Strided/even-kernel/dilated convs, batch norm, dropout, Flatten -> Dense."""
    return keras.Sequential([
        keras.Input((21, 19, 3)),
        kl.Conv2D(8, 3, padding="same", activation="relu"),
        kl.BatchNormalization(),
        kl.Conv2D(8, 4, strides=2, padding="same", activation="elu"),
        kl.MaxPooling2D(3, strides=2, padding="same"),
        kl.Dropout(0.3),
        kl.Conv2D(12, 3, dilation_rate=2, padding="same", use_bias=False),
        kl.LeakyReLU(negative_slope=0.1),
        kl.Conv2D(12, (2, 3), padding="valid", activation="tanh"),
        kl.AveragePooling2D(2),
        kl.Flatten(),
        kl.Dense(16, activation="swish"),
        kl.Dropout(0.5),
        kl.Dense(5, activation="softmax"),
    ])


def functional_2d() -> keras.Model:
    """A residual Add, a Concatenate of feature maps and of pooled/flattened vectors."""
    inp = keras.Input((17, 15, 3))
    x = kl.ZeroPadding2D(((1, 2), (0, 1)))(inp)
    x = kl.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = kl.BatchNormalization(center=False)(x)
    y = kl.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = kl.Conv2D(8, 3, padding="same")(y)
    y = kl.Add()([x, y])
    y = kl.ReLU(max_value=6.0)(y)
    z = kl.Concatenate()([y, x])
    z = kl.Conv2D(6, 1, activation="sigmoid")(z)
    pooled = kl.GlobalAveragePooling2D()(z)
    peak = kl.GlobalMaxPooling2D()(z)
    flat = kl.Flatten()(kl.MaxPooling2D(4)(z))
    h = kl.Concatenate()([pooled, peak, flat])
    h = kl.Dense(10, activation="gelu")(h)
    return keras.Model(inp, kl.Dense(4, activation="softmax")(h))


def sequential_1d() -> keras.Model:
    """Reshape, causal/dilated/strided 1-D convs, padding, pooling, a sigmoid output."""
    return keras.Sequential([
        keras.Input((30, 2)),
        kl.Reshape((15, 4)),
        kl.ZeroPadding1D((2, 1)),
        kl.Conv1D(6, 5, padding="causal", dilation_rate=2, activation="relu"),
        kl.Conv1D(6, 3, strides=2, padding="same"),
        kl.BatchNormalization(scale=False, epsilon=0.01),
        kl.Activation("relu"),
        kl.AveragePooling1D(3, strides=1, padding="same"),
        kl.MaxPooling1D(2),
        kl.Conv1D(5, 2, padding="same", activation="selu"),
        kl.GlobalAveragePooling1D(),
        kl.Dense(3, activation="sigmoid"),
    ])


def functional_1d() -> keras.Model:
    """A shared conv (two calls), the other merges, a Dense on a sequence, keepdims pooling."""
    inp = keras.Input((24, 3))
    shared = kl.Conv1D(4, 3, activation="relu")
    a = shared(inp)
    b = shared(kl.Conv1D(3, 1)(inp))
    diff, prod = kl.Subtract()([a, b]), kl.Multiply()([a, b])
    top = kl.Maximum()([diff, prod])
    mean = kl.Average()([diff, prod, top])
    h = kl.Softmax()(kl.Dense(5, activation="tanh")(mean))
    peak = kl.Flatten()(kl.GlobalMaxPooling1D(keepdims=True)(h))
    h = kl.Concatenate()([peak, kl.GlobalAveragePooling1D()(kl.Minimum()([top, mean]))])
    return keras.Model(inp, kl.Dense(2)(h))


def randomise(model: keras.Model, rng: np.random.Generator) -> None:
    """Random weights everywhere, batch-norm statistics included, so nothing is trivial."""
    for layer in model.layers:
        new = []
        for w in layer.weights:
            name = w.path.rsplit("/", 1)[-1]
            shape = tuple(w.shape)
            if name == "moving_variance":
                new.append(rng.uniform(0.5, 2.0, shape))
            elif name == "gamma":
                new.append(rng.uniform(0.5, 1.5, shape))
            else:
                new.append(rng.normal(0, 0.4, shape))
        if new:
            layer.set_weights([a.astype("float32") for a in new])


def _keras2_config(obj: Any, rank: int) -> Any:
    """Keras 3's config as Keras 2.4 writes it."""
    if isinstance(obj, list):
        return [_keras2_config(v, rank) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "batch_shape":
            out["batch_input_shape"] = value
        elif key == "dtype" and isinstance(value, dict):
            out["dtype"] = value["config"]["name"]
        elif key in ("build_input_shape", "optional", "quantization_config", "module",
                     "registered_name", "synchronized"):
            continue
        elif key == "inbound_nodes":
            out[key] = [[[*_history(t), {}] for t in _tensors(node["args"])] for node in value]
        elif key in ("input_layers", "output_layers") and value and isinstance(value[0], str):
            out[key] = [value]
        elif key == "negative_slope" and obj.get("name", "").startswith("leaky_re_lu"):
            out["alpha"] = value
        elif key == "axis" and obj.get("name", "").startswith("batch_normalization"):
            out["axis"] = [value % rank]
        else:
            out[key] = _keras2_config(value, rank)
    return out


def _tensors(args: Any) -> list[dict[str, Any]]:
    if isinstance(args, dict):
        return [args] if args.get("class_name") == "__keras_tensor__" else []
    return [t for a in args for t in _tensors(a)] if isinstance(args, list) else []


def _history(tensor: dict[str, Any]) -> list[Any]:
    return list(tensor["config"]["keras_history"])


def write_keras2(src: Path, dst: Path, rank: int) -> None:
    """Copy a Keras 3 legacy .h5 into Keras 2's layout (config keys, weight paths)."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        config = _keras2_config(json.loads(f.attrs["model_config"]), rank)
        g.attrs["model_config"] = json.dumps(config)
        g.attrs["keras_version"] = "2.4.0"
        g.attrs["backend"] = "tensorflow"
        mw = g.create_group("model_weights")
        names = [n for n in f["model_weights"].attrs["layer_names"]
                 if n not in ("top_level_model_weights",) and not n.startswith("input_layer")]
        mw.attrs["layer_names"] = np.array([n.encode() for n in names])
        mw.attrs["keras_version"] = "2.4.0"
        mw.attrs["backend"] = "tensorflow"
        for name in names:
            group = f["model_weights"][name]
            out = mw.create_group(name)
            wnames = [w.decode() if isinstance(w, bytes) else w
                      for w in group.attrs["weight_names"]]
            k2 = [f"{name}/{w.rsplit('/', 1)[-1]}:0" for w in wnames]
            out.attrs["weight_names"] = (np.array([w.encode() for w in k2]) if k2
                                         else np.array([], dtype=np.float64))
            for w, w2 in zip(wnames, k2, strict=True):
                out[w2] = np.asarray(group[w])


def main() -> None:
    rng = np.random.default_rng(2024)
    keras.utils.set_random_seed(7)
    for name, make in [("sequential_2d", sequential_2d), ("functional_2d", functional_2d),
                       ("sequential_1d", sequential_1d), ("functional_1d", functional_1d)]:
        keras.backend.clear_session()  # layer names restart: conv2d, conv2d_1, ...
        model = make()
        randomise(model, rng)
        shape = model.inputs[0].shape
        x = rng.normal(size=(4, *shape[1:])).astype("float32")
        y = keras.ops.convert_to_numpy(model(x, training=False))
        k3, k2 = HERE / f"{name}.keras3.h5", HERE / f"{name}.keras2.h5"
        model.save(k3)
        write_keras2(k3, k2, rank=len(shape))
        for path in (k3, k2):  # real Keras reads both back to the same outputs
            again = keras.models.load_model(path, compile=False)
            np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x, training=False)), y,
                                       atol=1e-6)
        np.savez_compressed(HERE / f"{name}.npz", x=x, y=y)
        print(name, [p.stat().st_size for p in (k3, k2)])


if __name__ == "__main__":
    main()
