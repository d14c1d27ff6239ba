"""Drive adf-emulator with Microsoft's Python SDK (azure-mgmt-datafactory, azure-identity).

Creates, reads, lists and deletes every resource type, starts and stops a trigger,
runs a pipeline, and authenticates twice: a client secret against the emulator's
Entra endpoint, then the App Service managed identity endpoint. Any mismatch
raises; the last line printed is a JSON summary for the Rust test to check.
"""
import json
import os
import time

from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.mgmt.datafactory import DataFactoryManagementClient
from azure.mgmt.datafactory import models as m

ARM = os.environ["ADFDR_ARM"]
AUTHORITY = os.environ["ADFDR_AUTHORITY"]
TENANT = os.environ["ADFDR_TENANT"]
SUB = "55555555-5555-5555-5555-555555555555"
RG = "rg-python"
F = "adf-python-sdk"
SCOPES = ["https://management.azure.com/.default"]

cred = ClientSecretCredential(TENANT, "python-sdk-app", "python-secret", authority=AUTHORITY,
                              disable_instance_discovery=True)
client = DataFactoryManagementClient(cred, SUB, base_url=ARM, credential_scopes=SCOPES)
kinds = []


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def ls_ref(name):
    return m.LinkedServiceReference(type="LinkedServiceReference", reference_name=name)


factory = client.factories.create_or_update(RG, F, m.Factory(location="westeurope",
                                                              identity=m.FactoryIdentity(type="SystemAssigned")))
check(factory.identity.principal_id, "system-assigned identity gets a principal")
check(client.factories.get(RG, F).name == F, "factory get")
check([f.name for f in client.factories.list_by_resource_group(RG)] == [F], "factory list")

# Integration runtime, credential, linked services (one using the credential and Key Vault).
client.integration_runtimes.create_or_update(RG, F, "ir-selfhosted", m.IntegrationRuntimeResource(
    properties=m.SelfHostedIntegrationRuntime(description="py")))
kinds.append("integrationRuntimes")
client.credential_operations.create_or_update(RG, F, "cred-uami", m.CredentialResource(
    properties=m.ManagedIdentityCredential(resource_id="/subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z")))
kinds.append("credentials")
client.linked_services.create_or_update(RG, F, "LS_KeyVault", m.LinkedServiceResource(
    properties=m.AzureKeyVaultLinkedService(base_url="https://kv.vault.azure.net/")))
ls = client.linked_services.create_or_update(RG, F, "LS_Blob", m.LinkedServiceResource(
    properties=m.AzureBlobStorageLinkedService(connection_string=m.SecureString(value="DefaultEndpointsProtocol=https;AccountKey=topsecret"),
                                              connect_via=m.IntegrationRuntimeReference(type="IntegrationRuntimeReference", reference_name="ir-selfhosted"))))
secret = ls.properties.connection_string
secret = secret["value"] if isinstance(secret, dict) else secret.value
check(secret == "**********", "secrets come back masked")
kinds.append("linkedservices")
client.datasets.create_or_update(RG, F, "DS_Json", m.DatasetResource(
    properties=m.JsonDataset(linked_service_name=ls_ref("LS_Blob"))))
kinds.append("datasets")
client.data_flows.create_or_update(RG, F, "DF_Flow", m.DataFlowResource(
    properties=m.MappingDataFlow(sources=[m.DataFlowSource(name="src", dataset=m.DatasetReference(type="DatasetReference", reference_name="DS_Json"))],
                                 sinks=[], transformations=[], script="source(output(x as string)) ~> src")))
kinds.append("dataflows")
client.pipelines.create_or_update(RG, F, "PL_Child", m.PipelineResource(activities=[m.WaitActivity(name="w", wait_time_in_seconds=1)]))
client.pipelines.create_or_update(RG, F, "PL_Parent", m.PipelineResource(activities=[
    m.ExecutePipelineActivity(name="run child", pipeline=m.PipelineReference(type="PipelineReference", reference_name="PL_Child"))]))
kinds.append("pipelines")
try:
    client.pipelines.create_or_update(RG, F, "PL_Broken", m.PipelineResource(activities=[
        m.ExecutePipelineActivity(name="x", pipeline=m.PipelineReference(type="PipelineReference", reference_name="PL_Missing"))]))
    raise AssertionError("a dangling reference must be refused")
except Exception as e:  # HttpResponseError
    check("invalid reference" in str(e), f"invalid reference error, got {e}")

trigger = m.TriggerResource(properties=m.ScheduleTrigger(
    recurrence=m.ScheduleTriggerRecurrence(frequency="Hour", interval=1, start_time="2026-01-01T00:00:00Z", time_zone="UTC"),
    pipelines=[m.TriggerPipelineReference(pipeline_reference=m.PipelineReference(type="PipelineReference", reference_name="PL_Parent"))]))
client.triggers.create_or_update(RG, F, "TR_Hourly", trigger)
client.triggers.begin_start(RG, F, "TR_Hourly").result()
check(client.triggers.get(RG, F, "TR_Hourly").properties.runtime_state == "Started", "trigger started")
try:
    client.triggers.create_or_update(RG, F, "TR_Hourly", trigger)
    raise AssertionError("updating a started trigger must be refused")
