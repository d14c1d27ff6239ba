"""The baseline adfdr's restore is measured against: what users script today.

Microsoft's Python SDK (azure-mgmt-datafactory), one resource at a time, in
dependency order (a generic walk for referenceName/...Reference objects, as
azure.datafactory.tools does), from an ADF git-layout folder. No concurrency,
no plan, no verification: the simplest correct script.

Usage: python bench/python_sequential_restore.py GIT_DIR SUBSCRIPTION RESOURCE_GROUP FACTORY
Environment: ADFDR_ARM (ARM endpoint), IDENTITY_ENDPOINT/IDENTITY_HEADER (managed
identity), REQUESTS_CA_BUNDLE (the emulator's CA).
"""
import io
import json
import os
import sys
import time
from pathlib import Path

from azure.identity import ManagedIdentityCredential
from azure.mgmt.datafactory import DataFactoryManagementClient

git_dir, sub, rg, factory = sys.argv[1:5]
client = DataFactoryManagementClient(ManagedIdentityCredential(), sub, base_url=os.environ["ADFDR_ARM"],
                                     credential_scopes=["https://management.azure.com/.default"])

FOLDERS = {"managedVirtualNetwork": "ManagedVirtualNetworkReference", "integrationRuntime": "IntegrationRuntimeReference", "linkedService": "LinkedServiceReference",
           "dataset": "DatasetReference", "dataflow": "DataFlowReference", "pipeline": "PipelineReference",
           "trigger": "TriggerReference", "credential": "CredentialReference", "adfcdc": "ChangeDataCaptureReference"}
ops = {"managedVirtualNetwork": client.managed_virtual_networks, "adfcdc": client.change_data_capture,
       "integrationRuntime": client.integration_runtimes, "linkedService": client.linked_services,
       "dataset": client.datasets, "dataflow": client.data_flows, "pipeline": client.pipelines,
       "trigger": client.triggers, "credential": client.credential_operations}

resources = {}
for folder, ref_type in FOLDERS.items():
    for f in sorted((Path(git_dir) / folder).glob("*.json")):
        body = json.loads(f.read_text())
        for read_only in ("runtimeState", "state", "status"):
            body.get("properties", {}).pop(read_only, None)
        resources[(ref_type, body["name"].lower())] = (folder, body)


def refs(value):
    if isinstance(value, dict):
        name, typ = value.get("referenceName"), value.get("type")
        if isinstance(name, str) and isinstance(typ, str) and typ.endswith("Reference") and not name.startswith("@"):
            yield (typ, name.lower())
        for v in value.values():
            yield from refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from refs(v)


done, order = set(), []


def visit(key, path=()):
    if key in done or key not in resources:
        return
    if key in path:
        raise SystemExit(f"cycle at {key}")
    for dep in refs(resources[key][1]):
        visit(dep, path + (key,))
    done.add(key)
    order.append(key)


for key in resources:
    visit(key)

start = time.monotonic()
factory_file = next((Path(git_dir) / "factory").glob("*.json"))
body = json.loads(factory_file.read_text())
client.factories.create_or_update(rg, factory, io.BytesIO(json.dumps(
    {"location": body.get("location", "westeurope"), "identity": body.get("identity"),
     "properties": {"globalParameters": body.get("properties", {}).get("globalParameters", {})}}).encode()))
written = 1
for key in order:
    folder, body = resources[key]
    payload = {"properties": body["properties"]}
    ops[folder].create_or_update(rg, factory, body["name"], io.BytesIO(json.dumps(payload).encode()))
    written += 1
    if folder == "managedVirtualNetwork":
        # Its managed private endpoints, once the network exists.
        for f in sorted((Path(git_dir) / folder / body["name"] / "managedPrivateEndpoint").glob("*.json")):
            mpe = json.loads(f.read_text())
            client.managed_private_endpoints.create_or_update(
                rg, factory, body["name"], mpe["name"], io.BytesIO(json.dumps({"properties": mpe["properties"]}).encode()))
            written += 1
print(json.dumps({"written": written, "seconds": round(time.monotonic() - start, 3)}))
