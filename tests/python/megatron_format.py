"""A writer of GPT-NeoX/Megatron mmap indexed datasets (.bin + .idx), from the format's
description, for tests."""
import struct

import numpy as np

CODES = {np.uint8: 1, np.int8: 2, np.int16: 3, np.int32: 4, np.int64: 5, np.float32: 6, np.float64: 7, np.uint16: 8}


def write_indexed(prefix, documents, dtype=np.uint16, split_bin=None):
    """documents: list of documents, each a list of sequences (lists of token ids). With
    split_bin = k, the .bin is written as k files prefix-0000i.bin instead of prefix.bin."""
    seqs = [np.asarray(s, dtype=dtype) for doc in documents for s in doc]
    sizes = np.array([len(s) for s in seqs], dtype=np.int32)
    item = np.dtype(dtype).itemsize
    pointers = np.concatenate([[0], np.cumsum(sizes.astype(np.int64) * item)[:-1]]).astype(np.int64) if seqs else np.zeros(0, np.int64)
    doc_idx = np.concatenate([[0], np.cumsum([len(d) for d in documents])]).astype(np.int64)
    with open(f"{prefix}.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", CODES[dtype]))
        f.write(struct.pack("<Q", len(seqs)))
        f.write(struct.pack("<Q", len(doc_idx)))
        f.write(sizes.tobytes())
        f.write(pointers.tobytes())
        f.write(doc_idx.tobytes())
    data = b"".join(s.tobytes() for s in seqs)
    if not split_bin:
        with open(f"{prefix}.bin", "wb") as f:
            f.write(data)
        return [f"{prefix}.bin"]
    paths, step = [], -(-len(data) // split_bin)
    for i in range(split_bin):
        paths.append(f"{prefix}-{i:05d}.bin")
        with open(paths[-1], "wb") as f:
            f.write(data[i * step : (i + 1) * step])
    return paths


def write_pythia_like(prefix, sequences, seq_len=2049, vocab=50304, seed=0):
    """A large dataset in Pythia's layout (uint16, one document per seq_len-token sequence, the
    .bin written in 64 MiB pieces), for benchmarks: 262 016 sequences make 1 GiB."""
    rng = np.random.default_rng(seed)
    sizes = np.full(sequences, seq_len, dtype=np.int32)
    pointers = np.arange(sequences, dtype=np.int64) * seq_len * 2
    with open(f"{prefix}.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, CODES[np.uint16], sequences, sequences + 1))
        f.write(sizes.tobytes() + pointers.tobytes() + np.arange(sequences + 1, dtype=np.int64).tobytes())
    with open(f"{prefix}.bin", "wb") as f:
        left = sequences * seq_len
        while left > 0:
            n = min(left, 1 << 25)
            f.write(rng.integers(0, vocab, n, dtype=np.uint16).tobytes())
            left -= n
