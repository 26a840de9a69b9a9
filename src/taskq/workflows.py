"""Workflows: chains, groups and chords of tasks, and what Redis keeps of them.

A workflow is a tree: a ``Sig`` (one task), a ``Chain`` (steps in order, each receiving the
previous step's result as its first argument unless the step is immutable) or a ``Group``
(members in parallel, with the members' results in order as the group's result). A chord is a
group followed by a callback: ``chain(group(...), callback)``.

The tree is flattened to numbered nodes (1 is the root) and kept in Redis; every step is started
by the Lua script that records its predecessor's outcome (see ``taskq.lua``), so a step starts once
however often a message is redelivered, and a callback fires once whatever happens to the worker
that finished the last member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, get_args

import orjson

from . import limits
from .errors import InvalidTask
from .models import json_problem

Policy = Literal["fail", "skip", "run"]
POLICIES: tuple[str, ...] = get_args(Policy)
WorkflowStatus = Literal["running", "success", "failed", "cancelled"]
MAX_NODES = 1000
MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Sig:
    """One task of a workflow: its name, arguments and options."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    immutable: bool = False  # True: the previous step's result is not passed in
    max_retries: int | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Chain:
    steps: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Group:
    members: tuple[Node, ...]
    # What the group does when a member fails (failed, dead or cancelled), once all have finished:
    # fail: the group fails (a chord's callback does not run); skip: its result leaves the failed
    # members out; run: its result has one {"status", "result" | "error"} object per member.
    on_failure: Policy = "fail"


Node: TypeAlias = Sig | Chain | Group


def sig(task: str, *args: Any, _immutable: bool = False, _max_retries: int | None = None,
        _timeout: float | None = None, **kwargs: Any) -> Sig:
    """A workflow step: ``sig("add", 1, 2)``. Options are underscore-prefixed like ``Client.submit``'s."""
    return Sig(task, tuple(args), dict(kwargs), _immutable, _max_retries, _timeout)


def _node(value: Node | str) -> Node:
    if isinstance(value, str):
        return Sig(value)
    if not isinstance(value, (Sig, Chain, Group)):
        raise InvalidTask(f"a workflow step must be sig(...), chain(...), group(...) or a task name, got {value!r}")
    return value


def chain(*steps: Node | str) -> Chain:
    """Steps in order; each receives the previous one's result as its first argument."""
    return Chain(tuple(_node(s) for s in steps))


def group(*members: Node | str, on_failure: Policy = "fail") -> Group:
    """Members run in parallel; the group's result is their results, in order."""
    return Group(tuple(_node(m) for m in members), on_failure)


def chord(members: Sequence[Node | str] | Group, callback: Node | str, *, on_failure: Policy = "fail") -> Chain:
    """A group and a callback that receives the members' results in order; it fires exactly once."""
    header = members if isinstance(members, Group) else group(*members, on_failure=on_failure)
    return chain(header, callback)


