#!/usr/bin/env python3
"""Train -> convert -> quantise / prune / distil, for edgehost.

Dataset: scikit-learn's bundled digits (1797 8x8 grey images, values 0..16; inside the wheel,
no download). Each image becomes 8-bit pixels p = round(v * 255 / 16), exactly what a PNG of it
holds, and the models take x = p / 255 in [0, 1] as float32 [1, 8, 8, 1]. That is imagepre-c's
float32 encoding with mean = 0, std = 255, and its int8 encoding (p - 128) is the int8 models'
input quantisation (scale 1/255, zero point -128), so one pipeline config serves both.

Split: train_test_split(test_size=0.2, stratify=y, random_state=0): 1437 train, 360 test.
Seeds: Python, NumPy and TensorFlow seeded with SEED, op determinism on, 1 intra-op thread.

Outputs (in OUT, default .deps/model-flow/):
  teacher_f32.tflite       float32 CNN (the teacher, softmax output)
  teacher_dynamic.tflite   dynamic-range quantisation: int8 weights, float32 I/O
  teacher_int8.tflite      full-integer int8, int8 input and int8 output
  pruned_int8.tflite       magnitude-pruned (tfmot, 75 % sparsity), stripped, full-integer int8
  student_f32.tflite       distilled smaller CNN, float32
  student_int8.tflite      distilled student, full-integer int8
  test.npz                 the held-out split (x as 0..255 uint8 pixels, y)
  png/                     a few test images as 8x8 grey PNGs (for the digits pipeline)
  train.json               Keras accuracies, sizes and the settings used
"""
import argparse
import json
import os
import random
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot 0.8.1 works on tf-keras (Keras 2)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # the same kernels on every x86 CPU: reruns match

import numpy as np

SEED = 0
TEMPERATURE = 4.0   # distillation temperature
ALPHA = 0.9         # weight of the soft (teacher) loss; 1 - ALPHA on the hard labels
SPARSITY = 0.75     # final sparsity of the pruned model
EPOCHS_TEACHER = 20
EPOCHS_PRUNE = 10
EPOCHS_STUDENT = 40
BATCH = 32


def load_digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    pixels = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)  # what the PNG holds
    y = d.target.astype(np.int64)
    p_tr, p_te, y_tr, y_te = train_test_split(pixels, y, test_size=0.2, stratify=y, random_state=SEED)
    return p_tr, p_te, y_tr, y_te


def to_x(pixels):
    return (pixels.astype(np.float32) / 255.0)[..., None]


def seed_all(tf):
    random.seed(SEED)
    np.random.seed(SEED)
    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()


def teacher_model(keras):
    # ~152k parameters: big enough that int8 weights dominate the file (size ratio < 30 %).
    return keras.Sequential([
        keras.layers.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),  # logits
    ], name="teacher")


def student_model(keras):
    # ~9k parameters (about 1/17 of the teacher).
    return keras.Sequential([
        keras.layers.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ], name="student")


def with_softmax(keras, m):
    inp = keras.Input((8, 8, 1), name="image")
    return keras.Model(inp, keras.layers.Softmax(name="probs")(m(inp)), name=m.name + "_prob")


