"""The errors the tooling raises for a problem in what it was given, as opposed to a bug.

Their message names the file, input or resource, the value and the rule; tasks print it and
exit non-zero without a traceback.
"""


class PlatformError(Exception):
    pass
