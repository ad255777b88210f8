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


def test_ctrl_c_is_one_line_saying_whether_resume_can_continue(monkeypatch, capsys, tmp_path):
    from fastnn import training

    def interrupted_after(epochs):
        def run(out=None, **kwargs):
            if epochs:
                (tmp_path / "run").mkdir(exist_ok=True)
                (tmp_path / "run" / "checkpoint.npz").write_bytes(b"an epoch's checkpoint")
            raise KeyboardInterrupt
        return run

    def line(argv, epochs):
        monkeypatch.setattr(training, "train_lenet5", interrupted_after(epochs))
        assert cli.main(["train", "lenet5", "--no-progress"] + argv) == 130
        err = capsys.readouterr().err.strip()
        assert err.splitlines() == [err] and err.startswith("fastnn: interrupted")
        return err

    out = ["--out", str(tmp_path / "run")]
    assert line(out, 0).endswith("no epoch of this run completed, so there is nothing to resume")
    assert line([], 1) == "fastnn: interrupted"
    assert line(out, 1).endswith("checkpoint.npz holds the last completed epoch: run again with --resume to continue")
    # --overwrite interrupted before its first epoch ended: the checkpoint there is the earlier run's.
    os.utime(tmp_path / "run" / "checkpoint.npz", (1e9, 1e9))
    assert line(out + ["--overwrite"], 0).endswith("nothing to resume")
    assert line(out + ["--resume"], 0).endswith("run again with --resume to continue")


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


LENET_SMALL = ["train", "lenet5", "--limit-train", "128", "--limit-eval", "100", "--no-progress"]
LSTM_SMALL = ["train", "charlstm", "--limit-chars", "3000", "--hidden", "16", "--batch-size", "4", "--seq-len", "16",
              "--sample-length", "10", "--no-progress"]


def test_an_earlier_run_is_not_overwritten_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    args = LENET_SMALL + ["--epochs", "1", "--out", str(out)]
    assert cli.main(args) == 0
    before = {name: (out / name).read_bytes() for name in ("checkpoint.npz", "model.npz", "history.json")}
    capsys.readouterr()
    assert cli.main(args + ["--seed", "3"]) == 1
    _one_error_line(capsys, "already holds checkpoint.npz, model.npz, history.json of an earlier run: continue it "
                            "with --resume")
    assert {name: (out / name).read_bytes() for name in before} == before
    assert cli.main(args + ["--seed", "3", "--overwrite"]) == 0
    assert (out / "model.npz").read_bytes() != before["model.npz"]


def test_resuming_with_other_options_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(LENET_SMALL + ["--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    checkpoint = (out / "checkpoint.npz").read_bytes()
    assert cli.main(LENET_SMALL + ["--epochs", "2", "--out", str(out), "--resume", "--lr", "0.5", "--seed", "7",
                                   "--batch-size", "16"]) == 1
    _one_error_line(capsys, "batch_size: 64 in the checkpoint, 16 now; lr: 0.002 in the checkpoint, 0.5 now; "
                            "seed: 0 in the checkpoint, 7 now")
    assert (out / "checkpoint.npz").read_bytes() == checkpoint
    # what may change on resume: the epochs, the threads, the progress bar
    assert cli.main(LENET_SMALL[:-1] + ["--epochs", "2", "--out", str(out), "--resume", "--threads", "1"]) == 0


def test_resuming_a_charlstm_of_another_size_is_one_error_line(tmp_path, capsys):
    out = tmp_path / "lstm"
    assert cli.main(LSTM_SMALL + ["--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    args = LSTM_SMALL + ["--epochs", "2", "--out", str(out), "--resume"]
    args[args.index("--hidden") + 1] = "24"
    assert cli.main(args) == 1
    _one_error_line(capsys, "hidden_size: 16 in the checkpoint, 24 now")


def test_resuming_a_finished_run_says_there_is_nothing_to_train(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(LENET_SMALL + ["--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(LENET_SMALL + ["--epochs", "1", "--out", str(out), "--resume"]) == 0
    text = capsys.readouterr().out
    assert "nothing to train: the checkpoint already holds 1 epoch(s) and --epochs is 1" in text
    assert "no training in this run" in text and "images/s" not in text and "epoch 1 |" not in text
    assert cli.main(LSTM_SMALL + ["--epochs", "1", "--out", str(tmp_path / "lstm")]) == 0
    capsys.readouterr()
    assert cli.main(LSTM_SMALL + ["--epochs", "1", "--out", str(tmp_path / "lstm"), "--resume"]) == 0
    text = capsys.readouterr().out
    assert "nothing to train" in text and "val perplexity" not in text


def test_resuming_a_checkpoint_without_a_configuration_warns_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(LENET_SMALL + ["--epochs", "1", "--out", str(out)]) == 0
    path = out / "checkpoint.npz"
    with np.load(path) as f:
        files = {name: f[name] for name in f.files}
    meta = json.loads(str(files["meta"]))
    del meta["config"]  # as written before checkpoints recorded it
    files["meta"] = np.array(json.dumps(meta))
    np.savez(path, **files)
    capsys.readouterr()
    assert cli.main(LENET_SMALL + ["--epochs", "2", "--out", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("fastnn: warning: ") and "recorded their configuration" in err
    assert len(err.strip().splitlines()) == 1


def test_perplexity_of_a_diverged_model_is_inf(monkeypatch, capsys):
    from fastnn.training import Trainer

    evaluate = Trainer.evaluate

    def huge_loss(self, loader):
        result = evaluate(self, loader)
        result["loss"] = 1000.0  # exp(1000) overflows a float
        return result

    monkeypatch.setattr(Trainer, "evaluate", huge_loss)
    assert cli.main(LSTM_SMALL + ["--epochs", "1"]) == 0
    assert "val loss 1000.0000 | val perplexity inf |" in capsys.readouterr().out
