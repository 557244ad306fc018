import os

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("EHRQA_NO_PROGRESS", "1")


# The loopback OpenAI-compatible chat server (tests/fakes/openai_server.py), fresh for each test.
import pytest  # noqa: E402


@pytest.fixture
def openai_server():
    from fakes.openai_server import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server
