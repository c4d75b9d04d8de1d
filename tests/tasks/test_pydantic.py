"""``@app.task(pydantic=True)``: arguments validated into pydantic models, models returned as dicts (Celery 5.5)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from celeriac import Celery
from celeriac.exceptions import TaskError

from ..unit.helpers import drain

pydantic = pytest.importorskip("pydantic")


class AddParameterModel(pydantic.BaseModel):  # type: ignore[misc,name-defined]
    x: int
    y: int


class AddResultModel(pydantic.BaseModel):  # type: ignore[misc,name-defined]
    result: int


class Checked(pydantic.BaseModel):  # type: ignore[misc,name-defined]
    """Keeps the validation context of each instance made (annotations of a function are
    resolved in its module, so the models a task names live at module level)."""

    contexts: ClassVar[list[Any]] = []
    x: int

    @pydantic.field_validator("x")  # type: ignore[misc]
    @classmethod
    def keep_context(cls, value: int, info: Any) -> int:
        cls.contexts.append(dict(info.context))
        return value


async def test_arguments_become_models_and_a_returned_model_a_dict(app: Celery) -> None:
    seen: list[Any] = []

    @app.task(pydantic=True, name="proj.add_pydantic")
    def add_pydantic(data: AddParameterModel, extra: AddParameterModel | None = None) -> AddResultModel:
        seen.append((type(data).__name__, extra))
        return AddResultModel(result=data.x + data.y)

    result = add_pydantic.delay({"x": 2, "y": 3})
    await drain(app)
    assert result.get(timeout=5) == {"result": 5}  # model_dump(mode="json")
    assert seen == [("AddParameterModel", None)]


async def test_async_and_bound_tasks_and_invalid_input(app: Celery) -> None:
    @app.task(pydantic=True, bind=True, name="proj.async_add")
    async def async_add(self: Any, data: AddParameterModel) -> AddResultModel:
        return AddResultModel(result=data.x + data.y + self.request.retries)

    good = async_add.delay({"x": 1, "y": 1})
    bad = async_add.delay({"x": "not a number", "y": 1})
    await drain(app)
    assert good.get(timeout=5) == {"result": 2}
    with pytest.raises(TaskError) as raised:  # a ValidationError cannot be re-created from its args
        bad.get(timeout=5)
    assert raised.value.exc_cls_name == "ValidationError" and "int_parsing" in str(raised.value)


def test_strict_context_and_dump_options_in_eager_apply() -> None:
    app = Celery("proj", broker="memory://pydantic-eager", set_as_current=False)
    contexts = Checked.contexts = []

    @app.task(pydantic=True, pydantic_strict=True, pydantic_context={"tenant": "a"},
              pydantic_dump_kwargs={"exclude": {"result"}}, name="proj.checked")
    def checked(data: Checked) -> AddResultModel:
        return AddResultModel(result=data.x)

    assert checked.apply(({"x": 4},)).get() == {}  # dump kwargs apply
    assert contexts[0]["tenant"] == "a" and contexts[0]["celery_task_name"] == "proj.checked"
    assert contexts[0]["celery_app"] is app
    with pytest.raises(pydantic.ValidationError):  # strict: "4" is not an int
        checked.apply(({"x": "4"},)).get()


def test_without_pydantic_true_arguments_stay_as_sent() -> None:
    app = Celery("proj", broker="memory://pydantic-off", set_as_current=False)

    @app.task(name="proj.plain")
    def plain(data: AddParameterModel) -> Any:
        return type(data).__name__

    assert plain.apply(({"x": 1, "y": 2},)).get() == "dict"
