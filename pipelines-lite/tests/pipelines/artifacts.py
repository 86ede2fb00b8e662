"""Artifacts between steps, a container component with Concat/IfPresent placeholders, and
If/Elif/Else on a step's output."""
import sys
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Model, Output


@dsl.component
def make(rows: int, data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("\n".join(str(r) for r in range(rows)))
    data.metadata["rows"] = rows


@dsl.component
def train(data: Input[Dataset], model: Output[Model]) -> int:
    lines = open(data.path).read().splitlines()
    with open(model.path, "w") as f:
        f.write(f"model of {len(lines)} rows")
    return len(lines)


@dsl.container_component
def inspect(data: Input[Dataset], note: dsl.OutputPath(str), label: str = "rows"):
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", dsl.ConcatPlaceholder(["printf '%s=%s' ", label, " \"$(wc -l < ", data.path, ")\" > ", note])],
        args=[dsl.IfPresentPlaceholder(input_name="label", then=["--label", label])],
    )


@dsl.component
def branch(name: str) -> str:
    return name


@dsl.pipeline(name="artifacts")
def artifacts(rows: int = 5):
    made = make(rows=rows)
    trained = train(data=made.outputs["data"])
    inspect(data=made.outputs["data"])
    with dsl.If(trained.outputs["Output"] > 5):
        branch(name="big")
    with dsl.Elif(trained.outputs["Output"] == 5):
        branch(name="five")
    with dsl.Else():
        branch(name="small")


compiler.Compiler().compile(artifacts, sys.argv[1])
