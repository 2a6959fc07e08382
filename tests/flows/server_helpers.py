"""Run in subprocesses by test_prefect_server.py, against a real Prefect server (PREFECT_API_URL set).

``serve``: serve the scheduled flow as deployment ``ivig-audit-scheduled/it`` until terminated.
``trigger``: run the deployment once per parameter set through the API, wait for each run, and
print (as JSON) each run's final state, name, parameters, logs and artifacts as the API returns them.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

DEPLOYMENT = "ivig-audit-scheduled/it"


def serve(parameters: dict[str, Any]) -> None:
    from flows.scheduled import scheduled_audit_flow

    scheduled_audit_flow.serve(name="it", parameters=parameters, print_starting_message=False)


def _run_record(client: Any, flow_run: Any) -> dict[str, Any]:
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    logs: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # run logs are shipped in batches: wait for the flow's last line
        records = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
        logs = [log.message for log in records]
        if any(log.task_run_id is None and log.message.startswith("Finished in state") for log in records):
            break
        time.sleep(0.5)
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
    )
    task_runs = client.read_task_runs()
    return {
        "id": str(flow_run.id),
        "name": flow_run.name,
        "state": flow_run.state.type.value if flow_run.state else None,
        "message": flow_run.state.message if flow_run.state else None,
        "parameters": flow_run.parameters,
        "logs": logs,
        "artifacts": [{"key": a.key, "type": a.type, "data": a.data, "description": a.description} for a in artifacts],
        "task_runs": sorted({t.name.rsplit("-", 1)[0] for t in task_runs if str(t.flow_run_id) == str(flow_run.id)}),
    }


def trigger(runs: list[dict[str, Any]]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    out = []
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 60
        while True:  # the runner registers the deployment a moment after it starts
            try:
                client.read_deployment_by_name(DEPLOYMENT)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        for parameters in runs:
            flow_run = run_deployment(DEPLOYMENT, parameters=parameters, timeout=120, poll_interval=1)
            out.append(_run_record(client, flow_run))
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    command, payload = sys.argv[1], json.loads(sys.argv[2])
    if command == "serve":
        serve(payload)
    else:
        trigger(payload)
