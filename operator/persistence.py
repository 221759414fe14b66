"""Where Kopf keeps its state about each workload: the spec last handled in this process's memory,
and the progress of a retried handler in annotations, written only while there is progress to keep."""

from __future__ import annotations

import copy
from collections.abc import MutableMapping
from typing import Any, cast

import kopf

from teeplane.operator.model import KIND

#: Kopf's own annotations (the progress of a handler that is retried) go under this prefix.
ANNOTATIONS_PREFIX = "operator.teeplane.io"
#: The annotation by which Kopf marks a prefix as a Kopf operator's (other Kopf operators then ignore it).
MARKER = f"{ANNOTATIONS_PREFIX}/kopf-managed"


class HandledSpecs(kopf.DiffBaseStorage):
    """Kopf's record of the spec it last handled for each workload, kept in this process's memory.

    Handling a workload thus writes nothing to it (Kopf's default annotation costs a PATCH, a watch
    event and a webhook call per change). A new process (a restart, a standby taking over) has no
    record and handles each workload as new, which the level-based reconcile makes harmless. The
    essence is the spec alone: Kopf builds it for every event of every watched object, and its
    default deep-copies the whole body (managed fields, status); the objects the operator only
    watches get an empty one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._handled: dict[str, kopf.BodyEssence] = {}

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        """The essence compared with the last handled one: `{"spec": ...}` of a ConfidentialWorkload."""
        if body.get("kind") != KIND:
            return cast(kopf.BodyEssence, {})
        return cast(kopf.BodyEssence, {"spec": copy.deepcopy(dict(body.get("spec", {})))})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        """The essence last handled, None if this process handled none."""
        return self._handled.get(body.metadata.uid or "")

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        """Remember the essence handled (nothing goes into the patch)."""
        self._handled[body.metadata.uid or ""] = essence

    def forget(self, uid: str) -> None:
        """Drop the record of a deleted workload."""
        self._handled.pop(uid, None)


class ProgressAnnotations(kopf.AnnotationsProgressStorage):
    """Kopf's progress annotations under ANNOTATIONS_PREFIX, without a PATCH when there is no progress.

    Kopf puts a handler's progress and its marker annotation into one patch, and purges the
    progress once the handler succeeded; when that was at the first attempt, the patch would be sent
    with the marker alone: a PATCH of the workload, and the webhook calls and watch events it causes,
    for each new workload. The marker is written with the first progress that is kept.
    """

    def __init__(self) -> None:
        super().__init__(prefix=ANNOTATIONS_PREFIX)

    def purge(self, *, key: kopf.HandlerId, body: kopf.Body, patch: kopf.Patch) -> None:
        """Purge the handler's progress, and the marker if nothing else of Kopf's is left to write."""
        super().purge(key=key, body=body, patch=patch)
        metadata = cast(MutableMapping[str, Any], patch.get("metadata", {}))
        annotations = cast(MutableMapping[str, Any], metadata.get("annotations", {}))
        ours = [name for name in annotations if name.startswith(f"{ANNOTATIONS_PREFIX}/")]
        if ours == [MARKER] and MARKER not in body.metadata.annotations:
            del annotations[MARKER]
            if not annotations:
                del metadata["annotations"]
            if not metadata:
                del patch["metadata"]
