"""For the cache: an imported file copied into a dataset, a count of it, and an unrelated step."""
import sys
from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input, Output


@dsl.component
def load(raw: Input[Artifact], marker: str, data: Output[Dataset]):
    open(marker, "a").write("load\n")
    with open(data.path, "w") as f:
        f.write(open(raw.path).read())


@dsl.component
def count(data: Input[Dataset], marker: str) -> int:
    open(marker, "a").write("count\n")
    return len(open(data.path).read())


@dsl.component
def greet(name: str, marker: str) -> str:
    open(marker, "a").write("greet\n")
    return "hello " + name


@dsl.pipeline(name="cached")
def cached(source: str, marker: str, name: str = "kiln"):
    raw = dsl.importer(artifact_uri=source, artifact_class=Artifact)
    loaded = load(raw=raw.output, marker=marker)
    count(data=loaded.outputs["data"], marker=marker)
    greet(name=name, marker=marker)


compiler.Compiler().compile(cached, sys.argv[1])
