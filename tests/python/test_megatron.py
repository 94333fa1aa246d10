"""rewarm convert megatron: tokens, documents and EOD exactly as the index says, split .bin
shards, and one clear error (with no output left) for each kind of bad input."""
import os

import h5py
import numpy as np
import pytest

from helpers import rewarm
from megatron_format import write_indexed

DOCS = [[[5, 6, 7], [8]], [[9, 10]], [], [[11], [], [12, 13, 14]]]  # an empty document and sequence


def flat(docs, eod=None):
    out, starts = [], [0]
    for d in docs:
        for s in d:
            out += s
        if eod is not None:
            out.append(eod)
        starts.append(len(out))
    return out, starts


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64, np.uint8])
def test_tokens_and_document_offsets(tmp_path, dtype):
    write_indexed(tmp_path / "corpus", DOCS, dtype)
    p = rewarm("convert", "megatron", tmp_path / "corpus", "--out", tmp_path / "c.h5", "--vocab-size", 50, "--quiet")
    assert "10 tokens, 6 sequences, 4 documents" in p.stdout
    tokens, starts = flat(DOCS)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f.attrs["format"] == "rewarm-tokens" and f.attrs["vocab_size"] == 50
        assert f["tokens"].dtype == np.uint16
        np.testing.assert_array_equal(f["tokens"][:], tokens)
        np.testing.assert_array_equal(f["document_offsets"][:], starts)


@pytest.mark.parametrize("dtype,vocab,eod,compress", [
    (np.int32, 70000, True, 4),    # uint32 output through HDF5's gzip filter
    (np.int32, 70000, True, 0),    # uint32 output written straight into its chunks
    (np.uint16, 60000, False, 0),  # .bin bytes read in place, tokens split across .bin files
    (np.uint16, 60000, True, 0),
])
def test_split_bins_eod_and_compression(tmp_path, dtype, vocab, eod, compress):
    rng = np.random.default_rng(0)
    docs = [[list(rng.integers(1, vocab, size=int(rng.integers(0, 50)))) for _ in range(int(rng.integers(1, 4)))]
            for _ in range(200)]
    bins = write_indexed(tmp_path / "document", docs, dtype, split_bin=3)
    if dtype == np.uint16:
        assert any(os.path.getsize(b) % 2 for b in bins)  # a token begins in one file, ends in the next
    extra = (["--append-eod", "--eod", 0] if eod else []) + (["--compress", compress] if compress else [])
    rewarm("convert", "megatron", tmp_path / "document", "--bin", *bins, "--out", tmp_path / "c.h5",
           "--vocab-size", vocab, "--chunk", 1000, "--quiet", *extra)
    tokens, starts = flat(docs, eod=0 if eod else None)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f["tokens"].dtype == (np.uint32 if vocab > 65536 else np.uint16)
        assert f["tokens"].compression == ("gzip" if compress else None) and f["tokens"].chunks == (1000,)
        np.testing.assert_array_equal(f["tokens"][:], tokens)
        np.testing.assert_array_equal(f["document_offsets"][:], starts)
    out = rewarm("info", tmp_path / "c.h5").stdout
    assert f"{len(tokens)} tokens" in out and "documents: 200" in out


def fails(tmp_path, expect, *extra):
    out = tmp_path / "bad.h5"
    vocab = [] if "--vocab-size" in extra else ["--vocab-size", 50]
    p = rewarm("convert", "megatron", tmp_path / "corpus", "--out", out, *vocab, "--quiet", *extra, check=False)
    assert p.returncode != 0
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and expect in lines[0], p.stderr
    assert not out.exists() and not os.path.exists(str(out) + ".tmp")
    return lines[0]


def patch(path, at, data):
    b = bytearray(open(path, "rb").read())
    b[at : at + len(data)] = data
    open(path, "wb").write(bytes(b))


def test_bad_inputs(tmp_path):
    write_indexed(tmp_path / "corpus", DOCS)
    idx, binf = tmp_path / "corpus.idx", tmp_path / "corpus.bin"
    good_idx, good_bin = idx.read_bytes(), binf.read_bytes()
    patch(idx, 0, b"XMIDIDX")
    assert "corpus.idx" in fails(tmp_path, "wrong magic")
    idx.write_bytes(good_idx)
    patch(idx, 9, (2).to_bytes(8, "little"))
    fails(tmp_path, "unsupported index version 2")
    idx.write_bytes(good_idx)
    patch(idx, 17, bytes([6]))
    fails(tmp_path, "unsupported dtype code 6")
    idx.write_bytes(good_idx)
    patch(idx, 17, bytes([9]))
    fails(tmp_path, "unsupported dtype code 9")
    idx.write_bytes(good_idx[:-8])
    fails(tmp_path, "its header promises")
    idx.write_bytes(good_idx)
    patch(idx, 34 + 4 * 6 + 8, (100).to_bytes(8, "little"))  # second pointer
    fails(tmp_path, "pointer of sequence 1 is 100, sizes say 6")
    idx.write_bytes(good_idx)
    binf.write_bytes(good_bin[:-4])
    assert "truncated" in fails(tmp_path, "the .bin data hold 16 bytes")
    binf.write_bytes(good_bin)
    fails(tmp_path, "token id 14 in sequence 5 is not below --vocab-size 14", "--vocab-size", "14")
    binf.unlink()
    fails(tmp_path, "corpus.bin: cannot open")
    (tmp_path / "corpus.idx").unlink()
    fails(tmp_path, "corpus.idx: cannot open")


def test_memory_stays_bounded(tmp_path):
    """A 256 MiB .bin converts with far less resident memory than its size (it is read in
    blocks of a few MB, and the page cache is released behind the cursor), into exactly its
    tokens. Measured above what the same binary holds to print its version: a sanitized build's
    baseline alone is over 100 MiB and grows with the binary."""
    import struct
    import subprocess
    import sys

    from helpers import REWARM

    n_seq, T = 65536, 2048
    with open(tmp_path / "big.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 8, n_seq, n_seq + 1))
        f.write(np.full(n_seq, T, np.int32).tobytes() + (np.arange(n_seq, dtype=np.int64) * 2 * T).tobytes())
        f.write(np.arange(n_seq + 1, dtype=np.int64).tobytes())
    tokens = np.random.default_rng(0).integers(0, 50000, size=n_seq * T, dtype=np.uint16)
    tokens.tofile(tmp_path / "big.bin")
    probe = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); " \
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    p = subprocess.run([sys.executable, "-c", probe, REWARM, "convert", "megatron", str(tmp_path / "big"), "--out",
                        str(tmp_path / "big.h5"), "--quiet"], capture_output=True, text=True, check=True)
    base = subprocess.run([sys.executable, "-c", probe, REWARM, "--version"], capture_output=True, text=True, check=True)
    grown_mib = (int(p.stdout) - int(base.stdout)) / 1024
    assert grown_mib < 64, f"{grown_mib:.0f} MiB resident above the process's own for a 256 MiB input"
    with h5py.File(tmp_path / "big.h5", "r") as f:
        np.testing.assert_array_equal(f["tokens"][:], tokens)
        np.testing.assert_array_equal(f["document_offsets"][:], np.arange(n_seq + 1) * T)
