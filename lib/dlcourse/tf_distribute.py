"""tf.distribute.MirroredStrategy training of the lab 07 CNN, against single-device training.

    python -m dlcourse.tf_distribute --out runs/mirrored --replicas 2

MirroredStrategy keeps one copy of the model per device ("replica"), splits every global batch
between them, and all-reduces the gradients before the (identical) update on every replica: the
same idea as PyTorch's DDP, inside one process. With GPUs present it mirrors over all of them;
on a CPU-only machine the CPU is split into ``--replicas`` *logical* devices, which exercises exactly
the same code path (the two logical devices share the same cores, so it is not faster).

This has to run in a fresh process: logical devices can only be configured before TensorFlow
initialises its runtime, which any earlier TensorFlow call in a notebook has already done.
Writes ``metrics.json`` into ``--out``: a one-step comparison and two full trainings.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN's CPU kernels: see dlcourse.env.tensorflow_onednn


def configure_devices(replicas: int) -> list[str]:
    """All GPUs if there are any, else the CPU split into ``replicas`` logical devices."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return [f"/gpu:{i}" for i in range(len(gpus))]
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    return [f"/cpu:{i}" for i in range(replicas)]


BATCHNORM_MODES = {  # short name → (what the table says, build options)
    "frozen": ("frozen (inference statistics)", {"synchronized_bn": False, "frozen": True}),
    "synchronized": ("synchronized across replicas", {"synchronized_bn": True, "frozen": False}),
    "per-replica": ("per replica (Keras default)", {"synchronized_bn": False, "frozen": False}),
    # The synchronized step again in float64: what is left of its float32 difference is rounding, not a bug.
    "synchronized-float64": ("synchronized, in float64", {"synchronized_bn": True, "frozen": False,
                                                          "float64": True}),
}


def weights_after_one_step(strategy: Any, x: Any, y: Any, seed: int, *, synchronized_bn: bool,
                           frozen: bool, float64: bool = False) -> tuple[list[Any], list[Any], float]:
    """Trainable weights of the lab 07 CNN (dropout off) before and after one SGD step on (x, y), and its loss.

    The step is written out, as ``fit`` does it under a strategy: each replica sums the loss over its
    share of the batch and divides by the GLOBAL batch size; ``apply_gradients`` then all-reduces (sums)
    the replicas' gradients, so the update is the full-batch mean gradient. ``frozen`` sets BatchNorm's
    ``trainable=False``, which in Keras also makes it normalise with its moving statistics. It runs
    eagerly: one step does not repay the seconds ``tf.function`` needs to trace a distributed step.
    ``float64`` builds the model under Keras' float64 policy (restored afterwards) and feeds float64 data.
    """
    import keras
    import numpy as np

    if float64:
        previous = keras.config.dtype_policy().name
        keras.config.set_dtype_policy("float64")
        try:
            return weights_after_one_step(strategy, np.asarray(x, np.float64), np.asarray(y, np.float64), seed,
                                          synchronized_bn=synchronized_bn, frozen=frozen)
        finally:
            keras.config.set_dtype_policy(previous)
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    with strategy.scope():
        from dlcourse.cnn_keras import build_cnn

        model = build_cnn(dropout=0.0, synchronized_bn=synchronized_bn)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = not frozen
        optimizer = keras.optimizers.SGD(0.05)
        loss_sum = keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum")
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    batch = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
    xb, yb = next(iter(strategy.experimental_distribute_dataset(batch)))

    def step(x_part: Any, y_part: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = loss_sum(y_part, model(x_part, training=True)) / len(x)
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        return loss

    per_replica = strategy.run(step, args=(xb, yb))
    loss = float(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))
    return before, [keras.ops.convert_to_numpy(w) for w in model.trainable_weights], loss


def one_step_comparison(mirrored: Any, single: Any, x: Any, y: Any, seed: int,
                        modes: Sequence[str] = tuple(BATCHNORM_MODES)) -> list[dict[str, Any]]:
    """One step on the same global batch, mirrored vs one device, for each way of handling BatchNorm.

    Dropout is off in all three: its masks depend on how the batch is laid out over the replicas.
    """
    import numpy as np

    rows = []
    for mode in modes:
        name, options = BATCHNORM_MODES[mode]
        before, w_m, loss_m = weights_after_one_step(mirrored, x, y, seed, **options)
        _, w_s, loss_s = weights_after_one_step(single, x, y, seed, **options)
        rows.append({"batchnorm": name, "global_batch": len(x), "loss_mirrored": loss_m, "loss_single": loss_s,
                     "max_abs_weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(w_m, w_s)),
                     "max_abs_update": max(float(np.abs(b - a).max()) for a, b in zip(before, w_s))})
        print(f"one step, BatchNorm {name}: max |weights mirrored − single| = {rows[-1]['max_abs_weight_diff']:.2e}",
              flush=True)
    return rows


def train_both(mirrored: Any, single: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The lab 07 recipe (with dropout) under both strategies from the same seed and batch order."""
    from dlcourse.cnn_keras import train_cnn
    from dlcourse.data import load_mnist

    data = load_mnist(scale=True, channels="last", n_train=args.train_size, n_test=args.test_size, seed=args.seed)
    runs = {}
    for name, strategy in (("mirrored", mirrored), ("single", single)):
        print(f"training the lab 07 CNN with {name} ({strategy.num_replicas_in_sync} replica(s))", flush=True)
        _, result = train_cnn(data, epochs=args.epochs, seed=args.seed, strategy=strategy, synchronized_bn=True)
        runs[name] = {"test_accuracy": result.test_accuracy, "train_seconds": result.train_seconds,
                      "val_accuracy": result.history["val_accuracy"], "loss": result.history["loss"],
                      "epochs": result.epochs}
        print(f"  test accuracy {result.test_accuracy:.4f} after {result.train_seconds:.1f} s", flush=True)
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--replicas", type=int, default=2, help="logical CPU devices when there is no GPU")
    parser.add_argument("--train-size", type=int, default=60_000)
    parser.add_argument("--test-size", type=int, default=10_000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bn-modes", default=",".join(BATCHNORM_MODES),
                        help=f"comma-separated, from {', '.join(BATCHNORM_MODES)}: the one-step comparisons to run")
    args = parser.parse_args(argv)
    modes = [m for m in args.bn_modes.split(",") if m]
    unknown = sorted(set(modes) - set(BATCHNORM_MODES))
    if unknown:
        parser.error(f"unknown --bn-modes {unknown}; choose from {', '.join(BATCHNORM_MODES)}")

    devices = configure_devices(args.replicas)
    import keras
    import numpy as np
    import tensorflow as tf

    from dlcourse.data import load_mnist

    tf.get_logger().setLevel("ERROR")  # not the warning that an eager mirrored step has overhead
    mirrored = tf.distribute.MirroredStrategy(devices)
    single = tf.distribute.OneDeviceStrategy(devices[0])
    print(f"MirroredStrategy over {mirrored.num_replicas_in_sync} devices: {', '.join(devices)}", flush=True)
    batch = load_mnist(scale=True, channels="last", n_train=64, n_test=1, seed=args.seed).train
    y = keras.utils.to_categorical(batch.y, 10).astype(np.float32)
    report: dict[str, Any] = {"devices": devices, "replicas": mirrored.num_replicas_in_sync,
                              "tensorflow": tf.__version__, "keras": keras.__version__,
                              "one_step": one_step_comparison(mirrored, single, batch.x, y, args.seed, modes)}
    report["training"] = train_both(mirrored, single, args)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "metrics.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
