"""Shared fixtures: a tiny statute corpus, the bundled encoder, a tiny random Qwen3 model, and the real AILA
data when its env var is set. RETRIEVAL_TEST_DEVICE (default cpu) is where the Qwen3 tests run, e.g. cuda."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from retrieval.corpus import Document

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TEST_DEVICE = os.environ.get("RETRIEVAL_TEST_DEVICE", "cpu")

TINY = [
    Document("S1", "Dowry death", "Title: Dowry death\nDesc: Where the death of a woman is caused by burns "
             "within seven years of her marriage and she was subjected to cruelty for dowry."),
    Document("S2", "Murder", "Title: Murder\nDesc: Culpable homicide is murder if the act is done with the "
             "intention of causing death."),
    Document("S3", "Theft", "Title: Theft\nDesc: Whoever intending to take dishonestly any movable property "
             "out of the possession of any person without consent commits theft."),
    Document("S4", "Criminal trespass", "Title: Criminal trespass\nDesc: Whoever enters into property in the "
             "possession of another with intent to commit an offence commits criminal trespass."),
    Document("S5", "Cheating", "Title: Cheating\nDesc: Whoever by deceiving any person fraudulently induces "
             "the person so deceived to deliver any property is said to cheat."),
]


@pytest.fixture(scope="session")
def tiny_docs() -> list[Document]:
    return list(TINY)


@pytest.fixture(scope="module")
def small_batches():
    """The bundled model with 4 texts a batch: several blocks (distributed encoding) even for a small corpus."""
    from retrieval.dense.encoders import Encoder, EncoderConfig

    return Encoder(EncoderConfig(device="cpu", batch_size=4))


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray session of 2 CPU workers for the module (Ray's start costs seconds)."""
    ray = pytest.importorskip("ray", reason="Ray is the optional extra .[ray]")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def encoder():
    from retrieval.dense.encoders import Encoder, EncoderConfig

    return Encoder(EncoderConfig(device="cpu"))


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory, tiny_docs, encoder) -> Path:
    from retrieval.retriever import HybridRetriever

    path = tmp_path_factory.mktemp("tiny") / "ix"
    HybridRetriever.build(tiny_docs, encoder=encoder, progress=False).save(path)
    return path


@pytest.fixture(scope="session")
def test_device() -> str:
    return TEST_DEVICE


@pytest.fixture(scope="session")
def qwen3_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny Qwen3-Embedding folder (see tests/qwen3_tiny.py), built once, offline."""
    from qwen3_tiny import build_qwen3_folder

    return build_qwen3_folder(tmp_path_factory.mktemp("qwen3") / "tiny-qwen3-embedding")


@pytest.fixture(scope="session")
def qwen3_encoder(qwen3_dir, test_device):
    """The tiny Qwen3 in float32 on the test device, so that results compare to ~1e-5."""
    from retrieval.dense.encoders import Encoder, EncoderConfig

    return Encoder(EncoderConfig(model=str(qwen3_dir), device=test_device, dtype="float32"))


def _data_dir(var: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"{var} not set")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"{var}={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def aila_dir() -> Path:
    return _data_dir("AILA2019_DIR")


@pytest.fixture(scope="session")
def stard_dir() -> Path:
    return _data_dir("STARD_DIR")


@pytest.fixture(scope="session")
def aila_index(tmp_path_factory, aila_dir, encoder) -> Path:
    from retrieval.corpus import read_corpus
    from retrieval.retriever import HybridRetriever

    path = tmp_path_factory.mktemp("aila") / "ix"
    HybridRetriever.build(read_corpus(aila_dir / "Object_statutes"), encoder=encoder, progress=False).save(path)
    return path


def pytest_terminal_summary(terminalreporter) -> None:
    """Say in one line what was skipped and how to run it (as .ci/run does)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    what = "; ".join(f"{n} x {reason}" for reason, n in sorted(reasons.items()))
    terminalreporter.write_line(
        f"skipped {len(skipped)} tests ({what}). To run them: AILA2019_DIR=<AILA 2019 folder> STARD_DIR=<STARD folder> "
        "make test, with Chromium installed for the browser test (bash .ci/run does both)", yellow=True)
