"""One long step that records its process id (for the Ctrl-C test)."""
import sys
from kfp import compiler, dsl


@dsl.container_component
def sleep(pidfile: str):
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", "sleep 60 & echo $! > \"$0\"; wait", pidfile],
    )


@dsl.pipeline(name="sleeper")
def sleeper(pidfile: str):
    sleep(pidfile=pidfile)


compiler.Compiler().compile(sleeper, sys.argv[1])
