"""Any data source -> a prepared ``DatasetDict`` with columns ``text``, ``text_pair`` and ``labels``.

One module per concern:

- :mod:`~texttune.data.readers`: the table of file formats (suffix -> reader, whole and streamed);
- :mod:`~texttune.data.sources`: files, saved dataset folders, built-in and hub datasets -> raw rows;
- :mod:`~texttune.data.columns`: which columns hold the text, the second text and the label;
- :mod:`~texttune.data.labels`: label values -> class names, the task, encoded labels;
- :mod:`~texttune.data.splits`: picking a split, holding out validation rows, seeded subsets;
- :mod:`~texttune.data.prepare`: the steps above in order, for training and for evaluation.

The task and column-name constants live in :mod:`texttune.tasks` (cheap to import) and are
re-exported here.

Example:
    >>> from texttune.config import DataConfig
    >>> data = load_training_data(DataConfig(data="sms_spam"))
    >>> data.task, data.label_names, sorted(data.splits)
    ('single_label', ['ham', 'spam'], ['test', 'train', 'validation'])
"""

from __future__ import annotations

from ..tasks import LABELS, MULTI_LABEL, REGRESSION, SINGLE_LABEL, TASKS, TEXT, TEXT_PAIR
from .columns import LABEL_COLUMN_NAMES, PAIR_COLUMN_NAMES, TEXT_COLUMN_NAMES, resolve_text_columns
from .labels import sort_label_names
from .prepare import PreparedData, load_labelled, load_training_data
from .sources import iter_frames, read_source

__all__ = [
    "LABELS",
    "LABEL_COLUMN_NAMES",
    "MULTI_LABEL",
    "PAIR_COLUMN_NAMES",
    "REGRESSION",
    "SINGLE_LABEL",
    "TASKS",
    "TEXT",
    "TEXT_COLUMN_NAMES",
    "TEXT_PAIR",
    "PreparedData",
    "iter_frames",
    "load_labelled",
    "load_training_data",
    "read_source",
    "resolve_text_columns",
    "sort_label_names",
]
