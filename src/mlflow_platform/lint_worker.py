"""What LintPool's fork server loads before it forks workers: cfn-lint, warmed up once.

Importing this module does the work (about 1.7 s): `multiprocessing` preloads modules by name,
and every worker forked afterwards shares what was loaded here.
"""

from mlflow_platform import lint

lint.warm_up()
