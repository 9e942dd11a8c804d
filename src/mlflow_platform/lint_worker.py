"""What LintPool's fork server loads before it forks workers: cfn-lint, warmed up once.

Importing this module does the work (about 1.7 s): `multiprocessing` preloads modules by name,
and every worker forked afterwards shares what was loaded here.

What is loaded here is frozen out of garbage collection: the workers' collections no longer walk
cfn-lint's rules and schemas, and so leave those pages shared. With a larger first-generation
threshold, collection takes about a third of the time it took during a lint (0.2 of 0.6 s over
three templates), with the same peak memory.
"""

import gc

gc.disable()

from mlflow_platform import lint  # noqa: E402  (imported with the collector off)

lint.warm_up()
gc.freeze()
gc.set_threshold(5000)
gc.enable()
