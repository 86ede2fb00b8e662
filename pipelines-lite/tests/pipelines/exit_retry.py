"""An exit handler that runs after a failure, and a flaky step retried until its third try."""
import sys
from kfp import compiler, dsl


@dsl.component
def fail(code: int):
    raise SystemExit(code)


@dsl.component
def report(status: dsl.PipelineTaskFinalStatus) -> str:
    return status.state


@dsl.component
def flaky(counter: str) -> int:
    import time
    with open(counter, "a") as f:
        f.write(f"{time.time()}\n")
    tries = len(open(counter).read().splitlines())
    if tries < 3:
        raise RuntimeError(f"try {tries} fails")
    return tries


@dsl.pipeline(name="exit-retry")
def exit_retry(counter: str):
    flaky(counter=counter).set_retry(num_retries=3, backoff_duration="1s", backoff_factor=2.0, backoff_max_duration="10s")
    handler = report()
    with dsl.ExitHandler(handler):
        fail(code=3)


compiler.Compiler().compile(exit_retry, sys.argv[1])
