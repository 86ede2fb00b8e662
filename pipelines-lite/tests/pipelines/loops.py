"""ParallelFor with a parallelism limit, a nested loop, and dsl.Collected fan-in of integers."""
import sys
from typing import List
from kfp import compiler, dsl
from kfp.dsl import Dataset, Output


@dsl.component
def square(x: int, log: str) -> int:
    import os, time
    with open(log, "a") as f:
        f.write(f"start {time.time()} {os.getpid()}\n")
    time.sleep(0.6)
    with open(log, "a") as f:
        f.write(f"end {time.time()} {os.getpid()}\n")
    return x * x


@dsl.component
def pair(a: int, b: int) -> int:
    return a * 10 + b


@dsl.component
def total(xs: List[int]) -> int:
    assert all(isinstance(x, int) for x in xs), xs
    return sum(xs)


@dsl.component
def show(xs: list) -> str:
    return repr(xs)


@dsl.component
def shard(i: int, data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("x" * i)


@dsl.component
def sizes(shards: List[Dataset]) -> List[int]:
    return [len(open(s.path).read()) for s in shards]


@dsl.pipeline(name="loops")
def loops(log: str, outer: List[int] = [1, 2]):
    with dsl.ParallelFor([1, 2, 3, 4, 5], parallelism=2) as x:
        sq = square(x=x, log=log)
    total(xs=dsl.Collected(sq.output))
    with dsl.ParallelFor(outer) as a:
        with dsl.ParallelFor([7, 8]) as b:
            p = pair(a=a, b=b)
    show(xs=dsl.Collected(p.output))
    with dsl.ParallelFor([3, 1, 2]) as i:
        sh = shard(i=i)
    sizes(shards=dsl.Collected(sh.outputs["data"]))


compiler.Compiler().compile(loops, sys.argv[1])
