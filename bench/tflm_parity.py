"""slimnet against TFLite Micro and LiteRT on the TFLite fixtures, with the counts BENCHMARKS.md quotes:
- the int8 LeNet-5 fixture on all 10,000 MNIST test images (pixels / 255 quantized with the model's input scale and
  zero point): TFLite Micro's reference kernels (`tflite-micro`) against `slimnet run --integer-only`, byte by byte;
- every int8 fixture on its 100 recorded inputs (TFLM's outputs, recorded by make_fixtures.py) and every float
  fixture on its 20 (LiteRT's): equal bytes, and the worst error relative to the largest output of the sample.

  python bench/tflm_parity.py [--slimnet target/release/slimnet] [--int8-only]
The int8 checks need only `tflite-micro` (with numpy); CI runs them with --int8-only in a venv of that package
alone. Exits 1 on any difference (int8: any byte; f32: a relative error over 1e-5).
"""
import argparse, gzip, os, subprocess, tempfile
import numpy as np
from tflite_micro.python.tflite_micro import runtime as tflm

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
fix = os.path.join(root, "compress/tests/fixtures/tflite")
ap = argparse.ArgumentParser()
ap.add_argument("--slimnet", default=os.path.join(root, "target/release/slimnet"))
ap.add_argument("--int8-only", action="store_true")
a = ap.parse_args()
failures = []


def slimnet(model, x, integer):
    with tempfile.TemporaryDirectory() as d:
        xi, yo = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
        np.save(xi, x)
        cmd = [a.slimnet, "run", model, "--input", xi, "--output", yo] + (["--integer-only"] if integer else [])
        subprocess.run(cmd, check=True, capture_output=True)
        return np.load(yo)


blob = open(os.path.join(fix, "lenet5.int8.tflite"), "rb").read()
interp = tflm.Interpreter.from_bytes(blob)
det = interp.get_input_details(0)
scale, zp = det["quantization_parameters"]["scales"][0], det["quantization_parameters"]["zero_points"][0]
images = np.frombuffer(gzip.open(os.path.join(root, "data/mnist/t10k-images-idx3-ubyte.gz")).read(), np.uint8, offset=16)
labels = np.frombuffer(gzip.open(os.path.join(root, "data/mnist/t10k-labels-idx1-ubyte.gz")).read(), np.uint8, offset=8)
x = np.clip(np.round(images.reshape(-1, 28, 28, 1) / 255.0 / scale) + zp, -128, 127).astype(np.int8)
want = []
for s in x:
    interp.set_input(s[None], 0)
    interp.invoke()
    want.append(interp.get_output(0).copy())
want = np.concatenate(want)
got = slimnet(os.path.join(fix, "lenet5.int8.tflite"), x, True)
if not (got == want).all():
    failures.append("lenet5 int8 on the MNIST test set")
print(f"lenet5 int8, MNIST test set: {int((got == want).sum())} of {want.size} output bytes equal TFLM's "
      f"({10000 - int((got.argmax(1) != want.argmax(1)).sum())} of 10000 classes equal); "
      f"accuracy {(got.argmax(1) == labels).mean() * 100:.2f} %")
for fam in ["ds_cnn", "resnet", "dsnet", "autoencoder", "lenet5"]:
    xi, yi = np.load(os.path.join(fix, f"{fam}.int8.input.npy")), np.load(os.path.join(fix, f"{fam}.int8.output.npy"))
    g = slimnet(os.path.join(fix, f"{fam}.int8.tflite"), xi, True)
    if not (g == yi).all():
        failures.append(f"{fam} int8")
    if a.int8_only:
        print(f"{fam}: int8 {int((g == yi).sum())} of {yi.size} bytes equal TFLM's")
        continue
    xf, yf = np.load(os.path.join(fix, f"{fam}.f32.input.npy")), np.load(os.path.join(fix, f"{fam}.f32.output.npy"))
    gf = slimnet(os.path.join(fix, f"{fam}.f32.tflite"), xf, False)
    rel = (np.abs(gf - yf).reshape(len(yf), -1).max(1) / np.abs(yf).reshape(len(yf), -1).max(1)).max()
    if rel > 1e-5:
        failures.append(f"{fam} f32")
    print(f"{fam}: int8 {int((g == yi).sum())} of {yi.size} bytes equal TFLM's; f32 worst relative error {rel:.2e}")
if failures:
    print("differences:", ", ".join(failures))
    raise SystemExit(1)