# --- JSON (the HTTP API's description of a workflow) --------------------------------------------
def from_json(data: Any, where: str = "workflow", depth: int = 0) -> Node:
    """Parse ``{"task": ...}``, ``{"chain": [...]}``, ``{"group": [...], "on_failure": ...}`` or
    ``{"chord": [...], "callback": {...}, "on_failure": ...}``; raises ``InvalidTask`` saying where."""
    if depth > MAX_DEPTH:
        raise InvalidTask(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(data, str):
        return Sig(data)
    if not isinstance(data, dict):
        raise InvalidTask(f"{where}: expected an object with one of task, chain, group, chord; got {data!r:.80}")
    kinds = [k for k in ("task", "chain", "group", "chord") if k in data]
    if len(kinds) != 1:
        raise InvalidTask(f"{where}: give exactly one of task, chain, group, chord")
    kind = kinds[0]
    allowed = {"task": {"task", "args", "kwargs", "immutable", "max_retries", "timeout"},
               "chain": {"chain"}, "group": {"group", "on_failure"},
               "chord": {"chord", "callback", "on_failure"}}[kind]
    if extra := sorted(set(data) - allowed):
        raise InvalidTask(f"{where}: unknown field(s) {', '.join(extra)} for a {kind}")
    if kind == "task":
        args, kwargs, immutable = data.get("args", []), data.get("kwargs", {}), data.get("immutable", False)
        if not isinstance(args, list):
            raise InvalidTask(f"{where}.args must be a list")
        if not isinstance(kwargs, dict):
            raise InvalidTask(f"{where}.kwargs must be an object")
        if not isinstance(immutable, bool):
            raise InvalidTask(f"{where}.immutable must be true or false")
        return Sig(data["task"], tuple(args), kwargs, immutable, data.get("max_retries"), data.get("timeout"))
    policy = data.get("on_failure", "fail")
    if policy not in POLICIES:
        raise InvalidTask(f"{where}.on_failure must be one of {', '.join(POLICIES)}, got {policy!r}")
    items = data[kind]
    if not isinstance(items, list):
        raise InvalidTask(f"{where}.{kind} must be a list")
    nodes = tuple(from_json(x, f"{where}.{kind}[{i}]", depth + 1) for i, x in enumerate(items))
    if kind == "chain":
        return Chain(nodes)
    if kind == "group":
        return Group(nodes, policy)
    if "callback" not in data:
        raise InvalidTask(f"{where}: a chord needs a callback")
    return Chain((Group(nodes, policy), from_json(data["callback"], f"{where}.callback", depth + 1)))


def to_json(node: Node) -> dict[str, Any]:
    if isinstance(node, Sig):
        out: dict[str, Any] = {"task": node.task, "args": list(node.args), "kwargs": node.kwargs}
        if node.immutable:
            out["immutable"] = True
        if node.max_retries is not None:
            out["max_retries"] = node.max_retries
        if node.timeout is not None:
            out["timeout"] = node.timeout
        return out
    if isinstance(node, Chain):
        return {"chain": [to_json(s) for s in node.steps]}
    return {"group": [to_json(m) for m in node.members], "on_failure": node.on_failure}


# --- flattening -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Flat:
    """A workflow as the Redis scripts read it: the graph, and each task node's raw arguments."""

    spec: str  # JSON list of nodes, node i at position i - 1
    leaves: list[tuple[int, str, str]]  # (node index, args JSON, kwargs JSON)
    tasks: list[str]  # the task names used, for the caller's known-task check


def flatten(root: Node) -> Flat:
    """Number the nodes depth-first from 1 and check every bound; raises ``InvalidTask``."""
    nodes: list[dict[str, Any]] = []
    leaves: list[tuple[int, str, str]] = []
    names: set[str] = set()

    def visit(node: Node, parent: int, where: str, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise InvalidTask(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if len(nodes) >= MAX_NODES:
            raise InvalidTask(f"a workflow has at most {MAX_NODES} steps, groups and chains")
        index = len(nodes) + 1
        entry: dict[str, Any] = {"p": parent}
        nodes.append(entry)
        if isinstance(node, Sig):
            _check_sig(node, where)
            entry.update(k="t", t=node.task)
            if node.immutable:
                entry["i"] = True
            if node.max_retries is not None:
                entry["r"] = str(node.max_retries)
            if node.timeout is not None:
                entry["o"] = repr(float(node.timeout))
            leaves.append((index, orjson.dumps(list(node.args)).decode(), orjson.dumps(node.kwargs).decode()))
            names.add(node.task)
            return index
        children = node.steps if isinstance(node, Chain) else node.members
        kind = "chain" if isinstance(node, Chain) else "group"
        if not children:
            raise InvalidTask(f"{where}: a {kind} needs at least one step")
        entry["k"] = "c" if isinstance(node, Chain) else "g"
        if isinstance(node, Group):
            if node.on_failure not in POLICIES:
                raise InvalidTask(f"{where}.on_failure must be one of {', '.join(POLICIES)}, got {node.on_failure!r}")
            entry["f"] = node.on_failure
        entry["c"] = [visit(_node(c), index, f"{where}.{kind}[{i}]", depth + 1) for i, c in enumerate(children)]
        return index

    visit(_node(root), 0, "workflow", 0)
    return Flat(orjson.dumps(nodes).decode(), leaves, sorted(names))


def _check_sig(s: Sig, where: str) -> None:
    if why := limits.task_name_problem(s.task):
        raise InvalidTask(f"{where}: {why}")
    for why in (limits.max_retries_problem(s.max_retries), limits.timeout_problem(s.timeout)):
        if why:
            raise InvalidTask(f"{where}: {why}")
    if not isinstance(s.kwargs, dict) or not all(isinstance(k, str) for k in s.kwargs):
        raise InvalidTask(f"{where}: kwargs must be an object with string keys")
    if why := json_problem(list(s.args), f"{where}.args") or json_problem(s.kwargs, f"{where}.kwargs"):
        raise InvalidTask(why)


# --- what Redis keeps -------------------------------------------------------------------------
@dataclass(slots=True)
class WorkflowNode:
    """One node of a workflow as it stands: ``state`` is None until the node is started."""

    index: int
    kind: Literal["task", "chain", "group"]
    parent: int  # 0 for the root
    children: list[int]
    state: str | None  # running | success | failed | dead | cancelled
    task: str | None = None
    task_id: str | None = None  # a task node's task, once started
    on_failure: str | None = None
    result: Any = None
    error: str | None = None


@dataclass(slots=True)
class WorkflowRecord:
    id: str
    status: WorkflowStatus
    result: Any = None
    error: str | None = None
    failed_task_id: str | None = None  # the first task whose failure reached the workflow
    created_at: float | None = None
    finished_at: float | None = None
    nodes: list[WorkflowNode] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status != "running"

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> WorkflowRecord:
        kinds: dict[str, Literal["task", "chain", "group"]] = {"t": "task", "c": "chain", "g": "group"}
        nodes = []
        for i, n in enumerate(orjson.loads(h["spec"]), start=1):
            state = h.get(f"s{i}") or None
            value = h.get(f"v{i}")
            node = WorkflowNode(index=i, kind=kinds[n["k"]], parent=n["p"], children=n.get("c", []), state=state,
                                task=n.get("t"), on_failure=n.get("f"))
            if n["k"] == "t" and state is not None:
                node.task_id = f"{h['id']}-{i}"
            if state == "success" and value:
                node.result = orjson.loads(value)
            elif state not in (None, "running", "success"):
                node.error = value or None
            nodes.append(node)
        return cls(
            id=h["id"], status=h["status"],  # type: ignore[arg-type]
            result=orjson.loads(h["result"]) if h.get("result") else None,
            error=h.get("error") or None,
            failed_task_id=h.get("failed_task") or None,
            created_at=float(h["created_at"]) if h.get("created_at") else None,
            finished_at=float(h["finished_at"]) if h.get("finished_at") else None,
            nodes=nodes,
        )
