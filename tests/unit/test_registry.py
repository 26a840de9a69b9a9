import types

import pytest

from taskq.errors import ConfigError, UnknownTask
from taskq.models import TaskMessage
from taskq.registry import Registry, task
from taskq.worker.execute import run_task


def test_builtins_are_registered_with_signatures_and_parameters() -> None:
    reg = Registry.load()
    assert reg.names == ["add", "echo", "fail", "multiply", "sleep", "sub"]
    add = reg.describe()["add"]
    assert add.signature == "add(a: float, b: float) -> float"  # as the source reads, not quoted
    assert [(p.name, p.kind, p.type, p.required) for p in add.params] == [
        ("a", "positional_or_keyword", "float", True), ("b", "positional_or_keyword", "float", True)]
    assert add.returns == "float"


def test_parameters_describe_defaults_variadics_and_keyword_only_ones() -> None:
    @task
    def f(a: int, /, b: list[int] | None = None, *rest: str, flag: bool = False, when: object = object(),
          **extra: int) -> None:
        """Does f.

        More text."""

    d = f.__taskq_task__.describe()
    assert [(p.name, p.kind, p.required, p.default) for p in d.params] == [
        ("a", "positional_only", True, None), ("b", "positional_or_keyword", False, None),
        ("rest", "var_positional", False, None), ("flag", "keyword_only", False, False),
        ("when", "keyword_only", False, None),  # a default JSON cannot carry is not sent
        ("extra", "var_keyword", False, None)]
    assert d.params[1].type == "list[int] | None" and d.doc == "Does f."
    assert d.signature.startswith("f(a: int, /, b: list[int] | None = None, *rest: str, flag: bool = False")


@pytest.mark.parametrize(("options", "message"), [
    ({"timeout": 10 * 24 * 3600}, "timeout must be a number of seconds above 0 and at most 604800"),
    ({"max_retries": 1001}, "max_retries must be an integer from 0 to 1000"),
    ({"max_retries": -1}, "max_retries must be an integer from 0 to 1000"),
    ({"name": "bad name"}, "task name 'bad name' is invalid"),
])
def test_task_options_have_the_same_bounds_as_the_sdk_and_the_api(options: dict[str, object], message: str) -> None:
    from taskq.client import Client, TaskRequest
    from taskq.settings import Settings

    def job() -> None: ...

    with pytest.raises(ConfigError, match=message):
        task(**options)(job)  # type: ignore[call-overload]
    sdk = {k: v for k, v in options.items() if k != "name"}
    if sdk:  # the SDK refuses the same value with the same words (no Kafka needed to check)
        from taskq.errors import InvalidTask

        with pytest.raises(InvalidTask, match=message):
            Client(Settings()).submit_many([TaskRequest("add", **sdk)])  # type: ignore[arg-type]


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTask, match="unknown task 'nope'; known: add, echo"):
        Registry.load().get("nope")


def test_a_user_module_adds_its_tasks_under_their_names() -> None:
    mod = types.ModuleType("user_tasks")

    @task(name="reports.build", max_retries=3, timeout=5)
    def build(n: int) -> int:
        return n * 2

    mod.build = build  # type: ignore[attr-defined]
    reg = Registry.load()
    reg.add_module(mod)
    d = reg.get("reports.build")
    assert d.max_retries == 3 and d.timeout == 5


def test_two_functions_with_one_name_are_refused() -> None:
    @task(name="dup")
    def a() -> None: ...

    @task(name="dup")
    def b() -> None: ...

    reg = Registry()
    mod = types.ModuleType("m")
    mod.a, mod.b = a, b  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="defined twice"):
        reg.add_module(mod)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [({"max_retries": -1}, "max_retries"), ({"timeout": 0}, "timeout"), ({"name": "1bad name"}, "invalid")],
)
def test_bad_task_options_fail_at_decoration(kwargs: dict, why: str) -> None:  # type: ignore[type-arg]
    def job() -> None: ...

    with pytest.raises(ConfigError, match=why):
        task(**kwargs)(job)


def test_missing_module_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot import tasks module 'no_such_module_xyz'"):
        Registry.load(["no_such_module_xyz"])


def test_run_task_classifies_outcomes() -> None:
    reg = Registry.load()
    ok = run_task(reg, TaskMessage(id="1", task="add", args=[1, 2]))
    assert ok.ok and ok.result == 3
    bad_args = run_task(reg, TaskMessage(id="2", task="add", args=[1]))
    assert not bad_args.ok and not bad_args.retryable and bad_args.error.startswith("TypeError")
    raised = run_task(reg, TaskMessage(id="3", task="fail", args=["boom"]))
    assert not raised.ok and raised.retryable and raised.error == "RuntimeError: boom"
    unknown = run_task(reg, TaskMessage(id="4", task="zzz"))
    assert not unknown.ok and not unknown.retryable
