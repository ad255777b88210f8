"""`fastnn train`: LeNet-5 and the char-LSTM end to end on small subsets, resume, and bad options."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import cli, data
from fastnn.training import CharLSTM, count_parameters, lenet5


def test_lenet5_has_the_classic_shape():
    model = lenet5()
    assert count_parameters(model) == 61706
    scores = model.forward(np.zeros((2, 1, 28, 28), np.float32))
    assert scores.shape == (2, 10)


def test_train_lenet5_small_subset_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "lenet5", "--limit-train", "256", "--limit-eval", "200", "--no-progress", "--out", str(out)]
    assert cli.main(args + ["--epochs", "1"]) == 0
    text = capsys.readouterr().out
    assert "LeNet-5 (61,706 parameters)" in text and "256 training, 200 validation, 200 test images" in text
    assert "epoch 1 | lr 0.002 |" in text and "val acc" in text
    assert "test accuracy" in text and "images/s" in text
    assert sorted(p for p in os.listdir(out) if not p.endswith(".png")) == ["checkpoint.npz", "history.json",
                                                                             "model.npz"]
    assert len(json.loads((out / "history.json").read_text())["epochs"]) == 1

    assert cli.main(args + ["--epochs", "2", "--resume"]) == 0
    text = capsys.readouterr().out
    assert "resumed from" in text and "after epoch 1" in text
    assert "epoch 2 | lr 0.000928 |" in text and "epoch 1 |" not in text
    assert len(json.loads((out / "history.json").read_text())["epochs"]) == 2


def test_train_charlstm_small(tmp_path, capsys):
    assert cli.main(["train", "charlstm", "--limit-chars", "6000", "--epochs", "1", "--hidden", "32",
                     "--batch-size", "8", "--seq-len", "16", "--sample-length", "40", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "val perplexity" in text and "chars/s" in text
    assert "sample (temperature 0.8" in text


def test_charlstm_learns_and_samples():
    text = "abcabcabcabd" * 40
    vocab = data.Vocabulary(text)
    ids = vocab.encode(text)
    model = CharLSTM(len(vocab), embedding_dim=8, hidden_size=16)
    from fastnn import nn, optim
    from fastnn.training import Trainer

    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.02),
                      prepare_batch=lambda b: (b[0], b[1].reshape(-1)), progress=False, log=None)
    history = trainer.fit(data.BPTTBatches(ids, 4, 12), epochs=8)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    sample = model.sample(vocab, prime="ab", length=30, temperature=0.5, rng=0)
    assert len(sample) == 30 and set(sample) <= set(vocab.chars)
    assert sample == model.sample(vocab, prime="ab", length=30, temperature=0.5, rng=0)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(vocab, temperature=0.0)
    with pytest.raises(TypeError, match="integer ids"):
        model.forward(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("argv, message", [
    (["train", "lenet5", "--epochs", "0"], "argument --epochs: must be positive, got 0"),
    (["train", "lenet5", "--epochs", "two"], "argument --epochs: expected a positive integer, got 'two'"),
    (["train", "lenet5", "--lr", "-1"], "argument --lr: must be positive and finite"),
    (["train", "lenet5", "--lr", "inf"], "argument --lr: must be positive and finite, got inf"),
    (["train", "lenet5", "--lr", "nan"], "argument --lr: must be positive and finite, got nan"),
    (["train", "lenet5", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["train", "lenet5", "--threads", "0"], "argument --threads: must be positive"),
    (["train", "charlstm", "--temperature", "0"], "argument --temperature: must be positive"),
    (["train", "charlstm", "--clip", "inf"], "argument --clip: must be positive and finite"),
    (["train", "lenet5", "--device", "tpu"], "invalid choice"),
    (["train", "lenet5", "--resume"], "--resume needs --out"),
    (["train", "lenet5", "--cuda-graph"], "--cuda-graph needs --device cuda"),
    (["train", "resnet"], "invalid choice"),
])
def test_bad_options_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    if argv[1] in ("lenet5", "charlstm"):  # the subcommand's usage and name, not the top-level one
        assert f"usage: fastnn train {argv[1]}" in err and f"fastnn train {argv[1]}: error:" in err


def _one_error_line(capsys, message):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastnn: error: "), captured.err
    assert message in lines[0]
    assert "Traceback" not in captured.err


def test_resume_without_out_is_an_error_in_the_python_api_too():
    from fastnn.training import RunError, train_lenet5

    with pytest.raises(RunError, match="resume needs an output folder"):
        train_lenet5(limit_train=64, limit_eval=64, resume=True, progress=False)


def test_cuda_without_a_gpu_says_so(capsys):
    import fastnn

    if fastnn.cuda_available():
        pytest.skip("a GPU is available")
    assert cli.main(["train", "lenet5", "--device", "cuda", "--limit-train", "64"]) == 1
    _one_error_line(capsys, "--device cuda: no usable GPU")
    from fastnn.training import train_lenet5

    with pytest.raises(RuntimeError, match="no usable GPU"):  # still a RuntimeError for Python callers
        train_lenet5(device="cuda", limit_train=64)


def test_out_naming_a_file_is_refused_before_training(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    assert cli.main(["train", "lenet5", "--limit-train", "64", "--limit-eval", "64", "--no-progress",
                     "--out", str(afile)]) == 1
    _one_error_line(capsys, "is a file, not a folder")
    assert afile.read_text() == "not a folder"


def test_charlstm_batch_shape_too_large_for_the_text(capsys):
    assert cli.main(["train", "charlstm", "--limit-chars", "3000", "--seq-len", "500", "--no-progress"]) == 1
    _one_error_line(capsys, "the text is too short for batch size 32 and sequence length 500")


def test_a_diverging_run_is_one_error_line(monkeypatch, capsys):
    from fastnn import training

    def diverge(**kwargs):
        raise training.NonFiniteLossError(float("nan"), 1, 3, 3)

    monkeypatch.setattr(training, "train_lenet5", diverge)
    assert cli.main(["train", "lenet5", "--no-progress"]) == 1
    _one_error_line(capsys, "training loss is nan at epoch 1, step 3")


def test_a_bug_keeps_its_traceback(monkeypatch):
    from fastnn import training

    def bug(**kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(training, "train_lenet5", bug)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["train", "lenet5", "--no-progress"])


def test_console_entry_point_lists_the_models(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastnn", "train", "--help"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0
    assert "lenet5" in result.stdout and "charlstm" in result.stdout


def test_a_corrupt_checkpoint_is_one_error_line(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    assert cli.main(["train", "lenet5", "--limit-train", "64", "--limit-eval", "64", "--no-progress",
                     "--out", str(out), "--resume"]) == 1
    _one_error_line(capsys, f"{out / 'checkpoint.npz'} is not a fastnn checkpoint (not a valid .npz")
