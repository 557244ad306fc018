import importlib.abc
import os
import sys

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("EHRQA_NO_PROGRESS", "1")


import pytest  # noqa: E402

# The libraries a test that loads a model (a chat model, MiniLM, a cross-encoder, BERTScore) imports.
MODEL_LIBRARIES = {"torch", "transformers", "sentence_transformers", "peft", "bitsandbytes", "accelerate", "bert_score"}


class ModelInFastRun(ModuleNotFoundError):
    """A library's optional import of these (thinc's torch) falls back as if it were not installed;
    ehrqa itself has no such fallback for them, so a test that needs one fails with this message."""


class _NoModelLibraries(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in MODEL_LIBRARIES:
            raise ModelInFastRun(f"this test imports {name}, so it loads a model: mark it @pytest.mark.model")
        return None


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` load real models, so they are ``model`` tests too."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("model"):
            item.add_marker(pytest.mark.model)


def pytest_collection_finish(session):
    """``-m "not model"`` (make test-fast) runs with the model libraries blocked: a test that loads a
    model without the ``model`` mark fails at once instead of making the fast run slow."""
    if "not model" in (session.config.option.markexpr or "") and not MODEL_LIBRARIES & set(sys.modules):
        sys.meta_path.insert(0, _NoModelLibraries())


# The loopback OpenAI-compatible chat server (tests/fakes/openai_server.py), fresh for each test.
@pytest.fixture
def openai_server():
    from fakes.openai_server import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server
