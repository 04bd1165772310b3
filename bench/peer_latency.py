#!/usr/bin/env python3
"""Peer side of the batch-1 latency comparison (bench/latency.sh runs it beside `slimnet bench`).

Takes a slimnet model file (safetensors: weights in PyTorch layout plus slimnet's metadata), rebuilds the same
network with the same weights in the peer's stack, and measures batch-1 latency through its Python API, one
thread, on the first MNIST test image:

  --stack litert : Keras model -> full-integer int8 .tflite (500 calibration images, per-channel weights, int8 in/out),
                   LiteRT interpreter with its default XNNPACK delegate; also the float32 .tflite.
  --stack ort    : PyTorch model -> ONNX (f32) and ORT quantize_static int8 (QDQ, per-channel), ONNX Runtime,
                   intra/inter-op threads 1.

Each stack is also timed on a trivial model (one 10x10 dense layer) to show its fixed per-call cost. Prints one
JSON object per measured file: stack, variant, latency_us (median of REPEATS medians of RUNS calls: set input +
run + get output), invoke_us where the API separates it, accuracy on the test set, file bytes.
"""
import argparse, gzip, json, os, struct, sys, tempfile, time

import numpy as np


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4 : 4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        tensors[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=np.float32).reshape(info["shape"])
    return tensors, meta


def timeit(fn, runs, repeats):
    for _ in range(min(runs, 500)):
        fn()
    meds = []
    for _ in range(repeats):
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            fn()
            ts.append(time.perf_counter_ns() - t0)
        meds.append(float(np.median(ts)) / 1000.0)
    return float(np.median(meds))


def litert(a, w, meta, x_test, y_test, x_cal):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    tf.config.threading.set_intra_op_parallelism_threads(1)
    arch = meta["slimnet.arch"]
    if arch == "lenet-300-100":
        m = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(300, activation="relu"), tf.keras.layers.Dense(100, activation="relu"),
                                 tf.keras.layers.Dense(10)])
        dense = [l for l in m.layers if isinstance(l, tf.keras.layers.Dense)]
        for l, n in zip(dense, ["fc1", "fc2", "fc3"]):
            l.set_weights([w[n + ".weight"].T, w[n + ".bias"]])
    else:
        m = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), tf.keras.layers.Conv2D(20, 5), tf.keras.layers.MaxPool2D(2),
                                 tf.keras.layers.Conv2D(50, 5), tf.keras.layers.MaxPool2D(2),
                                 # PyTorch flattens channel-major: transpose NHWC -> NCHW before flattening.
                                 tf.keras.layers.Permute((3, 1, 2)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(500, activation="relu"), tf.keras.layers.Dense(10)])
        convs = [l for l in m.layers if isinstance(l, tf.keras.layers.Conv2D)]
        for l, n in zip(convs, ["conv1", "conv2"]):
            l.set_weights([w[n + ".weight"].transpose(2, 3, 1, 0), w[n + ".bias"]])
        dense = [l for l in m.layers if isinstance(l, tf.keras.layers.Dense)]
        for l, n in zip(dense, ["fc1", "fc2"]):
            l.set_weights([w[n + ".weight"].T, w[n + ".bias"]])

    def convert(model, int8):
        c = tf.lite.TFLiteConverter.from_keras_model(model)
        if int8:
            c.optimizations = [tf.lite.Optimize.DEFAULT]
            c.representative_dataset = lambda: ([x_cal[i : i + 1]] for i in range(len(x_cal)))
            c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            c.inference_input_type = tf.int8
            c.inference_output_type = tf.int8
        return c.convert()

    trivial = tf.keras.Sequential([tf.keras.Input((10,)), tf.keras.layers.Dense(10)])
    out = []
    for variant, blob, xs in [("int8", convert(m, True), x_test), ("f32", convert(m, False), x_test),
                              ("trivial-int8", convert_trivial(tf, trivial, True), None)]:
        it = Interpreter(model_content=blob, num_threads=1)
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        def prep(x):
            if i["dtype"] == np.int8:
                s, z = i["quantization"]
                return np.clip(np.round(x / s + z), -128, 127).astype(np.int8)
            return x.astype(np.float32)
        if xs is None:
            sample = np.zeros(i["shape"], dtype=i["dtype"])
        else:
            sample = prep(xs[:1])
        def call():
            it.set_tensor(i["index"], sample)
            it.invoke()
            return it.get_tensor(o["index"])
        lat = timeit(call, a.runs, a.repeats)
        inv = timeit(it.invoke, a.runs, a.repeats)
        acc = None
        if xs is not None:
            correct = 0
            for k in range(len(xs)):
                it.set_tensor(i["index"], prep(xs[k : k + 1]))
                it.invoke()
                correct += int(np.argmax(it.get_tensor(o["index"])) == y_test[k])
            acc = correct / len(xs)
        out.append({"stack": "litert " + tf.__version__, "model": arch, "variant": variant, "latency_us": lat,
                    "invoke_us": inv, "accuracy": acc, "bytes": len(blob)})
    return out


