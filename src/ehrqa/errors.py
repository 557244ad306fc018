"""The one exception class ehrqa raises for anything a user can get wrong: files, flags, recipes, servers."""


class DataError(ValueError):
    """A dataset, key, submission, recipe, flag, run directory or server answer ehrqa cannot use.

    The message is one short line naming the file (flag, URL), case id and field, e.g.
    ``archehr-qa_key.json: case 12: sentence 3: unknown relevance label 'maybe'``.
    """
