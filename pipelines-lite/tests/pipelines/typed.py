"""A linear pipeline with a parameter of each of the six types, passed through two steps."""
import sys
from kfp import compiler, dsl


@dsl.component
def describe(s: str, i: int, f: float, b: bool, l: list, d: dict) -> str:
    print(f"describing {s} with {i}")
    return f"{s}|{i!r}|{f!r}|{b!r}|{l!r}|{d!r}|{type(i).__name__}"


@dsl.component
def double(i: int) -> int:
    assert isinstance(i, int), type(i)
    return i * 2


@dsl.component
def shout(text: str, times: int) -> str:
    return text.upper() + "!" * times


@dsl.pipeline(name="typed")
def typed(s: str = "a", i: int = 3, f: float = 1.5, b: bool = True, l: list = [1, 2], d: dict = {"k": 1}):
    described = describe(s=s, i=i, f=f, b=b, l=l, d=d)
    doubled = double(i=i)
    shout(text=described.output, times=doubled.output)


compiler.Compiler().compile(typed, sys.argv[1])
