"""A pipeline used as a component (a sub-DAG), dsl.OneOf over If/Else branches, a loop over
dicts reading one field of each item, and ignore_upstream_failure."""
import sys
from typing import List
from kfp import compiler, dsl


@dsl.component
def number() -> int:
    return 3


@dsl.component
def echo(x: str) -> str:
    return x


@dsl.component
def add(a: int, b: int) -> int:
    return a + b


@dsl.component
def join(xs: List[str]) -> str:
    return ",".join(xs)


@dsl.component
def boom():
    raise SystemExit(1)


@dsl.component
def after_boom(note: str = "ran anyway") -> str:
    return note


@dsl.pipeline
def inner(a: int) -> int:
    return add(a=a, b=10).output


@dsl.pipeline(name="composed")
def composed(items: list = [{"label": "x", "n": 1}, {"label": "y", "n": 2}]):
    n = number()
    sub = inner(a=n.output)
    echo(x="sub done").after(sub)
    with dsl.If(n.output == 3):
        yes = echo(x="three")
    with dsl.Else():
        no = echo(x="not three")
    echo(x=dsl.OneOf(yes.output, no.output))
    with dsl.ParallelFor(items) as item:
        # Not `item.name`: kfp 2.17.3 resolves that to the loop channel's own name and
        # compiles the constant "items-loop-item".
        named = echo(x=item.label)
    join(xs=dsl.Collected(named.output))
    failed = boom()
    # kfp 2.17.3: ignore_upstream_failure() on a task that leaves a defaulted input out
    # raises KeyError in the SDK, so the input is passed.
    after_boom(note="ran anyway").after(failed).ignore_upstream_failure()


compiler.Compiler().compile(composed, sys.argv[1])
