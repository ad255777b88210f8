"""Char-level text: the shipped books, the vocabulary's round trip, and truncated-BPTT batches."""
import numpy as np
import pytest

from fastnn import data
from fastnn.data.text import read_text_file


@pytest.fixture(scope="module")
def shakespeare():
    return data.load_text("shakespeare")


def test_shipped_books_are_listed_and_load():
    names = data.list_texts()
    for name in ["shakespeare-hamlet", "shakespeare-macbeth", "shakespeare-caesar", "carroll-alice",
                 "austen-emma", "shakespeare"]:
        assert name in names
    alice = data.load_text("carroll-alice")
    assert alice.startswith("[Alice's Adventures in Wonderland by Lewis Carroll 1865]")


def test_shakespeare_group_is_the_three_plays(shakespeare):
    assert 370_000 < len(shakespeare) < 380_000
    for title in ["Hamlet", "Macbeth", "Julius Caesar"]:
        assert f"[The Tragedie of {title} by William Shakespeare" in shakespeare
    assert "\r" not in shakespeare
    assert "æ" in shakespeare  # a Latin-1 byte in Julius Caesar, decoded rather than replaced
    assert data.load_text(["shakespeare-hamlet", "shakespeare-macbeth", "shakespeare-caesar"]) == shakespeare


def test_unknown_text_name():
    with pytest.raises(ValueError, match="unknown text 'hamlet'; known: austen-emma"):
        data.load_text("hamlet")
    with pytest.raises(ValueError, match="no text names"):
        data.load_text([])


def test_line_ends_are_normalised(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"one\r\ntwo\rthree\n\xe6")
    assert read_text_file(path) == "one\ntwo\nthree\næ"


def test_vocabulary_round_trip(shakespeare):
    vocab = data.Vocabulary(shakespeare)
    assert list(vocab.chars) == sorted(set(shakespeare))
    assert len(vocab) == vocab.size == 74
    ids = vocab.encode(shakespeare)
    assert ids.dtype == np.int64 and ids.shape == (len(shakespeare),)
    assert ids.min() == 0 and ids.max() == len(vocab) - 1
    assert vocab.decode(ids) == shakespeare
    assert [vocab.chars[i] for i in ids[:20]] == list(shakespeare[:20])
    rebuilt = data.Vocabulary(vocab.chars)
    np.testing.assert_array_equal(rebuilt.encode(shakespeare[:1000]), ids[:1000])


def test_vocabulary_errors():
    vocab = data.Vocabulary("abc")
    with pytest.raises(ValueError, match="character 'z' at position 2 is not in the vocabulary"):
        vocab.encode("abz")
    with pytest.raises(ValueError, match=r"id 3 is outside \[0, 3\)"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match=r"id -1 is outside"):
        vocab.decode(np.array([-1]))
    with pytest.raises(TypeError, match="integer ids"):
        vocab.decode(np.array([0.5]))
    with pytest.raises(ValueError, match="empty"):
        data.Vocabulary("")
    with pytest.raises(TypeError):
        data.Vocabulary(["a", "b"])
    with pytest.raises(TypeError):
        vocab.encode(b"abc")
    assert vocab.decode([]) == ""
    assert vocab.encode("").shape == (0,)


def test_contiguous_split_keeps_order():
    ids = np.arange(1001)
    train, val, test = data.contiguous_split(ids, [0.8, 0.1, 0.1])
    assert (len(train), len(val), len(test)) == (801, 100, 100)
    np.testing.assert_array_equal(np.concatenate([train, val, test]), ids)
    with pytest.raises(ValueError, match="sum to 1"):
        data.contiguous_split(ids, [0.8, 0.1])
    with pytest.raises(ValueError, match="non-negative"):
        data.contiguous_split(ids, [1.2, -0.2])


def test_bptt_batches_shift_and_continuity():
    ids = np.arange(1000) * 7  # distinct values, so positions can be read back
    B, T = 4, 16
    batches = data.BPTTBatches(ids, batch_size=B, seq_len=T)
    row_len = (1000 - 1) // B  # 249
    assert len(batches) == row_len // T == 15
    xs, ys = zip(*batches)
    for x, y in zip(xs, ys):
        assert x.shape == (B, T) and y.shape == (B, T) and x.dtype == np.int64
        np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    for k in range(len(xs) - 1):  # row b of batch k+1 continues row b of batch k
        np.testing.assert_array_equal(xs[k + 1][:, 0], ys[k][:, -1])
    for b in range(B):  # and each row is one consecutive span of the stream
        np.testing.assert_array_equal(np.concatenate([x[b] for x in xs]), ids[b * row_len:b * row_len + 15 * T])
        np.testing.assert_array_equal(np.concatenate([y[b] for y in ys]), ids[b * row_len + 1:b * row_len + 15 * T + 1])


def test_bptt_last_partial_batch():
    ids = np.arange(1000)
    batches = data.BPTTBatches(ids, batch_size=4, seq_len=16, drop_last=False)
    assert len(batches) == 16
    last_x, last_y = list(batches)[-1]
    assert last_x.shape == (4, 249 - 15 * 16)
    np.testing.assert_array_equal(last_y[:, -1], ids[np.arange(1, 5) * 249])


def test_bptt_on_real_text(shakespeare):
    vocab = data.Vocabulary(shakespeare)
    x, y = next(iter(data.BPTTBatches(vocab.encode(shakespeare), batch_size=16, seq_len=64)))
    assert vocab.decode(x[0]) + vocab.decode(y[0][-1:]) == shakespeare[:65]


def test_bptt_bad_arguments():
    with pytest.raises(ValueError, match="too few"):
        data.BPTTBatches(np.arange(64), batch_size=2, seq_len=32)
    data.BPTTBatches(np.arange(65), batch_size=2, seq_len=32)
    with pytest.raises(ValueError, match="BPTTBatches: batch_size must be >= 1"):
        data.BPTTBatches(np.arange(100), batch_size=0, seq_len=4)
    with pytest.raises(TypeError, match="must be an int"):
        data.BPTTBatches(np.arange(100), batch_size=2, seq_len=4.0)
    with pytest.raises(TypeError, match="1-D integer array"):
        data.BPTTBatches(np.zeros(100), batch_size=2, seq_len=4)
    with pytest.raises(ValueError, match="device"):
        data.BPTTBatches(np.arange(100), batch_size=2, seq_len=4, device="gpu")
