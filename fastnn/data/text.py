"""Character-level text data for language models: the shipped books, a vocabulary, and batches for
truncated backpropagation through time (BPTT).

    text  = load_text("shakespeare")            # Hamlet, Macbeth and Julius Caesar, one string
    vocab = Vocabulary(text)                    # the sorted distinct characters
    ids   = vocab.encode(text)                  # int64 (len(text),), ids[t] = index of text[t]
    train, val = contiguous_split(ids, [0.9, 0.1])
    for x, y in BPTTBatches(train, batch_size=16, seq_len=64):
        ...                                     # x, y (16, 64); y[b, t] = the character after x[b, t]

The books are public-domain Project Gutenberg texts shipped in fastnn/data/text (see the
GUTENBERG-README there). A few bytes are Latin-1, not UTF-8, so they are read as Latin-1; line
ends are normalised to "\\n".
"""
from pathlib import Path

import numpy as np

from ..functional._checks import int_at_least
from ._util import check_device, sizes_from_fractions, to_device

TEXT_DIR = Path(__file__).resolve().parent / "text"

# Names that stand for several books, concatenated in this order.
TEXT_GROUPS = {
    "shakespeare": ("shakespeare-hamlet", "shakespeare-macbeth", "shakespeare-caesar"),
}


def list_texts():
    """Names of the shipped books (file names without .txt), sorted, then the group names."""
    return sorted(p.stem for p in TEXT_DIR.glob("*.txt")) + sorted(TEXT_GROUPS)


def read_text_file(path):
    """The text of a file read as Latin-1 (every byte is a character), with CRLF and CR turned to LF."""
    with open(path, encoding="latin-1", newline="") as f:
        text = f.read()
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_text(names="shakespeare"):
    """The shipped book(s) `names` as one string, books separated by a blank line.

    Args:
        names: a book name ("carroll-alice"), a group name ("shakespeare": Hamlet, Macbeth and
            Julius Caesar, about 375 thousand characters), or a list of them. list_texts() names them.
            Only these plain names are accepted, never paths: a name with a path separator or ".."
            is refused, so no file outside the shipped texts can be read (read_text_file(path)
            reads a file of your own).

    Raises:
        TypeError: a name that is not a str.
        ValueError: an unknown name, or a path (the message lists the known names).
    """
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ValueError("load_text: no text names given")
    known = list_texts()
    books = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"load_text: text names are str, got {type(name).__name__} {name!r}")
        if name not in known:
            path_like = "/" in name or "\\" in name or ".." in name
            why = " (a path: only the plain names of the shipped texts are accepted)" if path_like else ""
            raise ValueError(f"load_text: unknown text {name!r}{why}; known: {', '.join(known)}")
        for book in TEXT_GROUPS.get(name, (name,)):
            books.append(read_text_file(TEXT_DIR / f"{book}.txt"))
    return "\n\n".join(book.strip("\n") for book in books) + "\n"


