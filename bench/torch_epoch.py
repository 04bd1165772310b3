#!/usr/bin/env python3
"""PyTorch side of the training-speed comparison (bench/train_speed.sh runs it beside slimnet).

Same data (the first 55,000 MNIST training images: slimnet's default split keeps the last 5,000 for validation),
same architectures (LeNet-300-100; Caffe LeNet-5), same batch size, optimizer (Adam 1e-3) and thread count.
Prints one JSON line per model: seconds of each epoch's training steps (no evaluation inside the timing).
"""
import argparse, gzip, json, os, struct, sys, time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as ../shared/peers/torch does: libgomp spins otherwise
import numpy as np
import torch
import torch.nn as nn


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def model(name):
    if name == "lenet-300-100":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--model", default="lenet-300-100")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", type=int, default=55000)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    x = torch.from_numpy(idx(os.path.join(a.data, "train-images-idx3-ubyte.gz"))[: a.train].astype(np.float32) / 255.0)
    x = ((x - 0.1307) / 0.3081).unsqueeze(1)
    y = torch.from_numpy(idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz"))[: a.train].astype(np.int64))
    m = model(a.model)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    secs = []
    for _ in range(a.epochs):
        perm = torch.randperm(len(x))
        t0 = time.perf_counter()
        for i in range(0, len(x), a.batch):
            b = perm[i : i + a.batch]
            opt.zero_grad()
            loss = loss_fn(m(x[b]), y[b])
            loss.backward()
            opt.step()
        secs.append(time.perf_counter() - t0)
    print(json.dumps({"stack": "pytorch " + torch.__version__, "model": a.model, "batch": a.batch,
                      "threads": a.threads, "samples": len(x), "epoch_seconds": secs}))


if __name__ == "__main__":
    sys.exit(main())
