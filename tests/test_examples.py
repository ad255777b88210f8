"""Fast smoke runs of examples/: each runs on a small setting and reaches its stated result."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_xor_needs_a_hidden_layer(capsys):
    assert load_example("xor_mlp").main(["--epochs", "300"]) == 0
    out = capsys.readouterr().out
    perceptron = int(out.split("single perceptron: accuracy ")[1].split("%")[0])
    assert perceptron <= 75
    assert "MLP 2-8-1:   accuracy 100%" in out


def test_linear_and_logistic_regression_reach_the_exact_solutions(capsys):
    assert load_example("linear_logistic_regression").main(["--samples", "200", "--epochs", "1500"]) == 0
    out = capsys.readouterr().out
    assert "closed form (X^T X)^-1 X^T y" in out and "Newton / IRLS optimum" in out


def test_huber_resists_outliers_better_than_mse(capsys):
    assert load_example("huber_vs_mse").main(["--epochs", "800"]) == 0
    assert "Huber fit: y = " in capsys.readouterr().out


def test_siamese_runs_and_reports_nearest_neighbour_accuracy(capsys):
    assert load_example("siamese_mnist").main(["--train-size", "600", "--test-size", "100", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    embedded = float(out.split("triplet embedding: ")[1].split("%")[0])
    assert embedded > 50.0  # ten classes: chance is 10%


def test_hyperparameter_search_picks_the_best_validation_score(capsys):
    example = load_example("hyperparameter_search")
    assert example.main(["--train-size", "300", "--val-size", "100", "--epochs", "1", "--random-trials", "1"]) == 0
    out = capsys.readouterr().out
    assert "grid search (6 candidates)" in out and "random search (1 candidates)" in out
    assert "overall best" in out and "test accuracy" in out


def test_resnet_fashion_mnist_tiny(capsys):
    example = load_example("resnet_fashion_mnist")
    try:
        from fastnn import data

        data.locate("fashion-mnist", "test")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    assert example.main(["--train-size", "80", "--test-size", "40", "--epochs", "1", "--width", "4",
                         "--batch-size", "16", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "small ResNet" in out and "test accuracy" in out


def test_resnet_fashion_mnist_says_when_the_data_is_missing(monkeypatch, capsys):
    example = load_example("resnet_fashion_mnist")

    def missing(*args, **kwargs):
        raise FileNotFoundError("Fashion-MNIST train files not found; looked in: /nowhere")

    monkeypatch.setattr(example.data, "load_fashion_mnist", missing)
    assert example.main([]) == 2
    err = capsys.readouterr().err
    assert "Fashion-MNIST not found" in err and "/nowhere" in err
    assert "apt install fashion-mnist" not in err and "in $FASTNN_DATA." not in err  # no hint of its own


def test_resnet_fashion_mnist_missing_data_message_names_the_real_package_and_folder(tmp_path, monkeypatch, capsys):
    from fastnn import data

    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        data.locate("fashion-mnist", "train")
        pytest.skip("Fashion-MNIST is installed")
    except FileNotFoundError:
        pass
    assert load_example("resnet_fashion_mnist").main(["--data", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err and f"{tmp_path / 'fashion-mnist'}" in err
    doc = load_example("resnet_fashion_mnist").__doc__
    assert "dataset-fashion-mnist" in doc and "$FASTNN_DATA/fashion-mnist" in doc


@pytest.mark.parametrize("name, argv, message", [
    ("xor_mlp", ["--epochs", "0"], "argument --epochs: must be positive, got 0"),
    ("xor_mlp", ["--hidden", "0"], "argument --hidden: must be positive"),
    ("linear_logistic_regression", ["--samples", "0"], "argument --samples: must be positive"),
    ("huber_vs_mse", ["--outlier-fraction", "2"], "argument --outlier-fraction: must be in [0, 1), got 2"),
    ("huber_vs_mse", ["--lr", "inf"], "argument --lr: must be positive and finite"),
    ("siamese_mnist", ["--train-size", "0"], "argument --train-size: must be positive"),
    ("hyperparameter_search", ["--seed", "-1"], "argument --seed: must be >= 0"),
    ("resnet_fashion_mnist", ["--width", "0"], "argument --width: must be positive"),
    ("resnet_fashion_mnist", ["--train-size", "0"], "argument --train-size: must be positive"),
])
def test_examples_reject_bad_numbers_with_a_usage_error(name, argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        load_example(name).main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("name", ["xor_mlp", "linear_logistic_regression", "huber_vs_mse", "siamese_mnist",
                                  "hyperparameter_search", "resnet_fashion_mnist"])
def test_examples_help_shows_every_default(name, capsys):
    with pytest.raises(SystemExit) as info:
        load_example(name).main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    options = [line.split()[0] for line in out.splitlines() if line.strip().startswith("--")]
    assert options and "(default:" in out
    assert out.count("(default:") >= len([o for o in options if o != "--no-progress"])


@pytest.mark.parametrize("script, args, expected", [
    ("lenet5_mnist.py", ["--limit-train", "64", "--limit-eval", "64", "--epochs", "1"], "test accuracy"),
    ("char_lstm.py", ["--limit-chars", "3000", "--epochs", "1", "--hidden", "16", "--batch-size", "4",
                      "--seq-len", "16", "--sample-length", "10"], "val perplexity"),
])
def test_cli_wrappers_run_as_scripts(tmp_path, script, args, expected):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args, "--no-progress"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


@pytest.mark.parametrize("script", ["lenet5_mnist.py", "char_lstm.py"])
def test_cli_wrappers_use_their_own_name(tmp_path, script):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--help"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0 and f"usage: {script}" in result.stdout and "fastnn train" not in result.stdout[:200]
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--epochs", "0"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and f"{script}: error: argument --epochs: must be positive" in result.stderr