class Vocabulary:
    """The distinct characters of a text, sorted, numbered from 0.

        encode(s)[t] = index of s[t] in chars        decode(ids) = "".join(chars[i] for i in ids)

    Vocabulary(vocab.chars) rebuilds the same vocabulary, so `chars` is all a checkpoint needs.
    """

    def __init__(self, text):
        if not isinstance(text, str):
            raise TypeError(f"Vocabulary: expected a str, got {type(text).__name__}")
        if not text:
            raise ValueError("Vocabulary: the text is empty")
        self.chars = "".join(sorted(set(text)))
        self._codepoints = np.frombuffer(self.chars.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        self._index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    @property
    def size(self):
        return len(self.chars)

    def __repr__(self):
        return f"Vocabulary({len(self)} characters: {self.chars!r})"

    def encode(self, text):
        """int64 ids of the characters of `text`; ValueError names a character not in the vocabulary."""
        if not isinstance(text, str):
            raise TypeError(f"encode: expected a str, got {type(text).__name__}")
        # Vectorised: code points sorted like chars, so searchsorted gives each character's index.
        codepoints = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        ids = np.searchsorted(self._codepoints, codepoints)
        ids_clipped = np.minimum(ids, len(self.chars) - 1)
        unknown = np.flatnonzero(self._codepoints[ids_clipped] != codepoints)
        if unknown.size:
            t = int(unknown[0])
            raise ValueError(
                f"encode: character {text[t]!r} at position {t} is not in the vocabulary "
                f"({unknown.size} unknown character(s))"
            )
        return ids.astype(np.int64)

    def decode(self, ids):
        """The string of the characters numbered `ids` (any integer array or sequence)."""
        ids = np.asarray(ids)
        if ids.size == 0:
            return ""
        if ids.dtype.kind not in "iu":
            raise TypeError(f"decode: expected integer ids, got {ids.dtype}")
        bad = np.flatnonzero((ids < 0) | (ids >= len(self.chars)))
        if bad.size:
            raise ValueError(f"decode: id {int(ids.reshape(-1)[bad[0]])} is outside [0, {len(self.chars)})")
        return "".join(self.chars[i] for i in ids.reshape(-1).tolist())


def contiguous_split(ids, fractions):
    """Cuts a sequence into consecutive pieces of the given fractions (first piece takes the rounding).

    Text is split in contiguous pieces, not shuffled: neighbouring characters are not independent
    samples, so a random split would leak training text into validation.

    Returns:
        A list of views of `ids`, one per fraction: sizes floor(f * n) except the first, which
        gets the rest.

    Raises:
        ValueError: fractions that are negative or do not sum to 1.
    """
    n = len(ids)
    sizes = sizes_from_fractions(n, fractions)
    bounds = np.cumsum([0] + sizes)
    return [ids[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]


class BPTTBatches:
    """(x, y) batches of a token stream for truncated BPTT, each row continuing the same row of the
    previous batch so a recurrent state can be carried across batches.

    The stream of n ids is cut into batch_size rows of L = (n - 1) // batch_size consecutive ids
    (the last id of each row's span is kept as the target of the row's last input):

        row b covers ids[b*L : (b+1)*L + 1]
        batch k: x[b, t] = ids[b*L + k*seq_len + t],  y[b, t] = ids[b*L + k*seq_len + t + 1]

    So batch k+1's row b starts right where batch k's row b ended, and y is x shifted by one.
    There are L // seq_len full batches; with drop_last=False a shorter last batch (fewer
    time steps) covers the remainder.

    Args:
        ids: 1-D integer array (NumPy), e.g. Vocabulary.encode(text).
        batch_size: rows B (independent streams).
        seq_len: time steps T per batch (the truncation length).
        drop_last: leave out the shorter last batch.
        device: None or "cpu" for NumPy batches, "cuda" for CuPy arrays on the current GPU.
    """

    def __init__(self, ids, batch_size, seq_len, drop_last=True, device=None):
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise TypeError(f"BPTTBatches: ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
        batch_size = int_at_least("BPTTBatches", "batch_size", batch_size)
        seq_len = int_at_least("BPTTBatches", "seq_len", seq_len)
        row_len = (len(ids) - 1) // batch_size
        if row_len < 1 or (drop_last and row_len < seq_len):
            raise ValueError(
                f"BPTTBatches: {len(ids)} ids are too few for batch_size={batch_size}, seq_len={seq_len} "
                f"(need at least {batch_size * seq_len + 1})"
            )
        self.batch_size, self.seq_len, self.drop_last = batch_size, seq_len, drop_last
        self.device = check_device(device)
        # rows[b] = ids[b*L : (b+1)*L + 1]: the overlapping last column is the last target.
        starts = np.arange(batch_size)[:, None] * row_len + np.arange(row_len + 1)[None, :]
        self.rows = ids[starts].astype(np.int64)

    def __len__(self):
        row_len = self.rows.shape[1] - 1
        full, rest = divmod(row_len, self.seq_len)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        row_len = self.rows.shape[1] - 1
        for k in range(len(self)):
            start = k * self.seq_len
            stop = min(start + self.seq_len, row_len)
            x = self.rows[:, start:stop]
            y = self.rows[:, start + 1:stop + 1]
            yield to_device(np.ascontiguousarray(x), self.device), to_device(np.ascontiguousarray(y), self.device)