def convert_trivial(tf, model, int8):
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([np.random.rand(1, 10).astype(np.float32)] for _ in range(50))
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    return c.convert()


def ort(a, w, meta, x_test, y_test, x_cal):
    import torch, torch.nn as nn, onnxruntime as rt
    from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantType, QuantFormat
    torch.set_num_threads(1)
    arch = meta["slimnet.arch"]
    if arch == "lenet-300-100":
        m = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
        names = {1: "fc1", 3: "fc2", 5: "fc3"}
    else:
        m = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
        names = {0: "conv1", 2: "conv2", 5: "fc1", 7: "fc2"}
    with torch.no_grad():
        for k, n in names.items():
            m[k].weight.copy_(torch.from_numpy(w[n + ".weight"].copy()))
            m[k].bias.copy_(torch.from_numpy(w[n + ".bias"].copy()))
    tmp = tempfile.mkdtemp()
    f32 = os.path.join(tmp, "f32.onnx")
    torch.onnx.export(m, torch.zeros(1, 1, 28, 28), f32, input_names=["x"], output_names=["y"], dynamo=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x_cal[i : i + 1]} for i in range(len(x_cal))])
        def get_next(self):
            return next(self.it, None)

    i8 = os.path.join(tmp, "int8.onnx")
    quantize_static(f32, i8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    import onnx
    from onnx import helper, TensorProto
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    triv = os.path.join(tmp, "identity.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), triv)
    out = []
    for variant, path in [("f32", f32), ("int8", i8), ("trivial-identity", triv)]:
        so = rt.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        s = rt.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        sample = x_test[:1] if variant != "trivial-identity" else np.zeros((1, 10), np.float32)
        lat = timeit(lambda: s.run(None, {"x": sample}), a.runs, a.repeats)
        acc = None
        if variant != "trivial-identity":
            pred = np.concatenate([s.run(None, {"x": x_test[k : k + 1]})[0] for k in range(len(x_test))]).argmax(1)
            acc = float((pred == y_test).mean())
        out.append({"stack": "onnxruntime " + rt.__version__, "model": arch, "variant": variant, "latency_us": lat,
                    "invoke_us": None, "accuracy": acc, "bytes": os.path.getsize(path)})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", choices=["litert", "ort"], required=True)
    ap.add_argument("--model", required=True, help="slimnet safetensors file")
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    w, meta = load_safetensors(a.model)
    norm = json.loads(meta["slimnet.normalization"])
    x_test = ((idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255.0 - norm["mean"]) / norm["std"])
    y_test = idx(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz"))
    x_cal = ((idx(os.path.join(a.data, "train-images-idx3-ubyte.gz"))[:500].astype(np.float32) / 255.0 - norm["mean"]) / norm["std"])
    if a.stack == "litert":
        rows = litert(a, w, meta, x_test[..., None], y_test, x_cal[..., None])
    else:
        rows = ort(a, w, meta, x_test[:, None], y_test, x_cal[:, None])
    for r in rows:
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    sys.exit(main())
