"""Task names, the column names of prepared data and pooling rules: constants only, cheap to import.

Modules that only need these names import them from here rather than from :mod:`texttune.data`,
which loads pandas, pyarrow and datasets.

Example:
    >>> from texttune.tasks import LABELS, SINGLE_LABEL, TASKS
    >>> SINGLE_LABEL in TASKS, LABELS
    (True, 'labels')
"""

from __future__ import annotations

#: One class per text (``labels``: int64 class id).
SINGLE_LABEL = "single_label"
#: Any number of classes per text (``labels``: float32 multi-hot list).
MULTI_LABEL = "multi_label"
#: A numeric target per text (``labels``: float32).
REGRESSION = "regression"
TASKS = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)

#: Columns of a prepared split: the text, the second text of a pair (pairs only), the encoded label.
TEXT, TEXT_PAIR, LABELS = "text", "text_pair", "labels"

#: How a head turns token vectors into one vector per text (see :func:`texttune.heads.pool`).
POOLINGS = ("cls", "mean", "max", "last")
#: ``--pooling`` choices: a pooling rule, the architecture's own head, or ``auto`` (the checkpoint's own).
POOLING_CHOICES = ("auto", "pooler", *POOLINGS)
