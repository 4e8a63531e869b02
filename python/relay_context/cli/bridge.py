"""``relay bridge run``: the worker side of an AgentBridge, for any command.

    relay bridge run --task-channel vibe-tasks --done-channel vibe-done -- claude -p

Each task pushed to the task channel is written to a new run of COMMAND's standard input; its
standard output is pushed back to the done channel with the task's correlation id, so the
caller's ``AgentBridge.push_and_wait`` gets it (and no other caller does).
"""

from __future__ import annotations

import subprocess

import click


@click.group()
def bridge() -> None:
    """Relay tasks between agents over handoff channels."""


@bridge.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--task-channel", default="agent-tasks", show_default=True)
@click.option("--done-channel", default="agent-done", show_default=True)
@click.option("--url", envvar=["RELAY_URL", "CONTEXTRELAY_URL"], default=None, help="The relay.")
@click.option("--api-key", envvar=["RELAY_API_KEY", "CONTEXTRELAY_API_KEY"], default=None)
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds per task.")
@click.option("--max-tasks", type=int, default=None, help="Stop after this many tasks.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    task_channel: str,
    done_channel: str,
    url: str | None,
    api_key: str | None,
    timeout: float,
    max_tasks: int | None,
    command: tuple[str, ...],
) -> None:
    """Feed each task to COMMAND's stdin and push its stdout back (blocks)."""
    from relay_context.handoff_client import AgentBridge, HandoffClient

    def handle(task: str | bytes) -> str:
        data = task.encode("utf-8") if isinstance(task, str) else task
        done = subprocess.run(list(command), input=data, capture_output=True, timeout=timeout)
        if done.returncode != 0:
            click.echo(f"task failed with {done.returncode}: {done.stderr[-500:]!r}", err=True)
        return done.stdout.decode("utf-8", "replace")

    with HandoffClient(url, api_key) as relay:
        click.echo(f"bridging {task_channel} -> {' '.join(command)} -> {done_channel}", err=True)
        AgentBridge(relay, task_channel, done_channel).serve(handle, max_tasks=max_tasks)
