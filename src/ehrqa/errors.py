"""The one exception class ehrqa raises for bad input files."""


class DataError(ValueError):
    """A dataset, key or submission file is malformed.

    The message is short and names the file, case id and field, e.g.
    ``archehr-qa_key.json: case 12: sentence 3: unknown relevance label 'maybe'``.
    """
