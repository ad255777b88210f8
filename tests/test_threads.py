"""The native kernels release the GIL, so several Python threads can run them at once (a server
answering requests, a loader thread beside training). Each call must then give exactly what it gives
alone: no shared scratch, cache or statistics between calls."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import fastnn.functional as F
from fastnn import nn, optim
from fastnn.training import models


def _work(seed):
    """Every native op family and a few training steps, from seed alone; the arrays it produced."""
    rng = np.random.default_rng(seed)
    out = []
    x = rng.standard_normal((8, 3, 17, 19)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    y, cache = F.conv2d_forward(x, w, rng.standard_normal(5).astype(np.float32), stride=1, padding=1)
    out += [y, *F.conv2d_backward(rng.standard_normal(y.shape).astype(np.float32), cache)]
    p, cache = F.max_pool2d_forward(x, 2, 2)
    out += [p, F.max_pool2d_backward(np.ones_like(p), cache)]
    p, cache = F.avg_pool2d_forward(x, 3, 2, 1)
    out += [p, F.avg_pool2d_backward(np.ones_like(p), cache)]
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    bn, cache = F.batch_norm_forward(x, rng.random(3).astype(np.float32), np.zeros(3, np.float32), rm, rv,
                                     True, 0.1, 1e-5)
    out += [bn, *F.batch_norm_backward(rng.standard_normal(bn.shape).astype(np.float32), cache), rm, rv]
    loss, cache = F.softmax_cross_entropy_forward(rng.standard_normal((33, 7)), rng.integers(0, 7, 33))
    out += [np.array(loss), F.softmax_cross_entropy_backward(1.0, cache)]
    # Layers (GEMMs on fastnn's kernel, the fused LSTM) and Adam's fused update.
    model = models.lenet5()
    lstm = nn.LSTM(11, 64)
    for param in model.parameters() + lstm.parameters():
        param.data[...] = rng.standard_normal(param.data.shape).astype(np.float32) * 0.1
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    images, labels = rng.standard_normal((70, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 70)
    for _ in range(2):
        opt.zero_grad()
        loss = loss_fn(model(images), labels)
        model.backward(loss_fn.backward())
        opt.step()
    out += [np.array(loss)] + [param.data for param in model.parameters()]
    hs, _ = lstm(rng.standard_normal((4, 9, 11)).astype(np.float32))
    out += [hs, lstm.backward(rng.standard_normal(hs.shape).astype(np.float32), None)]
    out += [param.grad for param in lstm.parameters()]
    return out


def test_kernels_from_several_threads_equal_serial_calls():
    seeds = range(8)
    serial = [_work(s) for s in seeds]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(_work, seeds))
    for seed, alone, together in zip(seeds, serial, concurrent):
        assert len(alone) == len(together)
        for i, (a, b) in enumerate(zip(alone, together)):
            np.testing.assert_array_equal(b, a, err_msg=f"seed {seed}, array {i}: differs when run in threads")
