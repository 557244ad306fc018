"""One module per ``ehrqa`` command (see :mod:`ehrqa.cli`)."""