def convert(tf, model, mode, rep_x):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode in ("dynamic", "int8"):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        # Every training image, one at a time: the calibration covers the whole input range
        # [0, 1] (so the input is scale 1/255, zero point -128: imagepre-c's p - 128).
        def rep():
            for i in range(len(rep_x)):
                yield [rep_x[i:i + 1]]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def keras_acc(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1) == y))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".deps/model-flow")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import tf_keras as keras
    import tensorflow_model_optimization as tfmot
    from PIL import Image
    seed_all(tf)
    t0 = time.time()

    p_tr, p_te, y_tr, y_te = load_digits_split()
    x_tr, x_te = to_x(p_tr), to_x(p_te)
    np.savez_compressed(os.path.join(args.out, "test.npz"), pixels=p_te, y=y_te)
    os.makedirs(os.path.join(args.out, "png"), exist_ok=True)
    for i in range(10):
        Image.fromarray(p_te[i], mode="L").save(os.path.join(args.out, "png", f"test{i:02d}_label{y_te[i]}.png"))
    log = {"seed": SEED, "split": {"train": len(y_tr), "test": len(y_te), "test_size": 0.2, "stratify": True},
           "temperature": TEMPERATURE, "alpha": ALPHA, "sparsity": SPARSITY, "keras_accuracy": {}}
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    # 1. Teacher.
    teacher = teacher_model(keras)
    teacher.compile(keras.optimizers.Adam(1e-3), ce, metrics=["accuracy"])
    teacher.fit(x_tr, y_tr, epochs=EPOCHS_TEACHER, batch_size=BATCH, verbose=0, shuffle=True)
    log["keras_accuracy"]["teacher"] = keras_acc(teacher, x_te, y_te)
    log["params"] = {"teacher": int(teacher.count_params())}
    print(f"teacher: {teacher.count_params()} params, Keras test accuracy {log['keras_accuracy']['teacher']:.4f}"
          f" ({time.time() - t0:.0f} s)", flush=True)
    tprob = with_softmax(keras, teacher)

    out = {}
    out["teacher_f32"] = convert(tf, tprob, "f32", x_tr)
    out["teacher_dynamic"] = convert(tf, tprob, "dynamic", x_tr)
    out["teacher_int8"] = convert(tf, tprob, "int8", x_tr)

    # 2. Pruning: fine-tune the trained teacher with magnitude pruning (0 -> SPARSITY over the
    # epochs), strip the wrappers, convert to int8.
    steps = int(np.ceil(len(x_tr) / BATCH)) * EPOCHS_PRUNE
    sched = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=SPARSITY,
                                                  begin_step=0, end_step=int(steps * 0.7))
    tcopy = keras.models.clone_model(teacher)  # the wrappers share their layers' weights:
    tcopy.set_weights(teacher.get_weights())    # prune a copy, keep the teacher intact
    pruned = tfmot.sparsity.keras.prune_low_magnitude(tcopy, pruning_schedule=sched)
    pruned.compile(keras.optimizers.Adam(5e-4), ce, metrics=["accuracy"])
    pruned.fit(x_tr, y_tr, epochs=EPOCHS_PRUNE, batch_size=BATCH, verbose=0, shuffle=True,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    ws = [w for layer in stripped.layers if hasattr(layer, "kernel") for w in [layer.kernel.numpy()]]
    log["pruned_sparsity"] = float(sum((w == 0).sum() for w in ws) / sum(w.size for w in ws))
    log["keras_accuracy"]["pruned"] = keras_acc(stripped, x_te, y_te)
    print(f"pruned: kernel sparsity {log['pruned_sparsity']:.3f}, Keras test accuracy"
          f" {log['keras_accuracy']['pruned']:.4f} ({time.time() - t0:.0f} s)", flush=True)
    out["pruned_int8"] = convert(tf, with_softmax(keras, stripped), "int8", x_tr)

    # 3. Distillation: the student learns the teacher's softened distribution (softmax of
    # logits / T, KL divergence scaled by T^2) plus a little of the hard labels.
    t_logits = teacher.predict(x_tr, batch_size=256, verbose=0)
    student = student_model(keras)
    opt = keras.optimizers.Adam(2e-3)
    kl = keras.losses.KLDivergence()
    ds = tf.data.Dataset.from_tensor_slices((x_tr, y_tr, t_logits)).shuffle(len(x_tr), seed=SEED).batch(BATCH)

    @tf.function
    def step(x, y, tl):
        with tf.GradientTape() as tape:
            sl = student(x, training=True)
            soft = kl(tf.nn.softmax(tl / TEMPERATURE), tf.nn.softmax(sl / TEMPERATURE)) * TEMPERATURE ** 2
            loss = ALPHA * soft + (1 - ALPHA) * ce(y, sl)
        opt.apply_gradients(zip(tape.gradient(loss, student.trainable_variables), student.trainable_variables))
        return loss

    for _ in range(EPOCHS_STUDENT):
        for x, y, tl in ds:
            step(x, y, tl)
    log["params"]["student"] = int(student.count_params())
    log["keras_accuracy"]["student"] = keras_acc(student, x_te, y_te)
    print(f"student: {student.count_params()} params, Keras test accuracy {log['keras_accuracy']['student']:.4f}"
          f" ({time.time() - t0:.0f} s)", flush=True)
    sprob = with_softmax(keras, student)
    out["student_f32"] = convert(tf, sprob, "f32", x_tr)
    out["student_int8"] = convert(tf, sprob, "int8", x_tr)

    log["files"] = {}
    for name, blob in out.items():
        path = os.path.join(args.out, name + ".tflite")
        with open(path, "wb") as f:
            f.write(blob)
        log["files"][name] = len(blob)
    # The int8 input must be imagepre-c's encoding (p - 128 for x = p / 255).
    from ai_edge_litert.interpreter import Interpreter
    for name in out:
        if name.endswith("int8"):
            d = Interpreter(model_path=os.path.join(args.out, name + ".tflite")).get_input_details()[0]
            scale, zp = d["quantization"]
            if zp != -128 or abs(scale * 255 - 1) > 1e-3:
                sys.exit(f"{name}: input quantisation scale={scale} zero_point={zp}, not 1/255 and -128")
    log["seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(args.out, "train.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(f"wrote {len(out)} models to {args.out} in {log['seconds']} s", flush=True)


if __name__ == "__main__":
    main()