except Exception as e:
    check("TriggerEnabledCannotUpdate" in str(e), f"TriggerEnabledCannotUpdate, got {e}")
client.triggers.begin_stop(RG, F, "TR_Hourly").result()
check(client.triggers.get(RG, F, "TR_Hourly").properties.runtime_state == "Stopped", "trigger stopped")
event = m.TriggerResource(properties=m.BlobEventsTrigger(
    events=["Microsoft.Storage.BlobCreated"], scope="/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z",
    blob_path_begins_with="/c/blobs/", pipelines=[m.TriggerPipelineReference(pipeline_reference=m.PipelineReference(type="PipelineReference", reference_name="PL_Child"))]))
client.triggers.create_or_update(RG, F, "TR_Event", event)
status = client.triggers.begin_subscribe_to_events(RG, F, "TR_Event").result()
check(status.status == "Enabled", f"event subscription enabled, got {status.status}")
check(client.triggers.get_event_subscription_status(RG, F, "TR_Event").status == "Enabled", "subscription status")
client.triggers.begin_unsubscribe_from_events(RG, F, "TR_Event").result()
kinds.append("triggers")

client.managed_virtual_networks.create_or_update(RG, F, "default", m.ManagedVirtualNetworkResource(properties=m.ManagedVirtualNetwork()))
kinds.append("managedVirtualNetworks")
mpe = client.managed_private_endpoints.create_or_update(RG, F, "default", "mpe-blob", m.ManagedPrivateEndpointResource(
    properties=m.ManagedPrivateEndpoint(private_link_resource_id="/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z", group_id="blob")))
check(mpe.properties.connection_state.status == "Pending", "a new private endpoint awaits approval")
kinds.append("managedPrivateEndpoints")
client.global_parameters.create_or_update(RG, F, "default", m.GlobalParameterResource(
    properties={"env": m.GlobalParameterSpecification(type="String", value="prod")}))
check(client.global_parameters.get(RG, F, "default").properties["env"].value == "prod", "global parameters")
kinds.append("globalParameters")
client.change_data_capture.create_or_update(RG, F, "cdc1", m.ChangeDataCaptureResource(
    source_connections_info=[], target_connections_info=[], policy=m.MapperPolicy(mode="Microbatch")))
client.change_data_capture.start(RG, F, "cdc1")
check(client.change_data_capture.status(RG, F, "cdc1") == "Running", "cdc running")
client.change_data_capture.stop(RG, F, "cdc1")
kinds.append("adfcdcs")
check(list(client.private_end_point_connections.list_by_factory(RG, F)) == [], "no private endpoint connections")
kinds.append("privateEndPointConnections")

# Lists page through nextLink (page size 2 in the test).
check(sorted(p.name for p in client.pipelines.list_by_factory(RG, F)) == ["PL_Child", "PL_Parent"], "pipeline list")
check(len(list(client.linked_services.list_by_factory(RG, F))) == 2, "linked service list across pages")
for op in (client.integration_runtimes, client.datasets, client.data_flows, client.triggers, client.credential_operations,
           client.managed_virtual_networks, client.change_data_capture):
    check(len(list(op.list_by_factory(RG, F))) >= 1, f"{op} list")

run = client.pipelines.create_run(RG, F, "PL_Parent", parameters={})
deadline = time.time() + 20
while True:
    status = client.pipeline_runs.get(RG, F, run.run_id).status
    if status not in ("Queued", "InProgress") or time.time() > deadline:
        break
    time.sleep(0.2)
check(status == "Succeeded", f"pipeline run succeeded, got {status}")

# Managed identity (App Service protocol: IDENTITY_ENDPOINT + IDENTITY_HEADER).
mi = DataFactoryManagementClient(ManagedIdentityCredential(), SUB, base_url=ARM, credential_scopes=SCOPES)
mi_count = len(list(mi.factories.list()))

# Delete in reverse dependency order; the service refuses referenced deletes.
try:
    client.pipelines.delete(RG, F, "PL_Child")
    raise AssertionError("deleting a referenced pipeline must be refused")
except Exception as e:
    check("referenced by" in str(e), f"referenced-by error, got {e}")
client.change_data_capture.delete(RG, F, "cdc1")
client.managed_private_endpoints.delete(RG, F, "default", "mpe-blob")
client.triggers.delete(RG, F, "TR_Hourly")
client.triggers.delete(RG, F, "TR_Event")
client.pipelines.delete(RG, F, "PL_Parent")
client.pipelines.delete(RG, F, "PL_Child")
client.data_flows.delete(RG, F, "DF_Flow")
client.datasets.delete(RG, F, "DS_Json")
client.linked_services.delete(RG, F, "LS_Blob")
client.linked_services.delete(RG, F, "LS_KeyVault")
client.integration_runtimes.delete(RG, F, "ir-selfhosted")
client.credential_operations.delete(RG, F, "cred-uami")
client.global_parameters.delete(RG, F, "default")
check(list(client.pipelines.list_by_factory(RG, F)) == [], "all pipelines deleted")
client.factories.delete(RG, F)
check(list(client.factories.list()) == [], "factory deleted")

print(json.dumps({"kinds": kinds, "pipeline_run": status, "managed_identity_factories": mi_count}))
