"""What a job does besides the engine's ``Config``, with every rule about how its options go
together written once (the job pipeline, ``_engine._pipeline``, runs it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ._config import Config
from ._exceptions import ConfigError

__all__ = ["JOB_FIELDS", "STDOUT", "JobSpec"]

STDOUT = "-"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """What a job does besides the engine's ``Config``.

    ``output``: where records go (``"-"``: stdout; None: nowhere, the caller takes the
    results); ``format``: its format (None: from its name). ``resume``: skip what ``output``
    already holds and append the rest (``redo_failed``: its records that are not ok too).
    ``ordered``: records in input order. ``workers``: processes sharing the limits, one
    writer. ``cluster``/``shards``: run on Ray, ``output`` then a directory of parts.
    """

    output: str | None = None
    format: str | None = None
    ordered: bool = False
    resume: bool = False
    redo_failed: bool = False
    workers: int = 1
    cluster: str | None = None
    shards: int | None = None

    def __post_init__(self) -> None:
        named = self.output is not None and self.output != STDOUT
        if self.resume and not named:
            raise ConfigError("resume", True, "reads what the output holds: give `output`")
        if self.redo_failed and not self.resume:
            raise ConfigError("redo_failed", True, "goes with `resume`")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            raise ConfigError("workers", self.workers, "give a whole number >= 1")
        if self.shards is not None and self.cluster is None:
            raise ConfigError("shards", self.shards, "shards go with `cluster`")
        if self.shards is not None and self.shards < 1:
            raise ConfigError("shards", self.shards, "give a whole number >= 1")
        if self.cluster is not None:
            if not named:
                raise ConfigError("cluster", self.cluster, "a cluster job writes part files: "
                                  "give a directory as `output`")  # fmt: skip
            if self.ordered:
                raise ConfigError("ordered", True, "does not go with `cluster`: each part is "
                                  "written as its results finish (sort the parts by id "
                                  "afterwards)")  # fmt: skip
            if self.workers > 1:
                raise ConfigError("workers", self.workers, "does not go with `cluster`: Ray "
                                  "already runs a shard on each CPU of every node")  # fmt: skip

    def check(self, config: Config) -> None:
        """The rules about this job and the engine's options together."""
        if config.pages.paginate is not None and self.cluster is not None:
            raise ConfigError("cluster", self.cluster, "a cluster job does not follow pages yet "
                              "(`paginate`)")  # fmt: skip
        if config.pages.paginate is not None and self.workers > 1:
            raise ConfigError("workers", self.workers, "does not go with `paginate` yet: worker "
                              "processes do not follow pages")  # fmt: skip
        if config.records.rows is not None and (self.workers > 1 or self.cluster is not None):
            which = "workers" if self.workers > 1 else "cluster"
            raise ConfigError(which, getattr(self, which), "does not go with `rows` yet: the "
                              "rows are made where the records are written")  # fmt: skip
        if config.guards.any and (self.workers > 1 or self.cluster is not None):
            which = "workers" if self.workers > 1 else "cluster"
            raise ConfigError(which, getattr(self, which), "does not go with the guards yet "
                              "(`limit`, `deadline`, `max_cost`, `stop_if`, `fail_if`): they "
                              "count in one "
                              "process")  # fmt: skip


JOB_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(JobSpec))
